"""FakeSlack against the real slack_sdk WebClient, a Bolt app over HTTP, and Bolt's Socket Mode handler."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from PIL import Image
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.sandbox._http import QuietHandler, ServerThread
from bot.sandbox.fake_slack import FakeSlack

TS = re.compile(r"^\d{10}\.\d{6}$")


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "yellow").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=fake.api_url)


def bolt_app(fake: FakeSlack, **kwargs: Any) -> App:
    client = WebClient(token=fake.bot_token, base_url=fake.api_url)
    return App(client=client, signing_secret=fake.signing_secret, **kwargs)


class BoltServer:
    """Serves a Bolt app over HTTP on loopback, like ``app.start()`` but in a daemon thread."""

    def __init__(self, app: App) -> None:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.read_body().decode()
                headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in self.headers.items()}
                response = app.dispatch(BoltRequest(body=body, headers=headers))
                content_type = response.headers.get("content-type", ["text/plain"])[0]
                self.send_bytes(response.status, (response.body or "").encode(), content_type)

        self.thread = ServerThread(Handler, name="bolt-under-test")
        self.thread.start()
        self.url = self.thread.url + "/slack/events"

    def stop(self) -> None:
        self.thread.stop()


# ---------------------------------------------------------------------------------------------- Web API


def test_auth_test_and_chat_round_trip(fake: FakeSlack, client: WebClient) -> None:
    auth = client.auth_test()
    assert auth["user_id"] == "UBANANA"
    assert auth["bot_id"] == "BBANANA"
    assert auth["team_id"] == "T0SANDBOX"
    assert auth["is_enterprise_install"] is False

    posted = client.chat_postMessage(channel="C0GENERAL", text="working…", blocks=[{"type": "divider"}])
    assert posted["channel"] == "C0GENERAL"
    assert TS.match(posted["ts"])
    assert posted["message"]["bot_id"] == "BBANANA"
    assert posted["message"]["user"] == "UBANANA"
    reply = client.chat_postMessage(channel="C0GENERAL", text="in thread", thread_ts=posted["ts"])
    assert float(reply["ts"]) > float(posted["ts"])

    client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="done")
    client.reactions_add(channel="C0GENERAL", timestamp=posted["ts"], name="banana")
    with pytest.raises(SlackApiError) as dup:
        client.reactions_add(channel="C0GENERAL", timestamp=posted["ts"], name="banana")
    assert dup.value.response["error"] == "already_reacted"
    client.reactions_remove(channel="C0GENERAL", timestamp=posted["ts"], name="banana")

    link = client.chat_getPermalink(channel="C0GENERAL", message_ts=reply["ts"])["permalink"]
    assert link.startswith(fake.base_url + "/archives/C0GENERAL/p")
    assert f"thread_ts={posted['ts']}" in link
    ephemeral = client.chat_postEphemeral(channel="C0GENERAL", user="UALICE", text="only you")
    assert TS.match(ephemeral["message_ts"])
    client.chat_delete(channel="C0GENERAL", ts=reply["ts"])

    original = fake.message("C0GENERAL", posted["ts"])
    assert original is not None
    assert original["text"] == "done"
    assert original["blocks"] == [{"type": "divider"}]
    assert fake.message("C0GENERAL", reply["ts"])["deleted"] is True  # type: ignore[index]
    assert fake.messages[1]["thread_ts"] == posted["ts"]
    calls = fake.calls_to("chat.postMessage")
    assert [c.token for c in calls] == [fake.bot_token, fake.bot_token]
    assert calls[0].decoded("blocks") == [{"type": "divider"}]
    assert "token" not in calls[0].params


def test_other_methods(fake: FakeSlack, client: WebClient) -> None:
    dm = client.conversations_open(users="UALICE")["channel"]["id"]
    assert dm.startswith("D")
    assert client.conversations_info(channel=dm)["channel"]["is_im"] is True
    assert client.conversations_info(channel="C0GENERAL")["channel"]["name"] == "general"
    assert client.chat_postMessage(channel="UALICE", text="hi")["channel"] == dm
    assert client.users_info(user="UALICE")["user"]["name"] == "alice"

    opened = client.views_open(trigger_id="123.456.abc", view={"type": "modal", "callback_id": "edit"})[
        "view"
    ]
    updated = client.views_update(view_id=opened["id"], view={"type": "modal", "callback_id": "edit2"})[
        "view"
    ]
    assert updated["id"] == opened["id"]
    assert updated["callback_id"] == "edit2"
    home = client.views_publish(user_id="UALICE", view={"type": "home", "blocks": []})["view"]
    assert fake.views[home["id"]]["type"] == "home"

    with pytest.raises(SlackApiError) as unknown:
        client.api_call("chat.frobnicate")
    assert unknown.value.response["error"] == "unknown_method"


def test_auth_errors(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=fake.api_url).chat_postMessage(channel="C0GENERAL", text="x")
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=fake.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as app_token:
        WebClient(token=fake.app_token, base_url=fake.api_url).auth_test()
    assert app_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as bot_on_socket:
        WebClient(base_url=fake.api_url).apps_connections_open(app_token=fake.bot_token)
    assert bot_on_socket.value.response["error"] == "not_allowed_token_type"
    assert [c.token for c in fake.calls] == ["xoxb-wrong", None, fake.app_token, fake.bot_token]


def test_channel_membership_errors(fake: FakeSlack, client: WebClient) -> None:
    fake.set_channel("C0OUTSIDE", member=False)
    fake.set_channel("G0SECRET", member=False)
    fake.set_channel("C0OLD", archived=True)

    def error_of(call: Any) -> str:
        with pytest.raises(SlackApiError) as info:
            call()
        return str(info.value.response["error"])

    assert error_of(lambda: client.chat_postMessage(channel="C0OUTSIDE", text="x")) == "not_in_channel"
    assert error_of(lambda: client.chat_postMessage(channel="G0SECRET", text="x")) == "channel_not_found"
    assert error_of(lambda: client.chat_postMessage(channel="C0OLD", text="x")) == "is_archived"
    upload = lambda: client.files_upload_v2(file=png_bytes(), filename="a.png", channel="C0OUTSIDE")  # noqa: E731
    assert error_of(upload) == "not_in_channel"
    assert error_of(lambda: client.chat_postMessage(channel="#general", text="x")) == "channel_not_found"
    assert fake.uploads == []
    assert fake.messages == []


def test_files_upload_v2_end_to_end(fake: FakeSlack, client: WebClient) -> None:
    data = png_bytes(8, 6)
    parent = client.chat_postMessage(channel="C0GENERAL", text="a banana please")["ts"]

    result = client.files_upload_v2(
        file=data, filename="banana.png", channel="C0GENERAL", thread_ts=parent, initial_comment="Here you go"
    )

    file = result["file"]
    assert file["id"].startswith("F")
    assert file["shares"] == {}  # like Slack: the share is not visible in the completion answer
    (upload,) = fake.wait_for_uploads(1)
    assert upload.data == data
    assert (upload.filename, upload.title, upload.channel) == ("banana.png", "banana.png", "C0GENERAL")
    assert (upload.thread_ts, upload.initial_comment, upload.shared) == (parent, "Here you go", True)
    assert fake.calls_to("files.completeUploadExternal")[0].decoded("files") == [
        {"id": file["id"], "title": "banana.png"}
    ]

    info = client.files_info(file=file["id"])["file"]
    (share,) = info["shares"]["public"]["C0GENERAL"]
    assert share["thread_ts"] == parent
    assert share["ts"] == upload.message_ts
    assert (info["mimetype"], info["filetype"], info["original_w"], info["original_h"]) == (
        "image/png",
        "png",
        8,
        6,
    )
    message = fake.message("C0GENERAL", share["ts"])
    assert message is not None
    assert message["text"] == "Here you go"
    assert message["thread_ts"] == parent
    assert [f["id"] for f in message["files"]] == [file["id"]]
    assert client.chat_getPermalink(channel="C0GENERAL", message_ts=share["ts"])["ok"]

    downloaded = httpx.get(
        info["url_private_download"], headers={"Authorization": f"Bearer {fake.bot_token}"}
    )
    assert downloaded.content == data


def test_private_channel_shares_are_private_and_unshared_files_stay_private(
    fake: FakeSlack, client: WebClient
) -> None:
    in_group = client.files_upload_v2(file=b"hello", filename="a.txt", channel="G0TEAM")["file"]["id"]
    assert list(client.files_info(file=in_group)["file"]["shares"]) == ["private"]
    alone = client.files_upload_v2(file=b"hello", filename="b.txt")["file"]["id"]
    assert client.files_info(file=alone)["file"]["shares"] == {}
    assert [u.shared for u in fake.uploads] == [True, False]


def test_multipart_upload_and_delayed_share(fake: FakeSlack, client: WebClient) -> None:
    data = png_bytes()
    ticket = client.files_getUploadURLExternal(filename="m.png", length=len(data))
    posted = httpx.post(ticket["upload_url"], files={"file": ("m.png", data, "image/png")})
    assert (posted.status_code, posted.text) == (200, f"OK - {len(data)}")
    fake.share_delay_s = 0.2
    client.files_completeUploadExternal(
        files=[{"id": ticket["file_id"], "title": "M"}], channel_id="C0GENERAL"
    )
    assert fake.uploads[0].data == data
    assert client.files_info(file=ticket["file_id"])["file"]["shares"] == {}
    shared = fake.wait_for(lambda: (fake.file_object(ticket["file_id"]) or {}).get("shares"), timeout=5)
    assert list(shared["public"]) == ["C0GENERAL"]


def test_never_share_fault(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("files.completeUploadExternal", never_share=True)
    result = client.files_upload_v2(file=png_bytes(), filename="lost.png", channel="C0GENERAL")
    assert result["ok"]
    assert client.files_info(file=result["file"]["id"])["file"]["shares"] == {}
    assert fake.messages == []
    assert [u.shared for u in fake.uploads] == [False]
    # the fault is consumed: the next upload is shared
    client.files_upload_v2(file=png_bytes(), filename="ok.png", channel="C0GENERAL")
    assert [u.filename for u in fake.wait_for_uploads(1)] == ["ok.png"]


def test_rate_limit_is_retried_by_slack_sdk(fake: FakeSlack) -> None:
    fake.fail("chat.postMessage", retry_after=0)
    plain = WebClient(token=fake.bot_token, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as limited:
        plain.chat_postMessage(channel="C0GENERAL", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers["Retry-After"] == "0"

    fake.fail("chat.postMessage", retry_after=0, times=1)
    retrying = WebClient(
        token=fake.bot_token,
        base_url=fake.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert retrying.chat_postMessage(channel="C0GENERAL", text="second try")["ok"]
    assert len(fake.calls_to("chat.postMessage")) == 3
    assert [m["text"] for m in fake.messages] == ["second try"]


def test_faults_with_errors_and_server_errors(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("reactions.add", error="invalid_name", times=2)
    ts = client.chat_postMessage(channel="C0GENERAL", text="x")["ts"]
    for _ in range(2):
        with pytest.raises(SlackApiError) as failed:
            client.reactions_add(channel="C0GENERAL", timestamp=ts, name="eyes")
        assert failed.value.response["error"] == "invalid_name"
    assert client.reactions_add(channel="C0GENERAL", timestamp=ts, name="eyes")["ok"]

    fake.fail("chat.update", http_status=500)
    with pytest.raises(SlackApiError) as edge:
        client.chat_update(channel="C0GENERAL", ts=ts, text="y")
    assert edge.value.response.status_code == 500


# ---------------------------------------------------------------------------------------------- files


def test_url_private_requires_the_bot_token(fake: FakeSlack, client: WebClient) -> None:
    data = png_bytes(4, 4)
    file = fake.host_file(data, name="cat.png", mimetype="image/png")
    assert (file["mode"], file["is_external"], file["size"], file["original_w"]) == (
        "hosted",
        False,
        len(data),
        4,
    )

    anonymous = httpx.get(file["url_private"])
    assert anonymous.status_code == 302
    login = httpx.get(file["url_private"], follow_redirects=True)
    assert login.status_code == 200
    assert login.headers["content-type"].startswith("text/html")
    wrong = httpx.get(file["url_private_download"], headers={"Authorization": "Bearer xoxb-wrong"})
    assert wrong.status_code == 302
    good = httpx.get(file["url_private_download"], headers={"Authorization": f"Bearer {fake.bot_token}"})
    assert (good.status_code, good.headers["content-type"], good.content) == (200, "image/png", data)
    assert [(d.had_token, d.authorized) for d in fake.downloads] == [
        (False, False),
        (False, False),
        (True, False),
        (True, True),
    ]

    stub = fake.file_stub(file)
    assert stub == {"id": file["id"], "file_access": "check_file_info"}
    assert client.files_info(file=stub["id"])["file"]["url_private"] == file["url_private"]
    big = fake.host_file(b"not really", name="huge.png", mimetype="image/png", declared_size=50_000_000)
    assert big["size"] == 50_000_000
    assert "original_w" not in big


def test_external_host_records_whether_a_token_was_sent(fake: FakeSlack) -> None:
    file = fake.host_external_file(b"GIF89a-ish", name="remote.gif", mimetype="image/gif")
    assert file["is_external"] is True
    assert file["mode"] == "external"
    assert file["url_private"].startswith(fake.external_host)
    assert not file["url_private"].startswith(fake.base_url)

    assert httpx.get(file["url_private"]).content == b"GIF89a-ish"
    httpx.get(fake.external_host + "/anything.png", headers={"Authorization": "Bearer leaked"})
    assert [(d.path, d.had_token) for d in fake.external_requests] == [
        (file["url_private"][len(fake.external_host) :], False),
        ("/anything.png", True),
    ]


# ---------------------------------------------------------------------------------------------- response_url


def test_response_url(fake: FakeSlack) -> None:
    url = fake.new_response_url(channel_id="C0GENERAL", user_id="UALICE")
    webhook = WebhookClient(url)
    assert webhook.send(text="thinking…").status_code == 200
    thread = "1764000000.000100"
    sent = webhook.send_dict(
        {"response_type": "in_channel", "thread_ts": thread, "text": "done", "replace_original": False}
    )
    assert sent.status_code == 200
    for _ in range(3):
        assert webhook.send(text="more").status_code == 200
    assert webhook.send(text="sixth").status_code == 404

    assert len(fake.responses) == 5
    assert fake.responses[0].body == {"text": "thinking…"}
    (message,) = fake.messages
    assert (message["channel"], message["thread_ts"], message["text"]) == ("C0GENERAL", thread, "done")
    assert fake.ephemerals[0]["user"] == "UALICE"


# ---------------------------------------------------------------------------------------------- HTTP mode


def test_http_mode_deliveries_are_signed_and_reach_bolt(fake: FakeSlack) -> None:
    app = bolt_app(fake, process_before_response=True)
    seen: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    @app.command("/banana")
    def on_command(ack: Any, command: dict[str, Any]) -> None:
        ack(text=f"on it: {command['text']}")
        seen.append(("command", command, {}))

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], request: Any) -> None:
        seen.append(("app_mention", event, dict(request.headers)))

    @app.event("message")
    def on_message(event: dict[str, Any], request: Any) -> None:
        seen.append(("message", event, dict(request.headers)))

    server = BoltServer(app)
    try:
        fake.request_url = server.url
        command = fake.send_command("a yellow banana")
        assert command.status == 200
        assert command.body == "on it: a yellow banana"  # Bolt answers ack(text=...) as text/plain over HTTP
        assert command.headers["content-type"].startswith("text/plain")
        fields = seen[0][1]
        assert fields["response_url"].startswith(fake.base_url + "/response/")
        assert (fields["channel_id"], fields["channel_name"], fields["user_id"]) == (
            "C0GENERAL",
            "general",
            "UALICE",
        )

        parent = fake.post_user_message(channel="C0GENERAL", text="<@UBANANA> draw a cat")
        assert [d.status for d in parent] == [200, 200]
        assert [d.event["type"] for d in parent if d.event] == ["app_mention", "message"]
        assert parent[0].event_id != parent[1].event_id
        ts = parent[0].event["ts"]  # type: ignore[index]
        assert parent[1].event["ts"] == ts  # type: ignore[index]
        reply = fake.post_user_message(
            channel="C0GENERAL", text="bigger", thread_ts=ts, files=[fake.file_stub({"id": "F1"})]
        )
        assert reply[0].event is not None
        assert (reply[0].event["subtype"], reply[0].event["thread_ts"], reply[0].event["parent_user_id"]) == (
            "file_share",
            ts,
            "UALICE",
        )
        (dm,) = fake.post_user_message(channel="D0ALICE", text="<@UBANANA> hi")  # no app_mention in DMs
        assert dm.event is not None
        assert (dm.event["type"], dm.event["channel_type"]) == ("message", "im")

        retry = fake.send_event(
            parent[1].event or {}, event_id=parent[1].event_id, retry_num=1, retry_reason="http_timeout"
        )
        assert retry.status == 200
        assert seen[-1][2]["x-slack-retry-num"] == ["1"]
        assert seen[-1][2]["x-slack-retry-reason"] == ["http_timeout"]

        body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}}).encode()
        stale = fake.send_raw(
            body, {"Content-Type": "application/json", **fake.signed_headers(body, int(time.time()) - 400)}
        )
        assert stale.status == 401
        forged = {"Content-Type": "application/json", **fake.signed_headers(b"something else")}
        assert fake.send_raw(body, forged).status == 401
    finally:
        server.stop()


def test_signature_matches_slack_sdk_verifier(fake: FakeSlack) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []
    ready = threading.Event()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            received.append((self.read_body(), {k.lower(): v for k, v in self.headers.items()}))
            ready.set()
            self.send_bytes(200, b"", "text/plain")

    server = ServerThread(Handler)
    server.start()
    try:
        fake.request_url = server.url + "/slack/events"
        delivery = fake.send_interactive({"type": "block_actions", "actions": [{"action_id": "again"}]})
        assert delivery.status == 200
        body, headers = received[0]
        assert SignatureVerifier(fake.signing_secret).is_valid_request(body, headers)
        assert json.loads(parse_qs(body.decode())["payload"][0])["type"] == "block_actions"
        assert headers["content-type"] == "application/x-www-form-urlencoded"
    finally:
        server.stop()


def test_deliveries_take_turns_over_several_request_urls(fake: FakeSlack) -> None:
    """Several web processes behind a load balancer: each delivery goes to the next one."""
    heard: list[str] = []

    def server(name: str) -> ServerThread:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                heard.append(name)
                self.send_bytes(200, b"", "text/plain")

        thread = ServerThread(Handler)
        thread.start()
        return thread

    one, two = server("one"), server("two")
    try:
        fake.request_url = one.url + "/slack/events"
        fake.request_urls = [one.url + "/slack/events", two.url + "/slack/events"]
        for text in ("a", "b", "c"):
            assert fake.send_event({"type": "app_mention", "text": text}).status == 200
        assert heard == ["one", "two", "one"]
    finally:
        one.stop()
        two.stop()


def test_delivery_to_a_dead_app_reports_connection_failed(fake: FakeSlack) -> None:
    fake.request_url = "http://127.0.0.1:9/slack/events"
    delivery = fake.send_event({"type": "app_mention", "text": "hi"})
    assert delivery.status == 0
    assert delivery.body.startswith("connection_failed")


def test_edit_and_delete_events(fake: FakeSlack) -> None:
    app = bolt_app(fake, process_before_response=True)
    subtypes: list[str | None] = []

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        subtypes.append(event.get("subtype"))

    server = BoltServer(app)
    try:
        fake.request_url = server.url
        ts = fake.post_user_message(channel="C0GENERAL", text="a cat")[0].event["ts"]  # type: ignore[index]
        (edited,) = fake.edit_user_message("C0GENERAL", ts, "a dog")
        assert edited.event is not None
        assert (edited.event["message"]["text"], edited.event["previous_message"]["text"]) == (
            "a dog",
            "a cat",
        )
        (deleted,) = fake.delete_user_message("C0GENERAL", ts)
        assert deleted.event is not None
        assert deleted.event["deleted_ts"] == ts
        assert subtypes == [None, "message_changed", "message_deleted"]
        fake.set_channel("C0QUIET", member=False)
        assert fake.post_user_message(channel="C0QUIET", text="<@UBANANA> hello?") == []
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- Socket Mode


def test_socket_mode_round_trip_with_bolt(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    retry_headers: list[Any] = []

    @app.command("/banana")
    def on_command(ack: Any, command: dict[str, Any]) -> None:
        ack(text=f"queued: {command['text']}")

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], say: Any, request: Any) -> None:
        retry_headers.append(request.headers.get("x-slack-retry-num"))
        say(text="on it", thread_ts=event["ts"])

    @app.event("message")
    def on_message() -> None:
        pass

    handler = SocketModeHandler(app, fake.app_token)
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        fake.wait_for_socket_connection(5)
        assert fake.calls_to("apps.connections.open")[0].token == fake.app_token

        command = fake.send_command("a tiny banana")
        assert (command.status, command.via) == (200, "socket")
        assert command.json() == {"text": "queued: a tiny banana"}

        mention, message = fake.post_user_message(channel="C0GENERAL", text="<@UBANANA> paint it")
        assert (mention.status, message.status) == (200, 200)
        assert mention.body == ""  # events are acked without a payload
        ts = mention.event["ts"]  # type: ignore[index]
        reply = fake.wait_for(lambda: [m for m in fake.messages if m["text"] == "on it"])
        assert reply[0]["thread_ts"] == ts
        # Slack always sends retry_attempt=0 over Socket Mode and Bolt turns it into this header:
        assert retry_headers == [["0"]]

        fake.delivery_timeout = 1.0
        unhandled = fake.send_event({"type": "reaction_added", "reaction": "eyes"})
        assert unhandled.status == 504  # Bolt answers 404 internally and sends no ack
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def test_socket_mode_reconnects_on_disconnect(fake: FakeSlack) -> None:
    app = bolt_app(fake)

    @app.command("/banana")
    def on_command(ack: Any) -> None:
        ack()

    handler = SocketModeHandler(app, fake.app_token)
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        fake.wait_for_socket_connection(5)
        fake.send_socket_disconnect()
        # slack_sdk opens the new connection first, then drops the old one
        fake.wait_for(lambda: fake.socket_connects == 2 and fake.socket_connections == 1, timeout=10)
        assert len(fake.calls_to("apps.connections.open")) == 2
        command = fake.send_command("still there?")
        assert command.status == 200
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def test_send_without_an_app_is_an_error(fake: FakeSlack) -> None:
    with pytest.raises(RuntimeError, match="request_url"):
        fake.send_event({"type": "app_mention"})


def test_wait_for_times_out_with_a_summary(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C0GENERAL", text="hello there")
    with pytest.raises(TimeoutError) as info:
        fake.wait_for(lambda: None, timeout=0.05)
    assert "chat.postMessage" in str(info.value)
    assert "hello there" in str(info.value)
    assert fake.bot_token not in str(info.value)


def test_web_api_calls_take_the_configured_latency(fake: FakeSlack, client: WebClient) -> None:
    fake.api_latency_s = 0.2
    started = time.monotonic()
    assert client.auth_test()["ok"]
    assert time.monotonic() - started >= 0.2
