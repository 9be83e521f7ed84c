"""Response bodies (pure apart from randomness): images and text answers, thought signatures, usage metadata,
finish reasons and the answers that scripted faults replace the normal one with."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from bot.sandbox.fake_gemini.errors import ApiError, rate_limited_error
from bot.sandbox.fake_gemini.faults import DEFAULT_FINISH_MESSAGES, Fault
from bot.sandbox.fake_gemini.images import Picture, background_colour, image_dimensions, render, render_draft
from bot.sandbox.fake_gemini.models import FakeModel, Size, closest_ratio, pixel_size
from bot.sandbox.fake_gemini.validation import ParsedRequest


def new_signature() -> str:
    """An opaque, base64-looking thought signature (~140 chars)."""
    return base64.b64encode(b"\n\x8c\x01" + secrets.token_bytes(100)).decode()


def new_response_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


def text_tokens(words: int) -> int:
    return max(1, math.ceil(words * 4 / 3)) if words else 0


def thoughts_tokens(request: ParsedRequest | None) -> int:
    seed = hashlib.sha256((request.latest_user_text if request else "").encode()).digest()
    return 150 + int.from_bytes(seed[:2], "big") % 151


def prompt_usage(model: FakeModel, request: ParsedRequest | None) -> dict[str, Any]:
    text = text_tokens(request.word_count) if request else 0
    image = model.input_image_tokens * len(request.images) if request else 0
    details = [{"modality": "TEXT", "tokenCount": text}]
    if image:
        details.append({"modality": "IMAGE", "tokenCount": image})
    return {"promptTokenCount": text + image, "promptTokensDetails": details}


def usage_metadata(
    model: FakeModel,
    request: ParsedRequest | None,
    *,
    candidates: int = 0,
    modality: str = "IMAGE",
    thoughts: bool = True,
) -> dict[str, Any]:
    prompt = prompt_usage(model, request)
    usage: dict[str, Any] = {"promptTokenCount": prompt["promptTokenCount"]}
    total = prompt["promptTokenCount"]
    if candidates:
        usage["candidatesTokenCount"] = candidates
        total += candidates
    if model.thinks and thoughts:
        usage["thoughtsTokenCount"] = thoughts_tokens(request)
        total += usage["thoughtsTokenCount"]
    usage["totalTokenCount"] = total
    usage["promptTokensDetails"] = prompt["promptTokensDetails"]
    if candidates:
        usage["candidatesTokensDetails"] = [{"modality": modality, "tokenCount": candidates}]
    return usage


def envelope(model: FakeModel, *, model_version: str | None = None, **fields: Any) -> dict[str, Any]:
    return {**fields, "modelVersion": model_version or model.model_id, "responseId": new_response_id()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def planning_text(request: ParsedRequest) -> str:
    return (
        "**Planning the composition**\n\nI'm working out the layout, lighting and colours for "
        f"“{_snippet(request.latest_user_text) or 'the image'}” before rendering the final picture."
    )


@dataclass(frozen=True)
class Answer:
    """What the fake sends back for one request."""

    status: int
    body: bytes
    payload: dict[str, Any] | None = None
    image: bytes | None = None
    signatures: tuple[str, ...] = ()


def json_answer(status: int, payload: dict[str, Any], **extra: Any) -> Answer:
    return Answer(status, json.dumps(payload, separators=(",", ":")).encode(), payload, **extra)


def choose_layout(model: FakeModel, request: ParsedRequest) -> tuple[str, str | None, Size]:
    """(aspect ratio, image size, pixels). Without an aspectRatio the output follows the last user turn's
    input image (closest supported ratio), else 1:1."""
    ratio = request.aspect_ratio
    if ratio is None:
        ratio = "1:1"
        for part in reversed(request.last_user_images):
            dims = image_dimensions(part.data) if part.data else None
            if dims:
                ratio = closest_ratio(dims[0], dims[1], model.aspect_ratios)
                break
    size = request.image_size if model.sizes else None
    if model.sizes and size is None:
        size = "1K" if "1K" in model.sizes else model.sizes[0]
    return ratio, size, pixel_size(model, ratio, size)


def success_answer(
    model: FakeModel,
    request: ParsedRequest,
    *,
    jpeg_labelled_png: bool = False,
    twist: Fault | None = None,
    grain: bool = False,
) -> Answer:
    """A normal answer; ``twist`` (``Fault.answer``) sets its text, finish reason and modelVersion."""
    ratio, size, (width, height) = choose_layout(model, request)
    last_image = next((p.data for p in reversed(request.images) if p.data), None)
    footer = f"{model.model_id} · {ratio}" + (f" · {size}" if size else "") + f" · {width}x{height}"
    picture = Picture(
        width, height, background_colour(request), request.latest_user_text, footer, last_image, grain=grain
    )
    label = model.output_mime
    if jpeg_labelled_png:
        final, label = render(picture, "image/jpeg"), "image/png"
    else:
        final = render(picture, model.output_mime)
    parts: list[dict[str, Any]] = []
    if model.thinks:
        parts.append({"text": planning_text(request), "thought": True})
        parts.append(
            {"inlineData": {"mimeType": "image/jpeg", "data": _b64(render_draft(picture))}, "thought": True}
        )
    answer: list[dict[str, Any]] = []
    if twist is not None and twist.text:
        answer.append({"text": twist.text})
    elif request.want_text:
        answer.append(
            {"text": f"Here is your image: {_snippet(request.latest_user_text) or 'as requested'}."}
        )
    answer.append({"inlineData": {"mimeType": label, "data": _b64(final)}})
    signatures: list[str] = []
    if model.thinks:  # the first answer text (it comes before the image) and the image are signed
        for part in answer:
            part["thoughtSignature"] = signature = new_signature()
            signatures.append(signature)
    parts.extend(answer)
    finish = twist.reason if twist is not None else "STOP"
    candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}
    usage = usage_metadata(model, request, candidates=model.tokens_for(size))
    version = twist.model_version if twist is not None else None
    payload = envelope(model, candidates=[candidate], usageMetadata=usage, model_version=version)
    return json_answer(200, payload, image=final, signatures=tuple(signatures))


def text_only_answer(model: FakeModel, request: ParsedRequest | None, text: str) -> Answer:
    parts: list[dict[str, Any]] = []
    signatures: tuple[str, ...] = ()
    if model.thinks:
        if request is not None:
            parts.append({"text": planning_text(request), "thought": True})
        signatures = (new_signature(),)
        parts.append({"text": text, "thoughtSignature": signatures[0]})
    else:
        parts.append({"text": text})
    candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
    usage = usage_metadata(model, request, candidates=text_tokens(len(text.split())), modality="TEXT")
    return json_answer(
        200, envelope(model, candidates=[candidate], usageMetadata=usage), signatures=signatures
    )


def finish_answer(model: FakeModel, request: ParsedRequest | None, fault: Fault) -> Answer:
    candidate: dict[str, Any] = {}
    if not fault.omit_content:
        candidate["content"] = {"role": "model"}
    candidate["finishReason"] = fault.reason
    message = fault.message
    if message is None and fault.reason in DEFAULT_FINISH_MESSAGES:
        message = DEFAULT_FINISH_MESSAGES[fault.reason].format(
            code=secrets.randbelow(90_000_000) + 10_000_000
        )
    if message is not None:
        candidate["finishMessage"] = message
    candidate["index"] = 0
    return json_answer(
        200, envelope(model, candidates=[candidate], usageMetadata=usage_metadata(model, request))
    )


def fault_answer(model: FakeModel, request: ParsedRequest | None, fault: Fault) -> Answer:
    """The answer for a fault that replaces the normal one (not hang/delay/jpeg_labelled_png/answer)."""
    if fault.kind == "rate_limited":
        error = rate_limited_error(model.model_id, fault.retry_delay_s)
        return json_answer(error.code, error.body())
    if fault.kind == "error":
        error = ApiError(fault.status, fault.status_text, fault.message or "")
        return json_answer(error.code, error.body())
    if fault.kind == "no_candidates":
        return json_answer(200, envelope(model, usageMetadata=usage_metadata(model, request, thoughts=False)))
    if fault.kind == "prompt_blocked":
        usage = usage_metadata(model, request, thoughts=False)
        return json_answer(
            200, envelope(model, promptFeedback={"blockReason": fault.reason}, usageMetadata=usage)
        )
    if fault.kind == "finish":
        return finish_answer(model, request, fault)
    if fault.kind == "text_only":
        return text_only_answer(model, request, fault.text)
    if fault.kind == "malformed_json":
        if request is not None:
            full = success_answer(model, request).body
        else:
            full = json.dumps(envelope(model, usageMetadata=usage_metadata(model, None))).encode()
        return Answer(200, full[: max(1, len(full) // 2)])
    raise ValueError(f"fault {fault.name} does not replace the answer")
