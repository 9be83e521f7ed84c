"""Issue 3, bad input, end to end: attachments and prompts that can't be used get a clear reply, nothing
crashes, and nothing is charged (no Gemini request). Formats that can be converted are.

The cases share one app process (``shared``); each is a mention from its own user, in its own thread.
Option errors of ``/banana`` are in ``test_core.py::test_options_are_checked_before_anything_is_spent``;
this file covers the mention path and attachments.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from bot.sandbox.fake_gemini import GeminiCall
from bot.sandbox.fake_slack import Download, FakeSlack, Upload
from tests.e2e.conftest import CHANNEL, Stack, module_stack
from tests.images import encode, png_header_only

pytestmark = pytest.mark.e2e

_users = itertools.count(1)


# --- files -------------------------------------------------------------------------------------------


PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


# --- harness -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory, "bad-input")


@pytest.fixture
def app(shared: Stack) -> Iterator[Stack]:
    yield shared
    shared.settled()
    assert shared.app.process is not None and shared.app.process.poll() is None, "the app died"
    assert " crashed" not in shared.logs(), shared.logs()[-4000:]


@dataclass
class Settled:
    user: str
    thread_ts: str
    upload: Upload | None
    message: dict[str, Any] | None
    calls: list[GeminiCall]
    downloads: list[Download]

    @property
    def text(self) -> str:
        assert self.message is not None, f"expected a message, got an image: {self.upload}"
        return str(self.message["text"])


def mention(stack: Stack, text: str, files: list[dict[str, Any]] | None = None) -> Settled:
    """``@banana text`` with ``files`` attached, from a new user; waits for an image or a message."""
    slack = stack.slack
    user = f"UB{next(_users):04d}"
    calls_before, downloads_before = len(stack.gemini.requests), len(slack.downloads)
    deliveries = slack.post_user_message(
        channel=CHANNEL, text=f"<@{slack.bot_user_id}> {text}".rstrip(), user=user, files=files
    )
    assert deliveries and all(d.status == 200 for d in deliveries), deliveries
    event = deliveries[0].event
    assert event is not None
    thread_ts = str(event["ts"])

    def done() -> tuple[Upload | None, dict[str, Any] | None] | None:
        for upload in list(slack.uploads):
            if upload.shared and upload.thread_ts == thread_ts:
                return upload, None
        for message in slack.thread(CHANNEL, thread_ts):
            if message.get("bot_id") and str(message.get("text") or "").startswith(f"<@{user}> "):
                return None, message
        return None

    upload, message = slack.wait_for(done, timeout=30)
    return Settled(
        user,
        thread_ts,
        upload,
        message,
        stack.gemini.requests[calls_before:],
        slack.downloads[downloads_before:],
    )


def ephemeral_for(slack: FakeSlack, text: str, user: str) -> str:
    """Post ``text`` as ``user`` and return the private reply the bot gives them."""
    before = len(slack.calls_to("chat.postEphemeral"))
    slack.post_user_message(channel=CHANNEL, text=text, user=user)
    call = slack.wait_for(
        lambda: next(
            (c for c in slack.calls_to("chat.postEphemeral")[before:] if c.params["user"] == user), None
        )
    )
    return str(call.params["text"])


def first_user_parts(call: GeminiCall) -> list[dict[str, Any]]:
    contents = call.body["contents"]
    assert contents[0]["role"] == "user"
    return list(contents[0]["parts"])


def inline_images(call: GeminiCall) -> list[tuple[str, bytes]]:
    return [
        (p["inlineData"]["mimeType"], base64.b64decode(p["inlineData"]["data"]))
        for p in first_user_parts(call)
        if "inlineData" in p
    ]


# --- attachments that can't be used: a clear message, nothing charged --------------------------------


@pytest.mark.parametrize(
    ("data", "name", "mimetype", "needles", "downloaded"),
    [
        (PDF, "brief.pdf", "application/pdf", ["brief.pdf", "isn't an image", "PNG, JPEG"], False),
        (PDF, "brief.png", "image/png", ["brief.png", "isn't a PNG, JPEG, WebP or GIF"], True),
        (HEIC, "IMG_0001.HEIC", "image/heic", ["IMG_0001.HEIC", "HEIC", "JPEG"], False),
        (encode("PNG")[:60], "broken.png", "image/png", ["broken.png", "damaged"], True),
        (png_header_only(60_000, 60_000), "bomb.png", "image/png", ["bomb.png", "megapixels"], True),
    ],
    ids=["pdf", "pdf-named-png", "heic", "corrupt-png", "decompression-bomb"],
)
def test_unusable_attachment_is_explained_and_nothing_is_charged(
    app: Stack, data: bytes, name: str, mimetype: str, needles: list[str], downloaded: bool
) -> None:
    file = app.slack.host_file(data, name=name, mimetype=mimetype)
    outcome = mention(app, "use this as the background", [file])
    assert outcome.upload is None
    assert "couldn't use an attachment" in outcome.text and "Nothing was generated" in outcome.text
    for needle in needles:
        assert needle in outcome.text, outcome.text
    assert outcome.calls == []
    # Types Slack already names are refused before a byte is downloaded.
    assert bool([d for d in outcome.downloads if file["id"] in d.path]) is downloaded


def test_a_file_declared_at_200_mb_is_not_downloaded(app: Stack) -> None:
    file = app.slack.host_file(
        encode("PNG"), name="huge.png", mimetype="image/png", declared_size=200 * 2**20
    )
    outcome = mention(app, "use this", [file])
    assert "huge.png" in outcome.text and "200 MB" in outcome.text and "20 MB" in outcome.text
    assert outcome.calls == []
    assert not [d for d in app.slack.downloads if file["id"] in d.path]


def test_more_references_than_the_model_takes(app: Stack) -> None:
    files = [
        app.slack.host_file(encode("PNG", color=c), name=f"{c}.png", mimetype="image/png")
        for c in ("red", "green", "blue", "white")
    ]
    outcome = mention(app, "combine these --model nano-banana", files)
    assert "4 images" in outcome.text and "nano-banana" in outcome.text and "at most 3" in outcome.text
    assert outcome.calls == [] and outcome.downloads == []


@pytest.mark.parametrize("how", ["deleted-file", "missing-on-the-file-host"])
def test_a_file_that_cannot_be_fetched_is_explained(app: Stack, how: str) -> None:
    if how == "deleted-file":  # a Slack Connect stub whose files.info says file_not_found
        file: dict[str, Any] = {"id": "F0DELETED", "file_access": "check_file_info"}
        needles = ["F0DELETED", "file_not_found"]
    else:  # Slack's file host answers 404 (an address off that host is never fetched: see below)
        file = app.slack.host_file(encode("PNG"), name="gone.png", mimetype="image/png")
        missing = str(file["url_private"]).replace(str(file["id"]), "F0MISSING")
        file["url_private"] = file["url_private_download"] = missing
        needles = ["gone.png", "downloading it failed (HTTP 404)"]
    outcome = mention(app, "use this", [file])
    assert "couldn't use an attachment" in outcome.text
    for needle in needles:
        assert needle in outcome.text, outcome.text
    assert outcome.calls == []


# --- attachments that are converted or fetched another way: they work --------------------------------


def test_gif_is_sent_as_png(app: Stack) -> None:
    file = app.slack.host_file(encode("GIF"), name="spin.gif", mimetype="image/gif")
    outcome = mention(app, "make this a sticker", [file])
    assert outcome.upload is not None, outcome.message
    [call] = outcome.calls
    [(mime, data)] = inline_images(call)
    assert mime == "image/png" and data.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(data)).size == (64, 48)


def test_webp_is_sent_as_webp(app: Stack) -> None:
    webp = encode("WEBP", quality=90)
    file = app.slack.host_file(webp, name="photo.webp", mimetype="image/webp")
    outcome = mention(app, "make it a painting", [file])
    assert outcome.upload is not None, outcome.message
    [call] = outcome.calls
    assert inline_images(call) == [("image/webp", webp)]


def test_slack_connect_stub_is_completed_with_files_info(app: Stack) -> None:
    reference = encode("PNG", color="purple")
    file = app.slack.host_file(reference, name="shared.png", mimetype="image/png")
    before = len(app.slack.calls_to("files.info"))
    outcome = mention(app, "put this on a mug", [app.slack.file_stub(file)])
    assert outcome.upload is not None, outcome.message
    assert any(c.params.get("file") == file["id"] for c in app.slack.calls_to("files.info")[before:])
    assert [(d.had_token, d.status) for d in outcome.downloads if file["id"] in d.path] == [(True, 200)]
    [call] = outcome.calls
    assert inline_images(call) == [("image/png", reference)]


def test_external_file_is_refused_without_fetching_it(app: Stack) -> None:
    """A remote file's url_private can point at any host, this network included: never fetched, so the
    bot token can't leak there and the bot can't be used to reach internal addresses."""
    file = app.slack.host_external_file(encode("PNG", color="teal"), name="drive.png", mimetype="image/png")
    before = len(app.slack.external_requests)
    outcome = mention(app, "put this on a tote bag", [file])
    assert outcome.upload is None
    assert "stored outside Slack" in outcome.text
    assert app.slack.external_requests[before:] == []
    assert outcome.calls == []


def test_a_file_whose_url_is_off_slacks_host_is_never_fetched(app: Stack) -> None:
    """A file object that claims to be hosted (not external) but whose URL points elsewhere: not fetched
    at all, with or without the token (the bot must not be a way to reach other hosts)."""
    file = app.slack.host_file(encode("PNG", color="olive"), name="odd.png", mimetype="image/png")
    elsewhere = f"{app.slack.external_host}/files-pri/T0-F0/odd.png"
    file = {**file, "url_private": elsewhere, "url_private_download": elsewhere}
    before = len(app.slack.external_requests)
    outcome = mention(app, "put this on a poster", [file])
    assert outcome.upload is None and "Slack's file host" in outcome.text
    assert app.slack.external_requests[before:] == []
    assert outcome.calls == []


def test_a_mention_with_only_an_image_works(app: Stack) -> None:
    reference = encode("JPEG", color="yellow")
    file = app.slack.host_file(reference, name="cat.jpg", mimetype="image/jpeg")
    outcome = mention(app, "", [file])
    assert outcome.upload is not None, outcome.message
    [call] = outcome.calls
    assert [list(p) for p in first_user_parts(call)] == [["inlineData"]]


# --- prompts on the mention path: answered privately, nothing queued ---------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "Tell me what to make"),
        ("x" * 20_000, "limit is 4,000"),
        ("a mug --colour red", "`--colour`"),
        ("a mug --ar 7:3", "Aspect ratios it has"),
        ("a mug --model dall-e-3", "I don't know the model"),
    ],
    ids=["nothing-at-all", "20000-characters", "unknown-option", "bad-aspect-ratio", "unknown-model"],
)
def test_a_mention_that_cannot_run_is_answered_privately(app: Stack, text: str, needle: str) -> None:
    user = f"UB{next(_users):04d}"
    calls_before, jobs_marker = len(app.gemini.requests), len(app.slack.messages)
    reply = ephemeral_for(app.slack, f"<@{app.slack.bot_user_id}> {text}".rstrip(), user)
    assert needle in reply, reply
    assert len(app.gemini.requests) == calls_before
    # Nothing was queued: no status message, no root, nothing posted by the bot for this user.
    assert not [m for m in app.slack.messages[jobs_marker:] if m.get("bot_id")]


# --- images as people take them -------------------------------------------------------------------------


def test_an_exif_rotated_phone_portrait_reaches_gemini_upright(app: Stack) -> None:
    sensor = Image.new("RGB", (640, 480), "white")  # stored sideways, with "rotate 90°" in EXIF
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sensor.save(out, "JPEG", exif=exif)
    file = app.slack.host_file(out.getvalue(), name="IMG_0042.JPG", mimetype="image/jpeg")
    outcome = mention(app, "put this on a poster", [file])
    assert outcome.upload is not None, outcome.message
    [(mime, data)] = inline_images(outcome.calls[0])
    with Image.open(io.BytesIO(data)) as sent:
        assert (mime, sent.size) == ("image/jpeg", (480, 640))


def test_a_16_bit_png_works(app: Stack) -> None:
    img = Image.new("I;16", (128, 128))
    img.putdata([(x + y) * 256 for y in range(128) for x in range(128)])
    out = io.BytesIO()
    img.save(out, "PNG")
    file = app.slack.host_file(out.getvalue(), name="scan16.png", mimetype="image/png")
    outcome = mention(app, "colourise this scan", [file])
    assert outcome.upload is not None, outcome.message
    [(_mime, data)] = inline_images(outcome.calls[0])
    with Image.open(io.BytesIO(data)) as sent:
        assert sent.convert("L").getpixel((64, 64)) not in (0, 255)  # mid-grey, not clipped


def test_a_12_megapixel_reference_keeps_the_threads_later_requests_small(app: Stack) -> None:
    photo = Image.effect_noise((4000, 3000), 40).convert("RGB")
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=95)
    assert len(out.getvalue()) > 6_000_000
    file = app.slack.host_file(out.getvalue(), name="DSC_1234.JPG", mimetype="image/jpeg")
    first = mention(app, "a billboard with this photo", [file])
    assert first.upload is not None, first.message
    calls_before = len(app.gemini.requests)
    app.slack.post_user_message(
        channel=CHANNEL, text="make it dusk", user=first.user, thread_ts=first.thread_ts
    )
    [later] = app.gemini.wait_for(lambda: app.gemini.requests[calls_before:] or None)
    size = len(json.dumps(later.body))
    assert size < 4_000_000, size  # the brief's reference goes back with every request, scaled down
