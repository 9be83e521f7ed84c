"""Tiny shared plumbing for the loopback stand-ins: a threaded HTTP server on 127.0.0.1 in a daemon thread.

Nothing here logs: request lines can carry API keys (``?key=``) and bodies can carry images.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` bound to 127.0.0.1 on a free port that remembers its open connections,
    so ``close_connections`` can cut off keep-alive clients when the stand-in stops."""

    daemon_threads = True
    block_on_close = False
    # The listen backlog: ``socketserver``'s 5 drops a burst's connections, and TCP sends each again only a
    # second later; the real services' front ends queue them.
    request_queue_size = 1024

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), handler_class)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class ServerThread:
    """Runs a ``LoopbackHTTPServer`` for ``handler_class`` in a daemon thread."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], *, name: str = "loopback-http") -> None:
        self._handler_class = handler_class
        self._name = name
        self._server: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._name} is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            return
        server = LoopbackHTTPServer(self._handler_class)
        # A short poll interval keeps stop() fast (shutdown() waits for the serve loop to notice).
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self._name, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler base with body/JSON helpers and no access log."""

    protocol_version = "HTTP/1.1"
    server_version = "loopback"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Never log: request lines may hold API keys."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ValueError:  # the base class flushes a stream that reset_connection() closed on purpose
            if not getattr(self, "_was_reset", False):
                raise

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked); b"" when there is none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> bool:
        """Send a complete response; False if the client had already gone away."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
            return False
        return True

    def send_json(self, status: int, payload: object, headers: Mapping[str, str] | None = None) -> bool:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self.send_bytes(status, body, "application/json; charset=UTF-8", headers)

    def reset_connection(self) -> None:
        """Drop the TCP connection without a response, with an RST (SO_LINGER 0) rather than a FIN."""
        self.close_connection = True
        self._was_reset = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The buffered files hold references to the socket; close them so close() really closes it.
        for stream in (self.rfile, self.wfile):
            with contextlib.suppress(OSError):
                stream.close()
        conn.close()
