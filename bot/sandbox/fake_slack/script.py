"""Stands in for Slack misbehaving on cue: scripted Web API errors and responses held back until released."""

from __future__ import annotations

from collections import deque

from bot.sandbox.fake_slack.state import Hold, SlackState, _Fault


class Script(SlackState):
    """The part of ``FakeSlack`` that scripts faults (``fail``) and holds responses back (``hold``)."""

    def hold(self, method: str) -> Hold:
        """Hold back the responses of ``method`` (e.g. ``"files.info"``) until released, to freeze the app
        at a precise point::

            with fake.hold("files.info") as held:
                held.wait_for_call()  # the app is now waiting for files.info
                app.kill()
            # released here; later calls are answered at once

        Each call is recorded and carried out when it arrives (scripted faults apply as usual); only its
        response waits. One hold per method at a time."""
        with self._cond:
            if method in self._holds:
                raise ValueError(f"{method} is already held")
            hold = Hold(self, method)
            self._holds[method] = hold
            return hold

    def fail(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        http_status: int = 200,
        retry_after: float | None = None,
        times: int = 1,
        never_share: bool = False,
        lose_answer: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (FIFO per method).

        ``retry_after`` (or ``http_status=429``) answers HTTP 429 with an integer ``Retry-After`` header, as
        Slack does (slack_sdk's ``RateLimitErrorRetryHandler`` does ``int()`` on it); ``http_status=500``
        answers Slack's edge HTML page. ``never_share`` (``files.completeUploadExternal`` only) answers ok
        but never shares the file: no message, no shares in ``files.info``. ``lose_answer`` makes the call
        take effect and then lose its answer, as Slack sometimes does: ``"5xx"`` answers its edge's 500
        page, ``"drop"`` drops the connection without a word.
        """
        if lose_answer not in (None, "5xx", "drop"):
            raise ValueError("lose_answer is '5xx' or 'drop'")
        if never_share and method != "files.completeUploadExternal":
            raise ValueError("never_share only applies to files.completeUploadExternal")
        status = 429 if retry_after is not None else http_status
        with self._cond:
            queue = self._faults.setdefault(method, deque())
            for _ in range(times):
                queue.append(_Fault(error, status, retry_after, never_share, lose_answer))
