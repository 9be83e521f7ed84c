"""Stands in for Slack's file hosting and the v2 upload: upload URLs, completeUploadExternal, files.info.

Hosted files are served at ``url_private`` behind the bot token (a login-page redirect without it), and a
second, outside host records whether the bot ever sends its token anywhere else.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

from bot.sandbox.fake_slack.records import JSON, Download, Upload
from bot.sandbox.fake_slack.state import SlackState, _PendingUpload, _Share, _StoredFile
from bot.sandbox.fake_slack.wire import (
    _FILE_PATH,
    TINY_PNG,
    _ApiError,
    _filetype_for,
    _guess_mimetype,
    _image_size,
    _new_id,
    _Params,
    _parse_multipart,
    _Reply,
    _Request,
)


class Files(SlackState):
    """The part of ``FakeSlack`` that hosts files and takes uploads."""

    def file_object(self, file_id: str) -> dict[str, Any] | None:
        """What ``files.info`` would return for ``file_id`` right now (None when unknown)."""
        with self._cond:
            stored = self._files.get(file_id)
            return None if stored is None else self._file_with_shares(stored, now=time.time())

    def host_file(
        self,
        data: bytes,
        *,
        name: str,
        mimetype: str,
        filetype: str | None = None,
        declared_size: int | None = None,
        user: str = "UALICE",
    ) -> dict[str, Any]:
        """Host ``data`` like a file a user attached; returns its Slack file object (a copy)."""
        file_id = _new_id("F")
        obj = self._file_object(file_id, name=name, title=name, mimetype=mimetype, data=data, user=user)
        if filetype is not None:
            obj["filetype"] = filetype
            obj["pretty_type"] = filetype.upper()
        if declared_size is not None:
            obj["size"] = declared_size
        with self._cond:
            self._files[file_id] = _StoredFile(obj=obj, data=data)
        return json.loads(json.dumps(obj))  # type: ignore[no-any-return]

    def host_external_file(self, data: bytes, *, name: str, mimetype: str) -> dict[str, Any]:
        """A remote file (``is_external``): ``url_private`` points at ``external_host``, not at Slack."""
        file_id = _new_id("F")
        path = f"/ext/{file_id}/{quote(name)}"
        url = self.external_host + path
        obj = self._file_object(file_id, name=name, title=name, mimetype=mimetype, data=data, user="UALICE")
        obj.update(
            {
                "mode": "external",
                "is_external": True,
                "external_type": "app",
                "external_url": url,
                "url_private": url,
                "url_private_download": url,
            }
        )
        with self._cond:
            self._files[file_id] = _StoredFile(obj=obj, data=data, external=True)
            self._external_paths[path] = (data, mimetype)
        return json.loads(json.dumps(obj))  # type: ignore[no-any-return]

    def file_stub(self, file: dict[str, Any]) -> dict[str, Any]:
        """The stub Slack Connect events carry instead of a file object; ``files.info`` has the rest."""
        return {"id": file["id"], "file_access": "check_file_info"}

    def _route_external(self, req: _Request) -> _Reply:
        auth = req.headers.get("authorization")
        with self._cond:
            data, mimetype = self._external_paths.get(req.path, (TINY_PNG, "image/png"))
        self._record(self.external_requests, Download(req.path, had_token=auth is not None))
        return _Reply(200, data, mimetype)

    def _handle_upload(self, req: _Request, file_id: str) -> _Reply:
        content_type = req.headers.get("content-type", "")
        data = _parse_multipart(content_type, req.body) if content_type.startswith("multipart/") else req.body
        with self._cond:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return _Reply.text("Not Found", 404)
            pending.data = data
            self._changed()
        return _Reply.text(f"OK - {len(data)}")

    def _handle_download(self, req: _Request) -> _Reply:
        match = _FILE_PATH.fullmatch(req.path)
        assert match is not None
        auth = req.headers.get("authorization")
        with self._cond:
            authorized = auth is not None and auth.removeprefix("Bearer ") in self._tokens
            stored = self._files.get(match.group(2))
        if stored is None or stored.external:
            self._record(self.downloads, Download(req.path, auth is not None, authorized, 404))
            return _Reply.text("Not Found", 404)
        if not authorized:
            self._record(self.downloads, Download(req.path, auth is not None, False, 302))
            location = f"{self.base_url}/login?redir={quote(req.path, safe='')}"
            return _Reply(302, b"", "text/html; charset=utf-8", {"Location": location})
        self._record(self.downloads, Download(req.path, True, True, 200))
        name = str(stored.obj.get("name", "file"))
        headers = {"Content-Disposition": f'attachment; filename="{quote(name)}"', "Cache-Control": "private"}
        return _Reply(200, stored.data, str(stored.obj.get("mimetype", "application/octet-stream")), headers)

    def _file_object(
        self, file_id: str, *, name: str, title: str, mimetype: str, data: bytes, user: str
    ) -> JSON:
        now = int(time.time())
        filetype = _filetype_for(name, mimetype)
        quoted = quote(name)
        obj: JSON = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base_url}/files-pri/{self.team_id}-{file_id}/{quoted}",
            "url_private_download": f"{self.base_url}/files-pri/{self.team_id}-{file_id}/download/{quoted}",
            "permalink": f"{self.base_url}/files/{user}/{file_id}/{quoted}",
            "permalink_public": f"{self.base_url}/{self.team_id}-{file_id}-{uuid.uuid4().hex[:10]}",
            "is_starred": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        size = _image_size(data) if mimetype.startswith("image/") else None
        if size is not None:
            obj["original_w"], obj["original_h"] = size
        return obj

    def _file_with_shares(self, stored: _StoredFile, *, now: float) -> JSON:
        obj: JSON = json.loads(json.dumps(stored.obj))
        shares: dict[str, dict[str, list[JSON]]] = {}
        channels: list[str] = []
        groups: list[str] = []
        ims: list[str] = []
        for share in stored.shares:
            if share.visible_at > now:
                continue
            kind = "public" if share.channel.startswith("C") else "private"
            entry: JSON = {
                "reply_users": [],
                "reply_users_count": 0,
                "reply_count": 0,
                "ts": share.ts,
                "channel_name": self._channel_name(share.channel),
                "team_id": self.team_id,
                "share_user_id": stored.obj.get("user"),
                "source": "UNKNOWN",
            }
            if share.thread_ts:
                entry["thread_ts"] = share.thread_ts
            shares.setdefault(kind, {}).setdefault(share.channel, []).append(entry)
            bucket = (
                channels
                if share.channel.startswith("C")
                else ims
                if share.channel.startswith("D")
                else groups
            )
            if share.channel not in bucket:
                bucket.append(share.channel)
        obj["shares"] = shares
        obj["channels"], obj["groups"], obj["ims"] = channels, groups, ims
        obj["is_public"] = bool(channels)
        return obj

    def _files_get_upload_url(self, p: _Params) -> JSON:
        filename = p.need("filename", "invalid_arguments")
        length = p.need("length", "invalid_arguments")
        if not length.isdigit() or int(length) <= 0:
            raise _ApiError("invalid_arguments")
        alt_txt = p.string("alt_txt")
        if alt_txt is not None and len(alt_txt) > 1000:
            raise _ApiError("alt_txt_too_large")
        file_id = _new_id("F")
        self._pending_uploads[file_id] = _PendingUpload(file_id, filename, int(length), alt_txt)
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, p: _Params) -> JSON:
        entries = p.parsed("files")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        channels: list[str] = []
        if p.string("channel_id"):
            channels.append(str(p.string("channel_id")))
        for extra in (p.string("channels") or "").split(","):
            if extra.strip() and extra.strip() not in channels:
                channels.append(extra.strip())
        thread_ts = p.string("thread_ts")
        if thread_ts is not None and len(channels) != 1:
            raise _ApiError("invalid_arguments")
        for channel in channels:
            self._check_writable(channel)
        pendings: list[tuple[_PendingUpload, str]] = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("id"):
                raise _ApiError("invalid_arguments")
            pending = self._pending_uploads.get(str(entry["id"]))
            if pending is None or pending.data is None:
                raise _ApiError("file_not_found")
            pendings.append((pending, str(entry.get("title") or pending.filename)))

        initial_comment = p.string("initial_comment")
        share = bool(channels) and not p.never_share
        file_objects: list[JSON] = []
        stored_files: list[_StoredFile] = []
        for pending, title in pendings:
            del self._pending_uploads[pending.file_id]
            data = pending.data or b""
            mimetype = _guess_mimetype(pending.filename, data)
            obj = self._file_object(
                pending.file_id,
                name=pending.filename,
                title=title,
                mimetype=mimetype,
                data=data,
                user=self.bot_user_id,
            )
            if pending.alt_txt:
                obj["alt_txt"] = pending.alt_txt
            stored = _StoredFile(obj=obj, data=data)
            self._files[pending.file_id] = stored
            stored_files.append(stored)
            file_objects.append(self._file_with_shares(stored, now=time.time()))

        message_ts: dict[str, str] = {}
        if share:
            visible_at = time.time() + self.share_delay_s
            for channel in channels:
                blocks = None if initial_comment else p.parsed("blocks")
                record = self._bot_message(
                    channel,
                    text=initial_comment or "",
                    blocks=blocks,
                    thread_ts=thread_ts,
                    via="files.completeUploadExternal",
                    files=[json.loads(json.dumps(f)) for f in file_objects],
                )
                record["upload"] = True
                self.messages.append(record)
                message_ts[channel] = record["ts"]
                for stored in stored_files:
                    stored.shares.append(_Share(channel, record["ts"], thread_ts, visible_at))

        for (pending, title), _stored in zip(pendings, stored_files, strict=True):
            self.uploads.append(
                Upload(
                    file_id=pending.file_id,
                    filename=pending.filename,
                    title=title,
                    data=pending.data or b"",
                    channel=channels[0] if channels else None,
                    thread_ts=thread_ts,
                    initial_comment=initial_comment,
                    shared=share,
                    channels=tuple(channels),
                    message_ts=message_ts.get(channels[0]) if channels else None,
                    alt_txt=pending.alt_txt,
                )
            )
        return {"ok": True, "files": file_objects}

    def _files_delete(self, p: _Params) -> JSON:
        """The file is gone, and so are the messages that showed it (as in Slack). Only its uploader may
        delete it (a bot token can't delete a person's file)."""
        file_id = p.need("file", "invalid_arguments")
        stored = self._files.get(file_id)
        if stored is None:
            raise _ApiError("file_not_found")
        if stored.obj.get("user") != self.bot_user_id:
            raise _ApiError("cant_delete_file")
        del self._files[file_id]
        for share in stored.shares:
            record = self._find_message(share.channel, share.ts)
            if record is not None:
                record["deleted"] = True
        self.deleted_files.append(file_id)
        return {"ok": True}

    def _files_info(self, p: _Params) -> JSON:
        file_id = p.need("file", "invalid_arguments")
        stored = self._files.get(file_id)
        if stored is None:
            raise _ApiError("file_not_found")
        return {
            "ok": True,
            "file": self._file_with_shares(stored, now=time.time()),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }
