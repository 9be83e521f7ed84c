"""Bolt middleware of our own."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.request.internals import build_context


def reread_slash_command_forms(req: BoltRequest, next: Callable[[], BoltResponse]) -> None:
    """Bolt 1.30 reads any form body that contains the text "payload" anywhere as an interaction
    (``payload=<json>``) and, finding no such field, as empty: ``/banana a rocket payload bay``, or any
    command from a channel named ``#payload-…``, would be dropped without a word. Read such a body again.

    Upstream: ``parse_body`` in
    https://github.com/slackapi/bolt-python/blob/v1.30.0/slack_bolt/request/internals.py checks
    ``"payload" in body`` on the raw text rather than for a ``payload`` field. Signatures are checked on
    the raw body before this runs, so nothing unverified is read.
    """
    if req.mode == "http" and not req.body and "payload" in req.raw_body:
        form = dict(parse_qsl(req.raw_body, keep_blank_values=True))
        if "command" in form and "payload" not in form:
            req.body = form
            build_context(req.context, form)
    next()


def register(app: App) -> None:
    app.middleware(reread_slash_command_forms)
