"""Stands in for Slack's side towards the app: signed commands, events and interactions, and response_url.

People posting, editing and deleting messages are played here too; deliveries go over HTTP to
``request_url`` or, when no URL is set, over Socket Mode (``socket_mode``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.fake_slack.records import JSON, Delivery, Response, _maybe_json
from bot.sandbox.fake_slack.socket_mode import SocketMode
from bot.sandbox.fake_slack.state import _ResponseUrl
from bot.sandbox.fake_slack.wire import (
    _MENTION,
    _RESPONSE_URL_TTL_S,
    _RESPONSE_URL_USES,
    _SLACKBOT_UA,
    _channel_type,
    _new_id,
    _Reply,
    _Request,
    _rich_text,
)


class Deliveries(SocketMode):
    """The part of ``FakeSlack`` that delivers to the app and takes ``response_url`` posts."""

    def new_response_url(self, *, channel_id: str | None = None, user_id: str | None = None) -> str:
        """A fresh ``response_url`` (5 uses within 30 minutes, like Slack's)."""
        url_id = uuid.uuid4().hex
        with self._cond:
            self._response_urls[url_id] = _ResponseUrl(channel_id, user_id, time.time())
        return f"{self.base_url}/response/{url_id}"

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body`` (pass an old ``timestamp`` to
        make a stale request)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(self.signing_secret).generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": str(signature)}

    def send_command(
        self,
        text: str,
        *,
        channel_id: str = "C0GENERAL",
        user_id: str = "UALICE",
        command: str = "/banana",
        team_id: str | None = None,
    ) -> Delivery:
        """Deliver a slash command invocation (with a fresh ``response_url``)."""
        payload = self._command_payload(text, channel_id, user_id, command, team_id)
        body = urlencode(payload).encode()
        return self._deliver(
            "slash_commands",
            payload,
            body,
            "application/x-www-form-urlencoded",
            accepts_response_payload=True,
        )

    def command_request(
        self, text: str, *, channel_id: str = "C0GENERAL", user_id: str = "UALICE"
    ) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers of a ``/banana`` as ``send_command`` would POST them, for a client
        in another process (a benchmark's, timing acks where the stand-ins' own work can't delay it)."""
        body = urlencode(self._command_payload(text, channel_id, user_id, "/banana", None)).encode()
        return body, self._http_headers(body, "application/x-www-form-urlencoded")

    def _command_payload(
        self, text: str, channel_id: str, user_id: str, command: str, team_id: str | None
    ) -> dict[str, str]:
        return {
            "token": self.verification_token,
            "team_id": team_id or self.team_of(channel_id),
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id, in_command=True),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(channel_id=channel_id, user_id=user_id),
            "trigger_id": self.new_trigger_id(),
        }

    def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        team_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        acting_team: str | None = None,
    ) -> Delivery:
        """Deliver ``event`` in an Events API envelope (``event_callback``). Retries keep the ``event_id``.

        ``team_id``: the workspace the app is installed in (``authorizations``). ``acting_team``: in a Slack
        Connect channel, the other workspace whose member acted; Slack then puts that team in the
        envelope's ``team_id`` and sets ``is_ext_shared_channel``, and only ``authorizations`` names the
        installation."""
        event_id = event_id or _new_id("Ev", 10)
        installed = team_id or self.team_of(str(event.get("channel") or ""))
        envelope = {
            "token": self.verification_token,
            "team_id": acting_team or installed,
            "context_team_id": installed,
            "context_enterprise_id": None,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": installed,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": acting_team is not None and acting_team != installed,
            "event_context": "4-" + uuid.uuid4().hex,
        }
        extra: dict[str, str] = {}
        if retry_num is not None:
            extra["X-Slack-Retry-Num"] = str(retry_num)
        if retry_reason is not None:
            extra["X-Slack-Retry-Reason"] = retry_reason
        body = json.dumps(envelope).encode()
        return self._deliver(
            "events_api",
            envelope,
            body,
            "application/json",
            extra_headers=extra,
            retry_attempt=retry_num or 0,
            retry_reason=retry_reason or "",
            event=event,
            event_id=event_id,
        )

    def send_interactive(self, payload: dict[str, Any]) -> Delivery:
        """Deliver an interaction payload (``block_actions``, ``view_submission``, shortcuts ...) as Slack
        does: form field ``payload=<json>``."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self._deliver(
            "interactive", payload, body, "application/x-www-form-urlencoded", accepts_response_payload=True
        )

    def press(self, message: dict[str, Any], text: str, *, user: str = "UALICE") -> Delivery:
        """A person clicks the button whose visible text starts with ``text`` in ``message`` (as the bot
        posted it, ``messages``): a ``block_actions`` payload shaped like Slack's, built from the blocks
        themselves, signed and delivered."""
        for block in message.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("type") != "button":
                    continue
                if str(element["text"]["text"]).startswith(text):
                    action = {
                        "type": "button",
                        "action_id": element["action_id"],
                        "block_id": block.get("block_id", ""),
                        "text": element["text"],
                        "value": element.get("value"),
                        "action_ts": f"{time.time():.6f}",
                    }
                    channel = str(message["channel"])
                    team = self.team_of(channel)
                    payload = {
                        "type": "block_actions",
                        "user": {"id": user, "username": self._user_name(user), "team_id": team},
                        "api_app_id": self.api_app_id,
                        "token": self.verification_token,
                        "container": {
                            "type": "message",
                            "message_ts": message["ts"],
                            "channel_id": channel,
                            "is_ephemeral": False,
                            "thread_ts": message.get("thread_ts"),
                        },
                        "trigger_id": self.new_trigger_id(),
                        "team": {"id": team, "domain": self.team_domain},
                        "enterprise": None,
                        "is_enterprise_install": False,
                        "channel": {"id": channel, "name": self._channel_name(channel, in_command=False)},
                        "message": {k: v for k, v in message.items() if k != "channel"},
                        "response_url": self.new_response_url(channel_id=channel, user_id=user),
                        "actions": [action],
                    }
                    return self.send_interactive(payload)
        raise LookupError(f"no button starting with {text!r} in message {message.get('ts')}")

    def send_raw(self, body: bytes, headers: dict[str, str]) -> Delivery:
        """POST ``body`` with exactly ``headers`` to ``request_url`` (HTTP mode only), e.g. bad signatures."""
        if self.request_url is None:
            raise RuntimeError("send_raw needs request_url (HTTP mode)")
        delivery = self._post_to_app(body, headers, kind="raw")
        self._record(self.deliveries, delivery)
        return delivery

    def new_trigger_id(self) -> str:
        return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"

    def post_user_message(
        self,
        *,
        channel: str,
        text: str,
        user: str = "UALICE",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        channel_type: str | None = None,
        team_id: str | None = None,
    ) -> list[Delivery]:
        """A human posts in ``channel``: record the message and deliver what Slack would send to an app
        subscribed to ``app_mention`` and ``message.channels/groups/im``: an ``app_mention`` (not in DMs,
        only when the text mentions the bot) and then the ``message`` event. Nothing is delivered from a
        channel the bot is not in."""
        ts = self._clock.next()
        channel_type = channel_type or _channel_type(channel)
        team = team_id or self.team_of(channel)
        with self._cond:
            parent = self._find_message(channel, thread_ts) if thread_ts else None
            record: JSON = {
                "type": "message",
                "channel": channel,
                "ts": ts,
                "thread_ts": thread_ts,
                "text": text,
                "blocks": _rich_text(text) or None,
                "user": user,
                "bot_id": None,
                "files": files,
                "team": team,
                "via": "user",
            }
            self.messages.append(record)
            self._changed()
            member = self._channel(channel).member
        if not member:
            return []

        base: JSON = {"user": user, "text": text, "ts": ts, "team": team}
        if team != self.team_of(channel):
            base["user_team"] = base["source_team"] = team
        if text:
            base["blocks"] = _rich_text(text)
        base["client_msg_id"] = str(uuid.uuid4())
        if files:
            base["files"] = files
            base["upload"] = False
            base["display_as_bot"] = False
        if thread_ts:
            base["thread_ts"] = thread_ts
            base["parent_user_id"] = (parent or {}).get("user") or user

        deliveries: list[Delivery] = []
        mentioned = any(m.group(1) == self.bot_user_id for m in _MENTION.finditer(text))
        if mentioned and channel_type != "im":
            mention = {"type": "app_mention", **base, "channel": channel, "event_ts": ts}
            deliveries.append(self.send_event(mention, acting_team=team))
        subtype = {"subtype": "file_share"} if files else {}
        message = {"type": "message", **subtype, **base, "channel": channel, "event_ts": ts}
        message["channel_type"] = channel_type
        deliveries.append(self.send_event(message, acting_team=team))
        return deliveries

    def edit_user_message(self, channel: str, ts: str, new_text: str) -> list[Delivery]:
        """A human edits their message: deliver a ``message_changed`` event."""
        with self._cond:
            original = self._find_message(channel, ts)
            if original is None:
                raise KeyError(f"no message {channel}/{ts}")
            previous = {"type": "message", "user": original["user"], "text": original["text"], "ts": ts}
            original["text"] = new_text
            original["blocks"] = _rich_text(new_text) or None
            edit_ts = self._clock.next()
            original["edited"] = {"user": original["user"], "ts": edit_ts}
            self._changed()
            member = self._channel(channel).member
        if not member:
            return []
        current = {**previous, "text": new_text, "blocks": _rich_text(new_text), "edited": original["edited"]}
        if original.get("thread_ts"):
            current["thread_ts"] = previous["thread_ts"] = original["thread_ts"]
        event = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel,
            "channel_type": _channel_type(channel),
            "ts": edit_ts,
            "event_ts": edit_ts,
            "message": current,
            "previous_message": previous,
        }
        return [self.send_event(event)]

    def delete_user_message(self, channel: str, ts: str) -> list[Delivery]:
        """A human deletes their message: deliver a ``message_deleted`` event."""
        with self._cond:
            original = self._find_message(channel, ts)
            if original is None:
                raise KeyError(f"no message {channel}/{ts}")
            original["deleted"] = True
            self._changed()
            member = self._channel(channel).member
        if not member:
            return []
        event_ts = self._clock.next()
        previous = {"type": "message", "user": original["user"], "text": original["text"], "ts": ts}
        if original.get("thread_ts"):
            previous["thread_ts"] = original["thread_ts"]
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "channel_type": _channel_type(channel),
            "ts": event_ts,
            "event_ts": event_ts,
            "deleted_ts": ts,
            "previous_message": previous,
        }
        return [self.send_event(event)]

    def _deliver(
        self,
        kind: str,
        payload: JSON,
        body: bytes,
        content_type: str,
        *,
        extra_headers: dict[str, str] | None = None,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        event: JSON | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        if self.request_url is not None:
            headers = {**self._http_headers(body, content_type), **(extra_headers or {})}
            delivery = self._post_to_app(body, headers, kind=kind, event=event, event_id=event_id)
        else:
            envelope: JSON = {
                "envelope_id": str(uuid.uuid4()),
                "payload": payload,
                "type": kind,
                "accepts_response_payload": accepts_response_payload,
            }
            if kind == "events_api":
                envelope["retry_attempt"] = retry_attempt or 0
                envelope["retry_reason"] = retry_reason or ""
            delivery = self._send_envelope(envelope, kind=kind, event=event, event_id=event_id)
        self._record(self.deliveries, delivery)
        return delivery

    def _http_headers(self, body: bytes, content_type: str) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "User-Agent": _SLACKBOT_UA,
            "Accept": "*/*",
            **self.signed_headers(body),
        }

    def _post_to_app(
        self,
        body: bytes,
        headers: dict[str, str],
        *,
        kind: str,
        event: JSON | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        assert self.request_url is not None
        with self._cond:
            if self._http is None:
                self._http = httpx.Client(follow_redirects=False)
            http = self._http
            url = self.request_url
            if self.request_urls:
                url = self.request_urls[self._deliveries_sent % len(self.request_urls)]
                self._deliveries_sent += 1
        start = time.perf_counter()
        try:
            answer = http.post(url, content=body, headers=headers, timeout=self.delivery_timeout)
        except httpx.TimeoutException:
            return Delivery(0, "http_timeout", {}, time.perf_counter() - start, event, event_id, kind, "http")
        except httpx.TransportError as exc:
            reason = f"connection_failed: {type(exc).__name__}"
            return Delivery(0, reason, {}, time.perf_counter() - start, event, event_id, kind, "http")
        return Delivery(
            answer.status_code,
            answer.text,
            dict(answer.headers),
            time.perf_counter() - start,
            event,
            event_id,
            kind,
            "http",
        )

    def _handle_response_url(self, req: _Request, url_id: str) -> _Reply:
        try:
            body = json.loads(req.body) if req.body[:1] == b"{" else None
        except ValueError:
            body = None
        if body is None:
            form = parse_qs(req.body.decode("utf-8", "replace"))
            body = _maybe_json((form.get("payload") or [""])[-1])
        if not isinstance(body, dict):
            return _Reply.json({"ok": False, "error": "invalid_payload"}, 400)
        with self._cond:
            state = self._response_urls.get(url_id)
            if state is None:
                return _Reply.json({"ok": False, "error": "invalid_url"}, 404)
            if time.time() - state.created > _RESPONSE_URL_TTL_S:
                return _Reply.json({"ok": False, "error": "expired_url"}, 404)
            if state.uses >= _RESPONSE_URL_USES:
                return _Reply.json({"ok": False, "error": "used_url"}, 404)
            state.uses += 1
            self.responses.append(Response(url_id, body))
            if (
                body.get("response_type") == "in_channel"
                and state.channel_id
                and not body.get("replace_original")
            ):
                self.messages.append(
                    self._bot_message(
                        state.channel_id,
                        text=body.get("text"),
                        blocks=_maybe_json(body.get("blocks")),
                        thread_ts=body.get("thread_ts"),
                        via="response_url",
                    )
                )
            elif body.get("response_type", "ephemeral") == "ephemeral" and not body.get("replace_original"):
                self.ephemerals.append(
                    {
                        "channel": state.channel_id,
                        "user": state.user_id,
                        "text": body.get("text"),
                        "via": "response_url",
                    }
                )
            self._changed()
        return _Reply.json({"ok": True})
