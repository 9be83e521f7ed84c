"""Issue 17, end to end: the HTTP server stays up for Slack whatever idle, slow or hostile clients do."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import Stack, refuse_writes

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def idle_connections(port: int, n: int, *, partial: bytes = b"") -> Iterator[list[socket.socket]]:
    """``n`` connections that say ``partial`` (or nothing) and then go quiet."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if partial:
                sock.sendall(partial)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_300_idle_connections_do_not_stall_slacks_requests(stack: Stack) -> None:
    stack.slack.delivery_timeout = 3.0  # Slack's own deadline for an acknowledgement
    half = 150
    with (
        idle_connections(stack.app.port, half),
        idle_connections(stack.app.port, half, partial=b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"),
    ):
        acks = [stack.slack.send_command(f"a lighthouse, take {n}") for n in range(5)]
        assert [a.status for a in acks] == [200] * 5, [a.body for a in acks]
        assert httpx.get(f"{stack.app.url}/healthz", timeout=3).status_code == 200
    stack.uploads(5)


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (request line and headers) and ``body`` on a fresh connection; the first 4 KB back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        return sock.recv(4096)


def test_an_oversized_body_is_refused_from_its_length_before_it_is_read(stack: Stack) -> None:
    # Claims a gigabyte and sends a few bytes: the answer comes at once, without waiting for the rest,
    # so nothing of it is buffered or spooled to disk.
    head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
    answer = raw_request(stack.app.port, head, b'{"type": ')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert stack.slack.send_command("still here").status == 200


def test_deeply_nested_json_is_refused_without_a_traceback(stack: Stack) -> None:
    nested = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    unsigned = stack.slack.send_raw(
        nested,
        {"Content-Type": "application/json", "X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=0"},
    )
    assert unsigned.status == 401  # not even parsed: the signature is checked first
    signed = stack.slack.send_raw(
        nested, {"Content-Type": "application/json", **stack.slack.signed_headers(nested)}
    )
    assert signed.status == 400
    assert "Traceback" not in stack.app.logs()


POD_NAME = "nano-banana-worker-7f9c8d6b5-production-eu-west-1-abcdefghijklm"  # 63 characters


def can_rename_the_host() -> bool:
    probe = subprocess.run(
        ["unshare", "-u", "sh", "-c", f"hostname {POD_NAME} && hostname"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == POD_NAME


def test_a_63_character_hostname_still_claims_and_delivers(pg_stack: Stack) -> None:
    if not can_rename_the_host():
        pytest.skip("needs `unshare -u` (a UTS namespace) to give the app a long hostname")
    assert len(POD_NAME) == 63
    wrapper = ["unshare", "-u", "sh", "-c", f'hostname {POD_NAME} && exec "$@"', "sh"]
    pg_stack.start_app(wrapper=wrapper)
    assert pg_stack.slack.send_command("a lighthouse on a long-named pod").status == 200
    [upload] = pg_stack.uploads(1)
    [job] = pg_stack.wait_for_jobs(lambda jobs: jobs[0].state == "done")
    assert upload.shared and job.attempts == 1


def health(stack: Stack) -> int:
    return httpx.get(f"{stack.app.url}/healthz", timeout=5).status_code


def test_a_database_file_removed_under_the_app_turns_healthz_red(stack: Stack) -> None:
    assert health(stack) == 200
    database = Path(str(make_url(stack.env["DATABASE_URL"]).database))
    for path in database.parent.glob(database.name + "*"):  # the file, its WAL and shared memory
        path.unlink()
    assert health(stack) == 503


def test_a_database_that_refuses_writes_turns_healthz_red(pg_stack: Stack) -> None:
    """PostgreSQL answers reads but refuses writes (as a full disk or a read-only failover would)."""
    stack = pg_stack
    stack.start_app()
    assert health(stack) == 200
    refuse_writes(stack.env["DATABASE_URL"])
    stack.slack.wait_for(lambda: health(stack) == 503, timeout=20)
    refuse_writes(stack.env["DATABASE_URL"], refuse=False)
    stack.slack.wait_for(lambda: health(stack) == 200, timeout=20)


def test_an_over_long_model_name_is_a_clear_message_not_a_500(stack: Stack) -> None:
    ack = stack.slack.send_command("a fox --model gemini-" + "x" * 500)
    assert ack.status == 200
    assert "characters long; model IDs have at most 64" in ack.json()["text"]
    assert stack.jobs() == []
