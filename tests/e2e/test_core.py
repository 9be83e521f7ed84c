"""Issue 2, end to end: the real app in HTTP mode, driven with signed requests, against the stand-ins."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from bot.images import sniff_mime
from tests.e2e.conftest import CHANNEL, Stack

pytestmark = pytest.mark.e2e


def picture(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def png(size: tuple[int, int] = (320, 240), color: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def model_contents(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in body["contents"] if c["role"] == "model"]


def test_slash_command_posts_a_root_and_uploads_the_image_into_its_thread(stack: Stack) -> None:
    ack = stack.slack.send_command(
        "a clean studio product photo of a ceramic coffee mug --ar 4:5", user_id="UALICE"
    )
    assert ack.status == 200  # latency is measured in bench/bench.py, not asserted here
    assert ack.json()["response_type"] == "ephemeral"

    [upload] = stack.uploads(1)
    root = stack.root_message()
    assert "<@UALICE>" in str(root["text"]) and "ceramic coffee mug" in str(root["text"])
    assert "nano-banana-2.1" in str(root["text"]) and "4:5" in str(root["text"])
    assert upload.channel == CHANNEL and upload.thread_ts == root["ts"] and upload.shared

    image = picture(upload.data)
    assert sniff_mime(upload.data) == "image/jpeg" and upload.filename.endswith(".jpg")
    assert image.size == (928, 1152)  # 4:5 at 1K on gemini-nano-banana-2.1, the default model
    [call] = stack.gemini.requests
    assert call.model == "gemini-nano-banana-2.1"
    assert call.body["generationConfig"]["imageConfig"] == {"aspectRatio": "4:5"}
    assert "candidateCount" not in call.body["generationConfig"]
    stack.slack.wait_for(lambda: stack.slack.calls_to("files.info"))  # the share check follows the upload
    methods = {c.method for c in stack.slack.calls}
    assert "files.upload" not in methods
    assert {"files.getUploadURLExternal", "files.completeUploadExternal", "files.info"} <= methods
    # The progress message is cleaned up once the image is in.
    stack.slack.wait_for(lambda: stack.slack.calls_to("chat.delete"))


def test_thread_replies_replay_history_with_exact_signatures_and_run_in_order(stack: Stack) -> None:
    stack.slack.send_command("a ceramic mug --model pro --size 2K")
    stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    first_answer = stack.gemini.requests[0].payload
    assert first_answer is not None
    first_parts = first_answer["candidates"][0]["content"]["parts"]

    # Two quick replies from two people: the second must edit the result of the first.
    stack.slack.post_user_message(channel=CHANNEL, text="make it matte blue", user="UBOB", thread_ts=root_ts)
    stack.slack.post_user_message(
        channel=CHANNEL, text="same but from above", user="UCAROL", thread_ts=root_ts
    )
    uploads = stack.uploads(3)
    assert all(u.thread_ts == root_ts for u in uploads)

    second, third = stack.gemini.requests[1], stack.gemini.requests[2]
    assert [c["role"] for c in second.body["contents"]] == ["user", "model", "user"]
    replayed = model_contents(second.body)[0]["parts"]
    expected = [p for p in first_parts if not p.get("thought")]
    assert [p.get("thoughtSignature") for p in replayed] == [p.get("thoughtSignature") for p in expected]
    assert replayed[-1]["inlineData"]["data"] == expected[-1]["inlineData"]["data"]
    assert second.body["contents"][-1]["parts"] == [{"text": "make it matte blue"}]

    second_answer = second.payload
    assert second_answer is not None
    second_sigs = [
        p.get("thoughtSignature")
        for p in second_answer["candidates"][0]["content"]["parts"]
        if not p.get("thought")
    ]
    assert [p.get("thoughtSignature") for p in model_contents(third.body)[-1]["parts"]] == second_sigs
    assert third.body["contents"][-1]["parts"] == [{"text": "same but from above"}]
    # Conversation options carry over: Pro at 2K.
    assert third.model == "gemini-3-pro-image"
    # ... and the shape of the first result (square: no --ar and no reference) is kept explicitly.
    assert third.body["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "2K"}
    # The blue edit is blue (the stand-in paints the background with the newest colour word).
    r, g, b = picture(uploads[1].data).convert("RGB").getpixel((picture(uploads[1].data).width - 5, 5))
    assert b > r and b > g


def test_a_reply_goes_to_gemini_while_the_result_before_it_is_delivered_and_shows_after_it(
    stack: Stack,
) -> None:
    stack.slack.send_command("a ceramic mug")
    with stack.slack.hold("files.info") as held:
        held.wait_for_call()  # the first result is uploaded; its job waits to see it in the thread
        root_ts = str(stack.root_message()["ts"])
        stack.slack.post_user_message(channel=CHANNEL, text="make it matte blue", thread_ts=root_ts)
        # The reply needs the first answer only, which is stored: it does not wait for the delivery.
        stack.gemini.wait_for(lambda: len(stack.gemini.requests) >= 2)
        stack.wait_for_jobs(lambda jobs: len(jobs) == 2 and jobs[1].result_turn_id is not None)
    stack.settled()
    first, second = stack.uploads(2)
    [one, two] = stack.jobs()
    assert model_contents(stack.gemini.requests[1].body)  # it edits the first result
    # In the thread: the first image and its card, then the second's.
    order = [first.message_ts, one.card_ts, second.message_ts, two.card_ts]
    assert all(order) and order == sorted(order, key=lambda ts: float(str(ts)))


def test_a_delivery_does_not_hold_a_worker_that_another_job_could_take_to_gemini(
    any_db_stack: Stack,
) -> None:
    stack = any_db_stack
    stack.start_app(BANANA_WORKERS="1")
    stack.slack.send_command("a ceramic mug", user_id="UALICE")
    with stack.slack.hold("files.info") as held:
        held.wait_for_call()  # the only worker's job has its answer and waits to see its image shared
        stack.slack.send_command("a paper crane", user_id="UBOB")
        # The answer is stored, so the delivery goes on beside the pool: its one worker takes the next job.
        stack.gemini.wait_for(lambda: len(stack.gemini.requests) >= 2)
        assert stack.slack.calls_to("files.info") and not held.released
    stack.settled()
    assert [job.state for job in stack.jobs()] == ["done", "done"]
    assert len(stack.uploads(2)) == 2


def test_mention_with_attached_image_sends_it_inline_and_answers_in_its_thread(stack: Stack) -> None:
    reference = png()
    file = stack.slack.host_file(reference, name="logo.png", mimetype="image/png")
    deliveries = stack.slack.post_user_message(
        channel=CHANNEL, text=f"<@{stack.slack.bot_user_id}> put this logo on a tote bag", files=[file]
    )
    assert [d.event["type"] for d in deliveries if d.event] == ["app_mention", "message"]
    [upload] = stack.uploads(1)
    message_ts = deliveries[0].event["ts"] if deliveries[0].event else None
    assert upload.thread_ts == message_ts

    [call] = stack.gemini.requests  # app_mention + message: one job
    parts = call.body["contents"][0]["parts"]
    assert parts[0] == {"text": "put this logo on a tote bag"}
    inline = parts[1]["inlineData"]
    assert inline["mimeType"] == "image/png"
    import base64

    assert base64.b64decode(inline["data"]) == reference
    assert [d.had_token for d in stack.slack.downloads] == [True]


def test_reply_with_an_attached_image_adds_it_to_that_turn(stack: Stack) -> None:
    stack.slack.send_command("a poster")
    stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    file = stack.slack.host_file(png(color="green"), name="texture.png", mimetype="image/png")
    stack.slack.post_user_message(channel=CHANNEL, text="use this texture", thread_ts=root_ts, files=[file])
    stack.uploads(2)
    last_user = stack.gemini.requests[1].body["contents"][-1]
    assert last_user["parts"][0] == {"text": "use this texture"}
    assert "inlineData" in last_user["parts"][1]


def test_dm_starts_a_conversation_and_replies_in_its_thread_continue(stack: Stack) -> None:
    [delivery] = stack.slack.post_user_message(channel="D0ALICE", text="a watercolor fox")
    assert delivery.event is not None
    dm_ts = delivery.event["ts"]
    assert stack.uploads(1)[0].thread_ts == dm_ts
    stack.slack.post_user_message(channel="D0ALICE", text="now in winter", thread_ts=dm_ts)
    assert stack.uploads(2)[1].thread_ts == dm_ts
    assert [c["role"] for c in stack.gemini.requests[1].body["contents"]] == ["user", "model", "user"]


def test_what_is_not_for_the_bot_is_acknowledged_and_ignored(stack: Stack) -> None:
    slack = stack.slack
    slack.send_command("a mug")
    stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    [other] = slack.post_user_message(channel=CHANNEL, text="lunch?")  # top level, no mention
    assert other.event is not None
    ignored = [
        other,
        *slack.post_user_message(channel=CHANNEL, text="sounds good", thread_ts=other.event["ts"]),
        slack.send_event(
            {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "BOTHER",
                "text": "beep",
                "channel": CHANNEL,
                "ts": "1.1",
                "thread_ts": root_ts,
            }
        ),
        slack.send_event(
            {
                "type": "message",
                "bot_id": "BOTHER",
                "user": "UOTHERBOT",
                "text": "loop?",
                "channel": CHANNEL,
                "ts": "1.2",
                "thread_ts": root_ts,
            }
        ),
        slack.send_event(
            {
                "type": "message",
                "user": slack.bot_user_id,
                "bot_id": slack.bot_id,
                "text": "my own",
                "channel": CHANNEL,
                "ts": "1.3",
                "thread_ts": root_ts,
            }
        ),
        *slack.edit_user_message(CHANNEL, other.event["ts"], "lunch at 1?"),
        *slack.delete_user_message(CHANNEL, other.event["ts"]),
    ]
    assert [d.status for d in ignored] == [200] * len(ignored)  # no 404s, so Slack does not retry
    # A mention in someone else's thread does start one there.
    slack.post_user_message(
        channel=CHANNEL, text=f"<@{slack.bot_user_id}> draw our lunch", thread_ts=other.event["ts"]
    )
    uploads = stack.uploads(2)
    assert uploads[1].thread_ts == other.event["ts"]
    assert len(stack.gemini.requests) == 2


def test_options_are_checked_before_anything_is_spent(stack: Stack) -> None:
    slack = stack.slack
    cases = {
        "a mug --model pro --ar 1:8": "Aspect ratios it has",
        "a mug --model nano-banana --size 4K": "fixed size",
        "a mug --model dall-e-3": "I don't know the model",
        "a mug --colour red": "`--colour`",
        "x" * 20_000: "limit is 4,000",
    }
    for text, needle in cases.items():
        ack = slack.send_command(text)
        assert ack.status == 200 and needle in ack.json()["text"], (text, ack.body)
    for text in ("help", ""):
        usage = slack.send_command(text).json()
        assert (
            usage["response_type"] == "ephemeral"
            and "--model" in usage["text"]
            and "nano-banana-pro" in usage["text"]
        )
    # A bad option in a thread reply is answered privately in the thread.
    slack.send_command("a mug")
    stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    slack.post_user_message(channel=CHANNEL, text="bigger --size 9K", user="UBOB", thread_ts=root_ts)
    ephemeral = slack.wait_for(lambda: next((c for c in slack.calls_to("chat.postEphemeral")), None))
    assert ephemeral.params["user"] == "UBOB" and "Sizes it has" in ephemeral.params["text"]
    assert len(stack.gemini.requests) == 1
    assert not [m for m in slack.messages if m.get("bot_id") and "--" in str(m.get("text"))]


def test_not_in_channel_is_told_privately_and_nothing_is_generated(stack: Stack) -> None:
    stack.slack.set_channel("C0SECRET", member=False)
    stack.slack.send_command("a mug", channel_id="C0SECRET")
    response = stack.slack.wait_for(lambda: next(iter(stack.slack.responses), None))
    assert "/invite @banana" in response.body["text"]
    assert response.body["response_type"] == "ephemeral"
    assert stack.gemini.requests == []
    assert stack.slack.uploads == []


def test_slack_retries_of_one_event_make_one_job(stack: Stack) -> None:
    event = {
        "type": "app_mention",
        "user": "UALICE",
        "text": f"<@{stack.slack.bot_user_id}> a fox",
        "channel": CHANNEL,
        "ts": "1700000000.000100",
    }
    first = stack.slack.send_event(event, event_id="Ev0RETRY")
    for n, reason in ((1, "http_timeout"), (2, "http_error")):
        retry = stack.slack.send_event(event, event_id="Ev0RETRY", retry_num=n, retry_reason=reason)
        assert retry.status == 200
    assert first.status == 200
    stack.uploads(1)
    # A different event that is a retry of something never seen is processed, not dropped.
    other = {**event, "ts": "1700000000.000200", "text": f"<@{stack.slack.bot_user_id}> an owl"}
    stack.slack.send_event(other, event_id="Ev0NEVERSEEN", retry_num=1, retry_reason="http_timeout")
    stack.uploads(2)
    assert len(stack.gemini.requests) == 2


def test_unsigned_or_stale_requests_are_rejected_and_healthz_answers(stack: Stack) -> None:
    import json
    import time

    import httpx

    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0SANDBOX",
            "event_id": "EvX",
            "event": {
                "type": "app_mention",
                "user": "U1",
                "text": "<@UBANANA> x",
                "channel": "C1",
                "ts": "1.0",
            },
        }
    ).encode()
    bad = stack.slack.send_raw(
        body,
        {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=deadbeef",
        },
    )
    stale = stack.slack.send_raw(
        body,
        {
            "Content-Type": "application/json",
            **stack.slack.signed_headers(body, timestamp=int(time.time()) - 400),
        },
    )
    assert (bad.status, stale.status) == (401, 401)
    health = httpx.get(f"{stack.app.url}/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert stack.gemini.requests == []


def test_edits_keep_the_shape_gemini_chose_when_no_ratio_was_given(stack: Stack) -> None:
    wide = png(size=(1600, 900), color="teal")
    file = stack.slack.host_file(wide, name="wide.png", mimetype="image/png")
    [mention, _] = stack.slack.post_user_message(
        channel=CHANNEL, text=f"<@{stack.slack.bot_user_id}> turn this into a poster", files=[file]
    )
    assert mention.event is not None
    [first] = stack.uploads(1)
    assert picture(first.data).size == (1376, 768)  # Gemini matched the reference: 16:9
    stack.slack.post_user_message(channel=CHANNEL, text="make it blue", thread_ts=mention.event["ts"])
    second = stack.uploads(2)[1]
    assert stack.gemini.requests[1].body["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert picture(second.data).size == (1376, 768)


def test_each_reply_keeps_the_options_it_was_sent_with(stack: Stack) -> None:
    stack.gemini.latency_s = 0.5
    stack.slack.send_command("a mug --ar 1:1")
    stack.gemini.wait_for_requests(1)
    root_ts = str(stack.root_message()["ts"])
    # Both replies are queued while the first image is still being made.
    stack.slack.post_user_message(channel=CHANNEL, text="make it wide --ar 16:9", thread_ts=root_ts)
    stack.slack.post_user_message(channel=CHANNEL, text="now tall --ar 9:16", thread_ts=root_ts)
    uploads = stack.uploads(3)
    ratios = [c.body["generationConfig"]["imageConfig"]["aspectRatio"] for c in stack.gemini.requests]
    assert ratios == ["1:1", "16:9", "9:16"]
    assert [picture(u.data).size for u in uploads] == [(1024, 1024), (1376, 768), (768, 1376)]


def test_switching_model_in_a_thread_keeps_working(stack: Stack) -> None:
    stack.slack.send_command("a mug --model nano-banana")  # 2.5 Flash: no thought signatures
    stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    stack.slack.post_user_message(channel=CHANNEL, text="make it blue --model pro", thread_ts=root_ts)
    stack.uploads(2)
    switched = stack.gemini.requests[1]
    assert switched.model == "gemini-3-pro-image"
    assert [c["role"] for c in switched.body["contents"]] == [
        "user"
    ]  # the old image comes back as a user part
    assert [p.get("text") for p in switched.body["contents"][0]["parts"]] == [
        "a mug",
        "The image so far:",
        None,
        "make it blue",
    ]
    stack.slack.post_user_message(channel=CHANNEL, text="from above", thread_ts=root_ts)
    stack.uploads(3)
    same_model = stack.gemini.requests[2]
    assert [c["role"] for c in same_model.body["contents"]] == ["user", "model", "user"]
    assert same_model.body["contents"][1]["parts"][-1]["thoughtSignature"] in stack.gemini.issued_signatures
