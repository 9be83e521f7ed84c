"""``python app.py sandbox``: the whole bot, offline, against the loopback stand-ins.

Starts a fake Slack and a fake Gemini, runs the real app (``python app.py serve``) as a child process in
HTTP mode with signed requests, and plays a short session: a slash command, two thread replies, a press of
the third result's Variations button, and a mention with a reference image. The images and a transcript
(with the result cards and their buttons) are written to ``out_dir``.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from bot.images import extension, sniff_mime
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack, Upload
from bot.sandbox.process import AppProcess, free_port

CHANNEL = "C0GENERAL"


def sandbox_env(slack: FakeSlack, gemini: FakeGemini, *, database_url: str, port: int) -> dict[str, str]:
    """The app's whole configuration when it talks to the stand-ins."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "GEMINI_API_KEY": gemini.api_key,
        "GEMINI_API_URL": gemini.url,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "BANANA_WORKERS": "4",
    }


def reference_png() -> bytes:
    img = Image.new("RGB", (640, 480), (250, 204, 21))
    draw = ImageDraw.Draw(img)
    draw.ellipse((170, 90, 470, 390), fill=(120, 53, 15))
    draw.text((255, 225), "ACME LOGO", fill="white")
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


OUTPUTS = ("[0-9][0-9]-*.jpg", "[0-9][0-9]-*.png", "transcript.md", "app.log", "banana.db", "banana.db-*")


def clear_outputs(out: Path) -> None:
    """Remove what an earlier sandbox run wrote in ``out``, and nothing else."""
    for pattern in OUTPUTS:
        for old in out.glob(pattern):
            if old.is_file():
                old.unlink()


def run_sandbox(out_dir: str = "sandbox-output") -> int:
    """Play the session; 0 when it went through, 2 when ``out_dir`` can't be used, 130 on Ctrl-C."""
    out = Path(out_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        clear_outputs(out)
    except OSError as err:
        print(
            f"Nano Banana can't start the sandbox: {out} can't hold its output ({err.strerror or err}); "
            "pick another folder with --out",
            file=sys.stderr,
        )
        return 2
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it happens
    try:
        return _play(out)
    except KeyboardInterrupt:
        print("Sandbox stopped (Ctrl-C); the app and the stand-ins were shut down.", file=sys.stderr)
        return 130


def _play(out: Path) -> int:
    started = time.monotonic()
    with FakeSlack() as slack, FakeGemini(latency_s=0.4) as gemini:
        port = free_port()
        slack.request_url = f"http://127.0.0.1:{port}/slack/events"
        env = sandbox_env(slack, gemini, database_url=f"sqlite:///{out / 'banana.db'}", port=port)
        app = AppProcess(env, log_path=out / "app.log").start()
        paths: list[Path] = []

        def show(step: str, count: int = 1) -> Upload:
            uploads = slack.wait_for_uploads(len(paths) + count, timeout=60)[len(paths) :]
            print(step)
            for upload in uploads:
                paths.append(_write_image(out, len(paths) + 1, upload))
                print(f"   → {paths[-1]}")
            return uploads[-1]

        try:
            app.wait_healthy()
            print(f"The bot is running against the stand-ins (log: {out / 'app.log'}).\n")
            prompt = "a clean studio product photo of a ceramic coffee mug --ar 4:5"
            ack = slack.send_command(prompt)
            private_ack = str(ack.json().get("text", ""))
            print(f"   (private answer to /banana, {ack.elapsed_s * 1000:.0f} ms: {private_ack})")
            root_ts = str(show(f"1. /banana {prompt}").thread_ts)
            slack.post_user_message(
                channel=CHANNEL, text="make it matte blue", user="UBOB", thread_ts=root_ts
            )
            show("2. a reply in its thread: make it matte blue")
            slack.post_user_message(
                channel=CHANNEL, text="same but from above", user="UALICE", thread_ts=root_ts
            )
            show("3. a reply: same but from above")
            card = slack.wait_for(lambda: _cards(slack)[2:])[0]
            button = next(t for t in _buttons(card) if t.startswith("Variations"))
            slack.press(card, "Variations", user="UALICE")
            show(f"4. on result 3's card, pressed {button} (made side by side)", count=4)
            logo = slack.host_file(reference_png(), name="logo.png", mimetype="image/png", user="UCAROL")
            slack.post_user_message(
                channel=CHANNEL,
                user="UCAROL",
                files=[logo],
                text=f"<@{slack.bot_user_id}> put this logo on a canvas tote bag --ar 1:1",
            )
            show("5. @banana put this logo on a canvas tote bag --ar 1:1 (with logo.png attached)")
            slack.wait_for(lambda: len(_cards(slack)) >= len(paths) or None)
        except Exception as err:
            print(f"sandbox failed: {err}\nthe app's log is in {out / 'app.log'}", file=sys.stderr)
            return 1
        finally:
            app.terminate()

        transcript = out / "transcript.md"
        transcript.write_text(_transcript(slack, gemini, private_ack=private_ack))
    print(
        f"\nDone in {time.monotonic() - started:.1f}s: {len(paths)} images, the conversation in {transcript}"
    )
    return 0


def _write_image(out: Path, n: int, upload: Upload) -> Path:
    path = out / f"{n:02d}-{upload.file_id}.{extension(sniff_mime(upload.data) or '')}"
    path.write_bytes(upload.data)
    return path


def _transcript(slack: FakeSlack, gemini: FakeGemini, *, private_ack: str) -> str:
    lines = [
        "# Nano Banana sandbox transcript",
        "",
        f"- (only visible to <@UALICE>) **banana**: {private_ack}",
    ]
    for message in slack.messages:
        who = "banana (bot)" if message.get("bot_id") else f"<@{message.get('user')}>"
        where = f"thread {message['thread_ts']}" if message.get("thread_ts") else "channel"
        files = ", ".join(f.get("name", f.get("id", "")) for f in message.get("files") or [])
        text = str(message.get("text") or "").replace("\n", " ")
        if message.get("deleted"):
            text = f"~~{text}~~ (removed once the image was in)"
        attached = f" 📎 {files}" if files else ""
        buttons = "".join(f" [{t}]" for t in _buttons(message))
        lines.append(
            f"- `{message.get('ts')}` [{where}] **{who}**: {_card_context(message)}{text}{attached}{buttons}"
        )
    lines += ["", "## Gemini requests", ""]
    for n, call in enumerate(gemini.requests, start=1):
        roles = [c.get("role") for c in call.body.get("contents", [])]
        config = call.body.get("generationConfig", {}).get("imageConfig", {})
        lines.append(f"{n}. `{call.model}` contents roles {roles}, imageConfig {config}")
    return "\n".join(lines) + "\n"


def _buttons(message: dict[str, Any]) -> list[str]:
    """The visible text of a message's buttons (a result card's)."""
    return [
        str(e["text"]["text"])
        for b in message.get("blocks") or []
        for e in b.get("elements") or []
        if e.get("type") == "button"
    ]


def _cards(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in list(slack.messages) if m.get("bot_id") and _buttons(m)]


def _card_context(message: dict[str, Any]) -> str:
    """A card's provenance line (its first block), as the transcript shows it."""
    if not _buttons(message):
        return ""
    first = (message.get("blocks") or [{}])[0]
    return "".join(str(e.get("text", "")) for e in first.get("elements") or []) + " — "
