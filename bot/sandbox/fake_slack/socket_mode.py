"""Stands in for Slack's Socket Mode: apps.connections.open and the WebSocket of envelopes and acks."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from websockets.sync.server import ServerConnection

from bot.sandbox.fake_slack.records import JSON, Delivery
from bot.sandbox.fake_slack.state import SlackState, _AckWaiter
from bot.sandbox.fake_slack.wire import _Params


class SocketMode(SlackState):
    """The part of ``FakeSlack`` that serves Socket Mode."""

    def send_socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask connected Socket Mode clients to reconnect, as Slack does every few hours."""
        with self._cond:
            connections = list(self._ws_connections)
        for conn in connections:
            conn.send(
                json.dumps(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}}
                )
            )

    def _send_envelope(
        self, envelope: JSON, *, kind: str, event: JSON | None, event_id: str | None
    ) -> Delivery:
        with self._cond:
            started = self._ws_server is not None
        if not started:
            raise RuntimeError(
                "nowhere to deliver: set fake.request_url (HTTP mode) or connect the app over Socket Mode"
            )
        self.wait_for_socket_connection(self.delivery_timeout)
        with self._cond:
            conn = self._ws_connections[-1]
            waiter = _AckWaiter()
            self._acks[envelope["envelope_id"]] = waiter
        start = time.perf_counter()
        try:
            conn.send(json.dumps(envelope))
            acked = waiter.event.wait(self.delivery_timeout)
        except Exception:  # the connection went away under us: Slack would retry later
            acked = False
        finally:
            with self._cond:
                self._acks.pop(envelope["envelope_id"], None)
        elapsed = time.perf_counter() - start
        if not acked:
            return Delivery(504, "", {}, elapsed, event, event_id, kind, "socket")
        body = json.dumps(waiter.payload) if waiter.has_payload else ""
        return Delivery(200, body, {}, elapsed, event, event_id, kind, "socket")

    def _ensure_socket_server(self) -> str:
        with self._cond:
            if self._ws_server is None:
                from websockets.sync.server import serve

                server = serve(self._ws_handler, "127.0.0.1", 0, compression=None, close_timeout=1)
                port = server.socket.getsockname()[1]
                thread = threading.Thread(target=server.serve_forever, name="fake-slack-socket", daemon=True)
                thread.start()
                self._ws_server, self._ws_thread = server, thread
                self._ws_url = f"ws://127.0.0.1:{port}/link/"
            ticket = str(uuid.uuid4())
            self._tickets.add(ticket)
            return f"{self._ws_url}?ticket={ticket}&app_id={self.api_app_id}"

    def _ws_handler(self, conn: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        query = parse_qs(urlsplit(conn.request.path if conn.request else "").query)
        ticket = (query.get("ticket") or [""])[0]
        with self._cond:
            known = ticket in self._tickets
        if not known:
            conn.close(code=1008, reason="invalid ticket")
            return
        try:
            with self._cond:
                hello = {
                    "type": "hello",
                    "num_connections": len(self._ws_connections) + 1,
                    "debug_info": {
                        "host": "applink-sandbox",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.api_app_id},
                }
            conn.send(json.dumps(hello))
            with self._cond:
                self._ws_connections.append(conn)
                self.socket_connects += 1
                self._changed()
            for raw in conn:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict) or "envelope_id" not in message:
                    continue
                with self._cond:
                    waiter = self._acks.get(str(message["envelope_id"]))
                if waiter is not None:
                    waiter.has_payload = "payload" in message
                    waiter.payload = message.get("payload")
                    waiter.event.set()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                if conn in self._ws_connections:
                    self._ws_connections.remove(conn)
                self._changed()

    def _apps_connections_open(self, p: _Params) -> JSON:
        return {"ok": True, "url": self._ensure_socket_server()}
