"""The stand-ins' shared HTTP server: it takes bursts of connections as Slack's and Google's front ends do."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler

from bot.sandbox._http import LoopbackHTTPServer


def test_a_burst_of_connections_waits_in_the_queue_instead_of_being_dropped() -> None:
    """Fifty workers whose Gemini answers land together connect at once. With ``socketserver``'s backlog of
    5 the kernel dropped the rest, and each dropped connection came back a second later (TCP's first
    retry): the benchmark's first round of jobs took a second longer, charged to the app."""
    server = LoopbackHTTPServer(BaseHTTPRequestHandler)  # listening, and accepting nothing yet
    host, port = server.server_address[:2]
    clients: list[socket.socket] = []
    try:
        for _ in range(64):
            clients.append(socket.create_connection((str(host), int(port)), timeout=0.5))
    finally:
        for client in clients:
            client.close()
        server.server_close()
    assert len(clients) == 64
