"""Stands in for Slack's Web API methods: chat, conversations, reactions, users, views and auth."""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from bot.sandbox.fake_slack.installs import basic_credentials
from bot.sandbox.fake_slack.records import JSON, ApiCall
from bot.sandbox.fake_slack.state import SlackState, _Channel
from bot.sandbox.fake_slack.wire import (
    _CHANNEL_ID,
    _EDGE_ERROR_HTML,
    _USER_ID,
    DROP_CONNECTION,
    _ApiError,
    _new_id,
    _Params,
    _Reply,
    _Request,
    _truthy,
)


class WebApi(SlackState):
    """The part of ``FakeSlack`` that answers Web API calls (auth, faults, then the method)."""

    def _handle_api(self, req: _Request, method: str) -> _Reply:
        if self.api_latency_s > 0:
            time.sleep(self.api_latency_s)
        params: dict[str, Any] = {k: v[-1] for k, v in req.query.items()}
        content_type = req.headers.get("content-type", "")
        if req.body:
            if content_type.startswith("application/json"):
                try:
                    parsed = json.loads(req.body)
                except ValueError:
                    return _Reply.json({"ok": False, "error": "invalid_json"})
                if isinstance(parsed, dict):
                    params.update(parsed)
            elif content_type.startswith("multipart/form-data"):
                return _Reply.json({"ok": False, "error": "invalid_form_data"})
            else:
                form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
                params.update({k: v[-1] for k, v in form.items()})
        auth = req.headers.get("authorization", "")
        token: str | None = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        basic = basic_credentials(auth)
        body_token = params.pop("token", None)
        if token is None and isinstance(body_token, str) and body_token:
            token = body_token

        with self._cond:
            self.calls.append(ApiCall(method, params, token, time.time()))
            queue = self._faults.get(method)
            fault = queue.popleft() if queue else None
            self._changed()

        if fault is not None and not fault.never_share and fault.lose_answer is None:
            if fault.http_status >= 500:
                return _Reply(fault.http_status, _EDGE_ERROR_HTML, "text/html")
            headers = {}
            if fault.http_status == 429:
                retry_after = 1 if fault.retry_after is None else max(0, math.ceil(fault.retry_after))
                headers["Retry-After"] = str(retry_after)
            return _Reply.json({"ok": False, "error": fault.error}, fault.http_status, headers)

        handler = self._methods.get(method)
        if handler is None:
            return _Reply.json({"ok": False, "error": "unknown_method", "req_method": method})
        auth_error = None if method == "oauth.v2.access" else self._auth_error(method, token)
        if auth_error is not None:
            return _Reply.json({"ok": False, "error": auth_error})
        with self._cond:
            team = self._tokens.get(token or "", self.team_id)
            never_share = fault is not None and fault.never_share
            try:
                result = handler(_Params(params, never_share=never_share, team=team, basic_auth=basic))
            except _ApiError as exc:
                result = {"ok": False, "error": exc.error}
            self._changed()
        if fault is not None and fault.lose_answer == "5xx":
            return _Reply(500, _EDGE_ERROR_HTML, "text/html")
        if fault is not None and fault.lose_answer == "drop":
            return DROP_CONNECTION
        return _Reply.json(result)

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "invalid_auth" if token.startswith("xapp-") else "not_allowed_token_type"
        if token == self.app_token:
            return "not_allowed_token_type"
        with self._cond:
            if token in self._tokens:
                return None
            return "token_revoked" if token in self._revoked else "invalid_auth"

    def _auth_test(self, p: _Params) -> JSON:
        return {
            "ok": True,
            "url": self.base_url + "/",
            "team": self._team_names.get(p.team, p.team),
            "user": "nanobanana",
            "team_id": p.team,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, p: _Params) -> JSON:
        channel = self._resolve_channel(p.need("channel", "channel_not_found"))
        self._check_writable(channel)
        text, blocks = p.string("text"), p.parsed("blocks")
        if text is None and not blocks and not p.parsed("attachments"):
            raise _ApiError("no_text")
        record = self._bot_message(
            channel, text=text, blocks=blocks, thread_ts=p.string("thread_ts"), via="chat.postMessage"
        )
        if _truthy(p.values.get("reply_broadcast")):
            record["reply_broadcast"] = True
        if p.parsed("attachments"):
            record["attachments"] = p.parsed("attachments")
        if p.string("metadata"):
            record["metadata"] = p.parsed("metadata")
        self.messages.append(record)
        return {"ok": True, "channel": channel, "ts": record["ts"], "message": self._public_message(record)}

    def _chat_update(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        self._check_writable(channel)
        record = self._find_message(channel, p.need("ts", "message_not_found"))
        if record is None or record.get("deleted"):
            raise _ApiError("message_not_found")
        if record.get("user") != self.bot_user_id:
            raise _ApiError("cant_update_message")
        text, blocks = p.string("text"), p.parsed("blocks")
        if all(v is None for v in (text, blocks, p.parsed("attachments"), p.parsed("file_ids"))):
            raise _ApiError("no_text")
        if text is not None:
            record["text"] = text
        if blocks is not None:
            record["blocks"] = blocks
        if p.parsed("file_ids") is not None:
            record["file_ids"] = p.parsed("file_ids")
        record["edited"] = {"user": self.bot_user_id, "ts": self._clock.next()}
        record.setdefault("updates", 0)
        record["updates"] += 1
        return {
            "ok": True,
            "channel": channel,
            "ts": record["ts"],
            "text": record["text"],
            "message": self._public_message(record),
        }

    def _chat_delete(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        record = self._find_message(channel, p.need("ts", "message_not_found"))
        if record is None or record.get("deleted"):
            raise _ApiError("message_not_found")
        if record.get("user") != self.bot_user_id:
            raise _ApiError("cant_delete_message")
        record["deleted"] = True
        return {"ok": True, "channel": channel, "ts": record["ts"]}

    def _chat_post_ephemeral(self, p: _Params) -> JSON:
        channel = self._resolve_channel(p.need("channel", "channel_not_found"))
        user = p.need("user", "user_not_in_channel")
        self._check_writable(channel)
        if p.string("text") is None and not p.parsed("blocks"):
            raise _ApiError("no_text")
        ts = self._clock.next()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": p.string("text"),
                "blocks": p.parsed("blocks"),
                "thread_ts": p.string("thread_ts"),
                "ts": ts,
                "via": "chat.postEphemeral",
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        record = self._find_message(channel, p.need("message_ts", "message_not_found"))
        if record is None:
            raise _ApiError("message_not_found")
        link = f"{self.base_url}/archives/{channel}/p{record['ts'].replace('.', '')}"
        if record.get("thread_ts") and record["thread_ts"] != record["ts"]:
            link += f"?thread_ts={record['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _reactions_add(self, p: _Params) -> JSON:
        channel = p.need("channel", "no_item_specified")
        name = p.need("name", "invalid_name").strip(":")
        self._check_writable(channel)
        record = self._find_message(channel, p.need("timestamp", "no_item_specified"))
        if record is None:
            raise _ApiError("message_not_found")
        reactions: list[JSON] = record.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is not None and self.bot_user_id in reaction["users"]:
            raise _ApiError("already_reacted")
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        reaction["users"].append(self.bot_user_id)
        reaction["count"] += 1
        return {"ok": True}

    def _reactions_remove(self, p: _Params) -> JSON:
        channel = p.need("channel", "no_item_specified")
        name = p.need("name", "invalid_name").strip(":")
        record = self._find_message(channel, p.need("timestamp", "no_item_specified"))
        if record is None:
            raise _ApiError("message_not_found")
        reactions: list[JSON] = record.get("reactions") or []
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None or self.bot_user_id not in reaction["users"]:
            raise _ApiError("no_reaction")
        reaction["users"].remove(self.bot_user_id)
        reaction["count"] -= 1
        if not reaction["users"]:
            reactions.remove(reaction)
        return {"ok": True}

    def _conversations_info(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        if not _CHANNEL_ID.fullmatch(channel):
            raise _ApiError("channel_not_found")
        state = self._channel(channel)
        if not state.member and not channel.startswith("C"):
            raise _ApiError("channel_not_found")
        created = 1_700_000_000
        if channel.startswith("D"):
            info: JSON = {
                "id": channel,
                "created": created,
                "is_im": True,
                "is_org_shared": False,
                "user": state.user or "UALICE",
                "is_user_deleted": False,
                "priority": 0,
            }
        else:
            name = self._channel_name(channel)
            info = {
                "id": channel,
                "name": name,
                "name_normalized": name,
                "created": created,
                "creator": "UALICE",
                "is_channel": channel.startswith("C"),
                "is_group": channel.startswith("G"),
                "is_im": False,
                "is_mpim": False,
                "is_private": not channel.startswith("C"),
                "is_archived": state.archived,
                "is_general": name == "general",
                "is_shared": False,
                "is_ext_shared": False,
                "is_org_shared": False,
                "is_member": state.member,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
        return {"ok": True, "channel": info}

    def _conversations_open(self, p: _Params) -> JSON:
        existing = p.string("channel")
        if existing:
            return {"ok": True, "channel": {"id": existing}}
        users = [u.strip() for u in (p.need("users", "users_list_not_supplied")).split(",") if u.strip()]
        if not all(_USER_ID.fullmatch(u) for u in users):
            raise _ApiError("user_not_found")
        if len(users) == 1:
            channel = self._open_dm(users[0])
        else:
            channel = (
                "G" + hashlib.sha1(",".join(sorted(users)).encode(), usedforsecurity=False).hexdigest()[:10]
            )
            channel = channel.upper()
            self._channels.setdefault(channel, _Channel(name="mpdm-" + "--".join(u.lower() for u in users)))
        return {"ok": True, "no_op": False, "already_open": False, "channel": {"id": channel}}

    def _conversations_history(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        oldest = float(p.string("oldest") or 0)
        limit = int(p.string("limit") or 100)
        metadata = _truthy(p.values.get("include_all_metadata"))
        items = [
            self._public_message(m, include_metadata=metadata)
            for m in self.messages
            if m["channel"] == channel
            and not m.get("deleted")
            and (not m.get("thread_ts") or m["thread_ts"] == m["ts"])
            and float(m["ts"]) > oldest
        ]
        items.reverse()
        return {"ok": True, "messages": items[:limit], "has_more": len(items) > limit}

    def _conversations_replies(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        ts = p.need("ts", "thread_not_found")
        oldest = float(p.string("oldest") or 0)
        limit = int(p.string("limit") or 1000)
        metadata = _truthy(p.values.get("include_all_metadata"))
        thread = [m for m in self.thread(channel, ts) if not m.get("deleted")]
        if not thread:
            raise _ApiError("thread_not_found")
        # The parent always comes first, as on Slack; then the replies after ``oldest``.
        replies = [m for m in thread[1:] if float(m["ts"]) > oldest]
        items = [self._public_message(m, include_metadata=metadata) for m in [thread[0], *replies][:limit]]
        return {"ok": True, "messages": items, "has_more": len(replies) + 1 > limit}

    def _users_info(self, p: _Params) -> JSON:
        user_id = p.need("user", "user_not_found")
        if not _USER_ID.fullmatch(user_id):
            raise _ApiError("user_not_found")
        name = self._user_name(user_id)
        overrides = dict(self._users.get(user_id, {}))
        real_name = str(overrides.pop("real_name", name.title()))
        user: JSON = {
            "id": user_id,
            "team_id": p.team,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "is_admin": False,
            "is_owner": False,
            "is_bot": user_id == self.bot_user_id,
            "is_app_user": False,
            "profile": {
                "display_name": name,
                "real_name": real_name,
                "image_72": f"{self.base_url}/avatars/{user_id}_72.png",
            },
        }
        user.update(overrides)
        return {"ok": True, "user": user}

    def _new_view(self, view: Any, *, view_id: str | None = None) -> JSON:
        if not isinstance(view, dict) or "type" not in view:
            raise _ApiError("invalid_arguments")
        view_id = view_id or _new_id("V")
        stored: JSON = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.api_app_id,
            "bot_id": self.bot_id,
            "app_installed_team_id": self.team_id,
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "hash": uuid.uuid4().hex[:16],
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": view_id,
            "previous_view_id": None,
            **view,
        }
        self.views[view_id] = stored
        return stored

    def _views_open(self, p: _Params) -> JSON:
        p.need("trigger_id", "invalid_trigger_id")
        return {"ok": True, "view": self._new_view(p.parsed("view"))}

    def _views_update(self, p: _Params) -> JSON:
        view_id = p.string("view_id")
        external_id = p.string("external_id")
        if view_id is None and external_id is not None:
            view_id = next((k for k, v in self.views.items() if v.get("external_id") == external_id), None)
        if view_id is None or view_id not in self.views:
            raise _ApiError("not_found")
        expected = p.string("hash")
        if expected is not None and expected != self.views[view_id]["hash"]:
            raise _ApiError("hash_conflict")
        return {"ok": True, "view": self._new_view(p.parsed("view"), view_id=view_id)}

    def _views_publish(self, p: _Params) -> JSON:
        user_id = p.need("user_id", "invalid_arguments")
        view = p.parsed("view")
        if isinstance(view, dict) and view.get("type") != "home":
            raise _ApiError("invalid_arguments")
        home_id = "VHOME" + user_id[1:]
        stored = self._new_view(view, view_id=home_id)
        stored["user_id"] = user_id
        return {"ok": True, "view": stored}
