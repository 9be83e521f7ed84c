"""A loopback stand-in for Gemini's ``POST /v1beta/models/{model}:generateContent`` (image models).

It follows the REST facts in the project's Gemini reference sheet, so a raw httpx client written against the
docs works against it unchanged:

* auth by ``x-goog-api-key`` (or ``?key=``); Google's error body shape ``{"error": {code, message, status}}``;
* request validation (roles, ``candidateCount``, aspect ratio / image size per model, input image types);
* thought signatures on the Gemini 3 family: issued on every answer, required when a model turn is replayed;
* real images at the documented pixel size, coloured and captioned from the prompt so edits are visible;
* a FIFO of scripted faults (429 with ``RetryInfo``, 5xx, resets, hangs, safety blocks, malformed bodies…).

Pure helpers (sizes, validation, response bodies, rendering) come first; the HTTP plumbing is at the end.
Nothing here logs API keys or image bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import math
import re
import secrets
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image, ImageDraw, ImageFont

from bot.sandbox._http import QuietHandler, ServerThread

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_KEY = "sandbox-gemini-key"
TROUBLESHOOTING_URL = "https://developers.generativeai.google/guide/troubleshooting"
_PROTO = "type.googleapis.com/google.ai.generativelanguage.v1beta."
SIGNATURE_DOCS_URL = "https://ai.google.dev/gemini-api/docs/thought-signatures#model-behavior"

# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------

STANDARD_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTRA_RATIOS = ("1:4", "4:1", "1:8", "8:1")


@dataclass(frozen=True)
class FakeModel:
    """What one fake model accepts and returns.

    ``sizes == ()`` means the model has no imageSize option (2.5 Flash Image: any imageSize is a 400) and
    uses the 2.5 pixel table; otherwise the Pro / 3.1 table is used. ``image_tokens`` maps imageSize to the
    output image's token count (``""`` is the key for models without sizes); missing entries fall back to
    1290 (no sizes) or 1120.
    """

    model_id: str
    aspect_ratios: tuple[str, ...]
    sizes: tuple[str, ...]
    thinks: bool
    output_mime: str
    image_tokens: tuple[tuple[str, int], ...] = ()

    def tokens_for(self, image_size: str | None) -> int:
        table = dict(self.image_tokens)
        fallback = 1120 if self.sizes else 1290
        return table.get(image_size or "", fallback)

    @property
    def input_image_tokens(self) -> int:
        return 560 if self.thinks else 258


DEFAULT_MODELS: dict[str, FakeModel] = {
    m.model_id: m
    for m in (
        FakeModel("gemini-2.5-flash-image", STANDARD_RATIOS, (), False, "image/png", (("", 1290),)),
        FakeModel(
            "gemini-3-pro-image",
            STANDARD_RATIOS,
            ("1K", "2K", "4K"),
            True,
            "image/jpeg",
            (("1K", 1120), ("2K", 1120), ("4K", 2000)),
        ),
        FakeModel(
            "gemini-3.1-flash-image",
            STANDARD_RATIOS + EXTRA_RATIOS,
            ("512", "1K", "2K", "4K"),
            True,
            "image/jpeg",
            (("512", 747), ("1K", 1120), ("2K", 1680), ("4K", 2520)),
        ),
        FakeModel(
            "gemini-3.1-flash-lite-image",
            STANDARD_RATIOS + EXTRA_RATIOS,
            ("1K",),
            True,
            "image/jpeg",
            (("1K", 1120),),
        ),
        FakeModel(
            "gemini-nano-banana-2.1",
            STANDARD_RATIOS + EXTRA_RATIOS,
            ("1K", "2K", "4K"),
            True,
            "image/jpeg",
            (("1K", 1120), ("2K", 1680), ("4K", 2520)),
        ),
    )
}

# ----------------------------------------------------------------------------------------------------
# Pixel sizes (reference sheet §4)
# ----------------------------------------------------------------------------------------------------

Size = tuple[int, int]

SIZES_25: dict[str, Size] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}

# imageSize -> aspect ratio -> (width, height), for Pro, 3.1 Flash, 3.1 Flash Lite and Nano Banana 2.1.
# The 512 row is only documented for 16:9 (688x384) and the extra ratios; the rest is half of 1K rounded to a
# multiple of 16, ties rounded down (which keeps 2:3 and 21:9 exact).
SIZES_G3: dict[str, dict[str, Size]] = {
    "512": {
        "1:1": (512, 512),
        "2:3": (416, 624),
        "3:2": (624, 416),
        "3:4": (448, 592),
        "4:3": (592, 448),
        "4:5": (464, 576),
        "5:4": (576, 464),
        "9:16": (384, 688),
        "16:9": (688, 384),
        "21:9": (784, 336),
        "1:4": (256, 1024),
        "4:1": (1024, 256),
        "1:8": (192, 1536),
        "8:1": (1536, 192),
    },
    "1K": {
        "1:1": (1024, 1024),
        "2:3": (848, 1264),
        "3:2": (1264, 848),
        "3:4": (896, 1200),
        "4:3": (1200, 896),
        "4:5": (928, 1152),
        "5:4": (1152, 928),
        "9:16": (768, 1376),
        "16:9": (1376, 768),
        "21:9": (1584, 672),
        "1:4": (512, 2048),
        "4:1": (2048, 512),
        "1:8": (384, 3072),
        "8:1": (3072, 384),
    },
    "2K": {
        "1:1": (2048, 2048),
        "2:3": (1696, 2528),
        "3:2": (2528, 1696),
        "3:4": (1792, 2400),
        "4:3": (2400, 1792),
        "4:5": (1856, 2304),
        "5:4": (2304, 1856),
        "9:16": (1536, 2752),
        "16:9": (2752, 1536),
        "21:9": (3168, 1344),
        "1:4": (1024, 4096),
        "4:1": (4096, 1024),
        "1:8": (768, 6144),
        "8:1": (6144, 768),
    },
    "4K": {
        "1:1": (4096, 4096),
        "2:3": (3392, 5056),
        "3:2": (5056, 3392),
        "3:4": (3584, 4800),
        "4:3": (4800, 3584),
        "4:5": (3712, 4608),
        "5:4": (4608, 3712),
        "9:16": (3072, 5504),
        "16:9": (5504, 3072),
        "21:9": (6336, 2688),
        "1:4": (2048, 8192),
        "4:1": (8192, 2048),
        "1:8": (1536, 12288),
        "8:1": (12288, 1536),
    },
}


def pixel_size(model: FakeModel, aspect_ratio: str, image_size: str | None) -> Size:
    """The documented output size for (model, aspectRatio, imageSize); imageSize None means 1K."""
    if not model.sizes:
        return SIZES_25[aspect_ratio]
    return SIZES_G3[image_size or "1K"][aspect_ratio]


def ratio_value(aspect_ratio: str) -> float:
    w, h = aspect_ratio.split(":")
    return int(w) / int(h)


def closest_ratio(width: int, height: int, ratios: Collection[str]) -> str:
    """The supported ratio nearest to width:height (compared on a log scale, so 1:2 and 2:1 are symmetric)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - target))


# ----------------------------------------------------------------------------------------------------
# Errors (Google's JSON error body)
# ----------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: ``{"error": {"code", "message", "status"[, "details"]}}``."""

    def __init__(
        self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{code} {status}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:  # Google leaves the field out when there is nothing to say
            error["details"] = self.details
        return {"error": error}


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def api_key_invalid() -> ApiError:
    message = "API key not valid. Please pass a valid API key."
    return ApiError(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def api_key_missing() -> ApiError:
    return ApiError(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def model_not_found(model_id: str) -> ApiError:
    return ApiError(
        404,
        "NOT_FOUND",
        f"models/{model_id} is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def format_duration(seconds: float) -> str:
    """A protobuf JSON Duration: "2s", "53s", "0.500s" (0, 3, 6 or 9 fractional digits)."""
    nanos = round(seconds * 1_000_000_000)
    whole, frac = divmod(nanos, 1_000_000_000)
    if frac == 0:
        return f"{whole}s"
    digits = f"{frac:09d}"
    for keep in (3, 6):
        if digits[keep:] == "0" * (9 - keep):
            return f"{whole}.{digits[:keep]}s"
    return f"{whole}.{digits}s"


def rate_limited_error(model_id: str, retry_delay_s: float) -> ApiError:
    metric = "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count"
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
        "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. "
        f"\n* Quota exceeded for metric: {metric}, "
        f"limit: 1000000, model: {model_id}\nPlease retry in {float(retry_delay_s)}s."
    )
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute",
                        "quotaDimensions": {"location": "global", "model": model_id},
                        "quotaValue": "1000000",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format_duration(retry_delay_s),
            },
        ],
    )


# ----------------------------------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------------------------------

FaultKind = Literal[
    "error",
    "rate_limited",
    "reset",
    "delay",
    "malformed_json",
    "no_candidates",
    "finish",
    "prompt_blocked",
    "text_only",
    "jpeg_labelled_png",
]

IMAGE_SAFETY_MESSAGE = (
    "Unable to show the generated image. The image was filtered out because it violated Google's "
    "Responsible AI practices. You can try rephrasing the prompt. If you think this was an error, "
    "send feedback. Support code: {code}."
)
PROHIBITED_MESSAGE = (
    "The model output could not be generated. This output contains sensitive words that violate Google's "
    "Responsible AI practices. If you think this was an error, send feedback. Support code: {code}."
)
_DEFAULT_FINISH_MESSAGES = {
    "IMAGE_SAFETY": IMAGE_SAFETY_MESSAGE,
    "IMAGE_OTHER": IMAGE_SAFETY_MESSAGE,
    "IMAGE_PROHIBITED_CONTENT": PROHIBITED_MESSAGE,
    "IMAGE_RECITATION": IMAGE_SAFETY_MESSAGE,
}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour. Build with the classmethods; ``name`` is what ``GeminiCall.fault`` shows.

    A fault replaces the whole answer of the request that consumes it (whatever that request holds), except
    ``hang``/``delay``/``jpeg_labelled_png``, which answer normally (validation included) after their twist.
    ``delay_s`` is waited before the answer, on top of the fake's ``latency_s``.
    """

    name: str
    kind: FaultKind
    delay_s: float = 0.0
    status: int = 200
    status_text: str = ""
    message: str | None = None
    retry_delay_s: float = 0.0
    reason: str = ""
    text: str = ""
    omit_content: bool = False

    @classmethod
    def rate_limited(cls, retry_delay_s: float = 2.0, *, delay_s: float = 0.0) -> Fault:
        """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo details (no Retry-After header)."""
        return cls("rate_limited", "rate_limited", delay_s=delay_s, status=429, retry_delay_s=retry_delay_s)

    @classmethod
    def http(cls, status: int, status_text: str, message: str, *, delay_s: float = 0.0) -> Fault:
        """Any Google-shaped error: ``Fault.http(500, "INTERNAL", "…")``."""
        return cls("http", "error", delay_s=delay_s, status=status, status_text=status_text, message=message)

    @classmethod
    def internal(cls, *, delay_s: float = 0.0) -> Fault:
        message = f"An internal error has occurred. Please retry or report in {TROUBLESHOOTING_URL}"
        return cls("internal", "error", delay_s=delay_s, status=500, status_text="INTERNAL", message=message)

    @classmethod
    def overloaded(cls, *, delay_s: float = 0.0) -> Fault:
        message = "The model is overloaded. Please try again later."
        return cls(
            "overloaded", "error", delay_s=delay_s, status=503, status_text="UNAVAILABLE", message=message
        )

    @classmethod
    def deadline(cls, *, delay_s: float = 0.0) -> Fault:
        message = "Deadline expired before operation could complete."
        return cls(
            "deadline", "error", delay_s=delay_s, status=504, status_text="DEADLINE_EXCEEDED", message=message
        )

    @classmethod
    def permission_denied(cls, *, delay_s: float = 0.0) -> Fault:
        message = "The caller does not have permission"
        return cls(
            "permission_denied",
            "error",
            delay_s=delay_s,
            status=403,
            status_text="PERMISSION_DENIED",
            message=message,
        )

    @classmethod
    def reset(cls, *, delay_s: float = 0.0) -> Fault:
        """Close the TCP connection with an RST and no response at all."""
        return cls("reset", "reset", delay_s=delay_s)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering normally; the client is meant to time out first."""
        return cls("hang", "delay", delay_s=seconds)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally after ``seconds``."""
        return cls("delay", "delay", delay_s=seconds)

    @classmethod
    def malformed_json(cls, *, delay_s: float = 0.0) -> Fault:
        """HTTP 200 whose JSON body is cut off halfway."""
        return cls("malformed_json", "malformed_json", delay_s=delay_s)

    @classmethod
    def no_candidates(cls, *, delay_s: float = 0.0) -> Fault:
        """HTTP 200 with usageMetadata and modelVersion but no ``candidates``."""
        return cls("no_candidates", "no_candidates", delay_s=delay_s)

    @classmethod
    def finish(
        cls, reason: str, message: str | None = None, *, omit_content: bool = False, delay_s: float = 0.0
    ) -> Fault:
        """HTTP 200 with one candidate that has no parts and ``finishReason=reason``.

        The candidate's content is ``{"role": "model"}`` (as in real IMAGE_PROHIBITED_CONTENT answers), or
        absent with ``omit_content=True``. ``finishMessage`` is ``message``, or Google's wording for the
        IMAGE_* safety reasons when ``message`` is None; other reasons get no finishMessage by default.
        """
        return cls(
            "finish", "finish", delay_s=delay_s, reason=reason, message=message, omit_content=omit_content
        )

    @classmethod
    def prompt_blocked(cls, reason: str = "SAFETY", *, delay_s: float = 0.0) -> Fault:
        """HTTP 200, no candidates, ``promptFeedback.blockReason = reason``."""
        return cls("prompt_blocked", "prompt_blocked", delay_s=delay_s, reason=reason)

    @classmethod
    def text_only(
        cls, text: str = "I can't draw that, but here is a description…", *, delay_s: float = 0.0
    ) -> Fault:
        """HTTP 200, finishReason STOP, one text answer (signed on thinking models) and no image."""
        return cls("text_only", "text_only", delay_s=delay_s, text=text)

    @classmethod
    def jpeg_labelled_png(cls, *, delay_s: float = 0.0) -> Fault:
        """A normal success whose final image is JPEG bytes labelled ``image/png``."""
        return cls("jpeg_labelled_png", "jpeg_labelled_png", delay_s=delay_s)


# ----------------------------------------------------------------------------------------------------
# Request parsing and validation (pure)
# ----------------------------------------------------------------------------------------------------

INPUT_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
UNPROCESSABLE_IMAGE = f"Unable to process input image. Please retry or report in {TROUBLESHOOTING_URL}"
CORRUPTED_SIGNATURE = "Corrupted thought signature."
_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"hevm",
    b"hevs",
    b"mif1",
    b"msf1",
}


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    """proto-JSON accepts both spellings of a field name."""
    return obj[camel] if camel in obj else obj.get(snake)


def sniff_image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/heif"
    return None


def _mime_matches(declared: str, sniffed: str | None) -> bool:
    if sniffed == "image/heif":
        return declared in ("image/heic", "image/heif")
    return declared == sniffed


def decode_base64(value: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional (as proto-JSON bytes fields accept)."""
    text = value.strip()
    padded = (text + "=" * (-len(text) % 4)).encode("ascii", errors="replace")
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class Part:
    """One request part, with either spelling of its fields folded together."""

    text: str | None = None
    mime_type: str | None = None
    data: bytes | None = None  # decoded inline_data; None for file_data and text
    is_file: bool = False
    thought: bool = False
    signature: str | None = None

    @property
    def is_image(self) -> bool:
        return self.mime_type is not None and self.mime_type.startswith("image/")


@dataclass(frozen=True)
class Turn:
    role: str
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts if p.text and not p.thought).strip()


@dataclass(frozen=True)
class ParsedRequest:
    turns: tuple[Turn, ...]
    aspect_ratio: str | None
    image_size: str | None
    want_text: bool
    want_image: bool = True
    system_text: str = ""

    @property
    def user_texts(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "user" and t.text]

    @property
    def latest_user_text(self) -> str:
        users = [t for t in self.turns if t.role == "user"]
        return users[-1].text if users else ""

    @property
    def images(self) -> list[Part]:
        return [p for t in self.turns for p in t.parts if p.is_image and not p.thought]

    @property
    def last_user_images(self) -> list[Part]:
        users = [t for t in self.turns if t.role == "user"]
        return [p for p in users[-1].parts if p.is_image] if users else []

    @property
    def word_count(self) -> int:
        texts = [t.text for t in self.turns] + [self.system_text]
        return sum(len(text.split()) for text in texts)


def _parse_part(raw: object, ci: int, pi: int) -> Part:
    where = f"contents[{ci}].parts[{pi}]"
    if not isinstance(raw, dict):
        raise invalid_argument(f"Invalid value at '{where}' ({_PROTO}Part)")
    thought = raw.get("thought") is True
    signature = _field(raw, "thoughtSignature", "thought_signature")
    if signature is not None and not isinstance(signature, str):
        raise invalid_argument(f"Invalid value at '{where}.thought_signature' (TYPE_BYTES)")
    inline = _field(raw, "inlineData", "inline_data")
    file_data = _field(raw, "fileData", "file_data")
    text = raw.get("text")
    if isinstance(inline, dict):
        mime = _field(inline, "mimeType", "mime_type")
        data = decode_base64(inline.get("data") or "") if isinstance(inline.get("data"), str) else None
        if data is None:
            raise invalid_argument(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
            )
        if not isinstance(mime, str) or not mime:
            raise invalid_argument(
                f"* GenerateContentRequest.{where}.inline_data.mime_type: mime_type is required.\n"
            )
        return Part(mime_type=mime, data=data, thought=thought, signature=signature)
    if isinstance(file_data, dict):
        mime = _field(file_data, "mimeType", "mime_type")
        uri = _field(file_data, "fileUri", "file_uri")
        if not isinstance(uri, str) or not uri:
            raise invalid_argument(
                f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required.\n"
            )
        return Part(
            mime_type=mime if isinstance(mime, str) else None,
            is_file=True,
            thought=thought,
            signature=signature,
        )
    if isinstance(text, str):
        return Part(text=text, thought=thought, signature=signature)
    if any(k in raw for k in ("functionCall", "function_call", "functionResponse", "function_response")):
        return Part(thought=thought, signature=signature)
    raise invalid_argument(
        f"* GenerateContentRequest.{where}.data: "
        "required oneof field 'data' must have one initialized field\n"
    )


def _check_input_image(part: Part) -> None:
    if part.mime_type is None or part.data is None:
        return
    declared = part.mime_type.lower()
    if not declared.startswith("image/"):
        raise invalid_argument(f"Unsupported MIME type: {part.mime_type}")
    if declared not in INPUT_MIME_TYPES or not _mime_matches(declared, sniff_image_mime(part.data)):
        raise invalid_argument(UNPROCESSABLE_IMAGE)


def check_signatures(turns: Collection[Turn], issued: Collection[str]) -> None:
    """Gemini 3 rules: in each model turn every image part, and the first text part when it comes before any
    image, must carry a signature this fake issued. Thought parts need none. Positions are 1-based."""
    for n, turn in enumerate(turns, start=1):
        if turn.role != "model":
            continue
        seen_image = seen_text = False
        for m, part in enumerate(turn.parts, start=1):
            if part.signature is not None and part.signature not in issued:
                raise invalid_argument(CORRUPTED_SIGNATURE)
            if part.thought:
                continue
            if part.is_image:
                if part.signature is None:
                    raise invalid_argument(
                        f"Image part is missing a thought_signature in content position {n}, "
                        f"part position {m}. Please refer to {SIGNATURE_DOCS_URL} for more details."
                    )
                seen_image = True
            elif part.text is not None and not seen_image and not seen_text:
                seen_text = True
                if part.signature is None:
                    raise invalid_argument(
                        f"Text part is missing a thought_signature in content position {n}, "
                        f"part position {m}. Please refer to {SIGNATURE_DOCS_URL} for more details."
                    )


@dataclass(frozen=True)
class OutputConfig:
    aspect_ratio: str | None = None
    image_size: str | None = None
    want_text: bool = True
    want_image: bool = True


def _check_generation_config(model: FakeModel, body: Mapping[str, Any]) -> OutputConfig:
    config = _field(body, "generationConfig", "generation_config") or {}
    if not isinstance(config, dict):
        raise invalid_argument(f"Invalid value at 'generation_config' ({_PROTO}GenerationConfig)")
    count = _field(config, "candidateCount", "candidate_count")
    if isinstance(count, int) and count > 1:
        raise invalid_argument(f"Multiple candidates is not enabled for models/{model.model_id}")
    modalities = _field(config, "responseModalities", "response_modalities")
    want_text = want_image = True
    if isinstance(modalities, list) and modalities:
        names = [str(m).upper() for m in modalities]
        for i, name in enumerate(names):
            if name not in ("TEXT", "IMAGE", "AUDIO", "MODALITY_UNSPECIFIED"):
                raise invalid_argument(
                    f"Invalid value at 'generation_config.response_modalities[{i}]' "
                    f'({_PROTO}GenerationConfig.Modality), "{name}"'
                )
        want_text, want_image = "TEXT" in names, "IMAGE" in names
    image_config = _field(config, "imageConfig", "image_config") or {}
    if not isinstance(image_config, dict):
        raise invalid_argument(f"Invalid value at 'generation_config.image_config' ({_PROTO}ImageConfig)")
    ratio = _field(image_config, "aspectRatio", "aspect_ratio")
    size = _field(image_config, "imageSize", "image_size")
    if ratio is not None and ratio not in model.aspect_ratios:
        raise invalid_argument(
            f"Unsupported aspect ratio: {ratio}. Supported values for models/{model.model_id} are: "
            f"{', '.join(model.aspect_ratios)}."
        )
    if size is not None:
        if not model.sizes:
            raise invalid_argument(f"Image size is not supported for models/{model.model_id}.")
        if size not in model.sizes:
            raise invalid_argument(
                f"Unsupported image size: {size}. Supported values for models/{model.model_id} are: "
                f"{', '.join(model.sizes)}."
            )
    return OutputConfig(ratio, size, want_text, want_image)


def parse_request(model: FakeModel, body: object, issued: Collection[str]) -> ParsedRequest:
    """Validate a generateContent body as the real API does; raises ApiError (400) if it wouldn't pass."""
    if not isinstance(body, dict):
        raise invalid_argument("Invalid JSON payload received. Unknown name: root element must be a message.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid_argument("* GenerateContentRequest.contents: contents is not specified\n")
    turns: list[Turn] = []
    for ci, content in enumerate(contents):
        if not isinstance(content, dict):
            raise invalid_argument(f"Invalid value at 'contents[{ci}]' ({_PROTO}Content)")
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            raise invalid_argument("Please use a valid role: user, model.")
        raw_parts = content.get("parts")
        if not isinstance(raw_parts, list) or not raw_parts:
            raise invalid_argument(
                f"* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty.\n"
            )
        parts = tuple(_parse_part(p, ci, pi) for pi, p in enumerate(raw_parts))
        for part in parts:
            _check_input_image(part)
        turns.append(Turn(role, parts))
    output = _check_generation_config(model, body)
    if model.thinks:
        check_signatures(turns, issued)
    system = _field(body, "systemInstruction", "system_instruction")
    system_text = ""
    if isinstance(system, dict) and isinstance(system.get("parts"), list):
        system_text = " ".join(p.get("text", "") for p in system["parts"] if isinstance(p, dict))
    return ParsedRequest(
        tuple(turns), output.aspect_ratio, output.image_size, output.want_text, output.want_image, system_text
    )


def lenient_parse(model: FakeModel, body: object) -> ParsedRequest | None:
    """Best-effort parse for fault answers that still report usage; None when the body is unusable."""
    try:
        return parse_request(model, body, issued=_AcceptAll())
    except ApiError:
        return None


class _AcceptAll(Collection[str]):
    """Stands in for the issued-signature set when only token counts matter."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# ----------------------------------------------------------------------------------------------------
# Colours and rendering
# ----------------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (220, 40, 40),
    "orange": (245, 135, 20),
    "yellow": (250, 215, 40),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "purple": (130, 60, 190),
    "violet": (130, 60, 190),
    "pink": (240, 120, 175),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (120, 75, 40),
    "teal": (0, 128, 128),
    "cyan": (0, 200, 220),
    "magenta": (210, 40, 160),
    "gold": (212, 175, 55),
    "silver": (192, 192, 192),
    "navy": (20, 30, 110),
}
_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOURS) + r")\b", re.IGNORECASE)


def colour_word(text: str) -> str | None:
    """The last colour word in ``text`` ("paint the red car matte blue" -> "blue")."""
    matches = _COLOUR_WORD.findall(text)
    return matches[-1].lower() if matches else None


def hashed_colour(text: str) -> RGB:
    digest = hashlib.sha256(text.encode()).digest()
    return (60 + digest[0] % 140, 60 + digest[1] % 140, 60 + digest[2] % 140)


def background_colour(request: ParsedRequest) -> RGB:
    """The newest colour word in the user turns (latest turn first), else a colour hashed from the first user
    text, so "make it blue" visibly changes the picture and "make it bigger" keeps it."""
    for text in reversed(request.user_texts):
        word = colour_word(text)
        if word is not None:
            return COLOURS[word]
    texts = request.user_texts
    return hashed_colour(texts[0] if texts else "")


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _ink(background: RGB) -> RGB:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    background: RGB
    caption: str
    footer: str = ""
    thumbnail: bytes | None = None  # the last input image, pasted small in the bottom-right corner


def _draw(picture: Picture) -> Image.Image:
    """Background colour, caption at the top left, footer at the bottom left, thumbnail bottom right.
    The top-right corner is always plain background."""
    w, h = picture.width, picture.height
    img = Image.new("RGB", (w, h), picture.background)
    draw = ImageDraw.Draw(img)
    ink = _ink(picture.background)
    margin = max(4, min(w, h) // 24)
    font_px = max(10, min(w, h) // 14)
    footer_px = max(8, font_px // 3)
    if picture.caption:
        chars = max(8, int((w - 2 * margin) / (font_px * 0.55)))
        max_lines = max(1, int((h - 3 * margin - footer_px) / (font_px * 1.25)))
        lines = textwrap.wrap(picture.caption[:600], chars)[:max_lines]
        draw.multiline_text(
            (margin, margin), "\n".join(lines), fill=ink, font=_font(font_px), spacing=font_px // 4
        )
    if picture.footer:
        draw.text((margin, h - margin - footer_px), picture.footer, fill=ink, font=_font(footer_px))
    if picture.thumbnail is not None:
        _paste_thumbnail(img, picture.thumbnail, margin)
    return img


def _paste_thumbnail(img: Image.Image, data: bytes, margin: int) -> None:
    box = (max(16, img.width // 5), max(16, img.height // 5))
    try:
        with Image.open(io.BytesIO(data)) as src:
            src.draft("RGB", box)
            thumb = src.convert("RGB")
            thumb.thumbnail(box)
    except (OSError, ValueError, Image.DecompressionBombError):
        return  # e.g. HEIC, which Pillow can't read: no thumbnail
    img.paste(thumb, (img.width - thumb.width - margin, img.height - thumb.height - margin))


def encode(img: Image.Image, mime: str) -> bytes:
    buf = io.BytesIO()
    if mime == "image/png":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def render(picture: Picture, mime: str) -> bytes:
    return encode(_draw(picture), mime)


def render_draft(picture: Picture) -> bytes:
    """The low-res interim "thought" image: the same composition inside a 256px box, as JPEG."""
    scale = 256 / max(picture.width, picture.height)
    small = Picture(
        width=max(1, round(picture.width * scale)),
        height=max(1, round(picture.height * scale)),
        background=picture.background,
        caption="draft",
    )
    buf = io.BytesIO()
    _draw(small).save(buf, "JPEG", quality=60)
    return buf.getvalue()


def image_dimensions(data: bytes) -> Size | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


# ----------------------------------------------------------------------------------------------------
# Response bodies (pure apart from randomness)
# ----------------------------------------------------------------------------------------------------


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


def envelope(model: FakeModel, **fields: Any) -> dict[str, Any]:
    return {**fields, "modelVersion": model.model_id, "responseId": new_response_id()}


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


def success_answer(model: FakeModel, request: ParsedRequest, *, jpeg_labelled_png: bool = False) -> Answer:
    ratio, size, (width, height) = choose_layout(model, request)
    last_image = next((p.data for p in reversed(request.images) if p.data), None)
    footer = f"{model.model_id} · {ratio}" + (f" · {size}" if size else "") + f" · {width}x{height}"
    picture = Picture(width, height, background_colour(request), request.latest_user_text, footer, last_image)
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
    if request.want_text:
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
    candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
    usage = usage_metadata(model, request, candidates=model.tokens_for(size))
    payload = envelope(model, candidates=[candidate], usageMetadata=usage)
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
    if message is None and fault.reason in _DEFAULT_FINISH_MESSAGES:
        message = _DEFAULT_FINISH_MESSAGES[fault.reason].format(
            code=secrets.randbelow(90_000_000) + 10_000_000
        )
    if message is not None:
        candidate["finishMessage"] = message
    candidate["index"] = 0
    return json_answer(
        200, envelope(model, candidates=[candidate], usageMetadata=usage_metadata(model, request))
    )


def fault_answer(model: FakeModel, request: ParsedRequest | None, fault: Fault) -> Answer:
    """The answer for a fault that replaces the normal one (not hang/delay/jpeg_labelled_png)."""
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


# ----------------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------------

REDACTED = "REDACTED"
_SECRET_HEADERS = {"x-goog-api-key", "authorization"}
_ROUTE = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")


@dataclass(eq=False)
class GeminiCall:
    """One generateContent request as the fake saw it (headers lower-cased, the API key redacted).

    ``status``/``payload``/``image`` are filled in once the fake has answered (``answered``); a reset leaves
    ``status`` None. ``at`` is ``time.monotonic()`` at arrival. The repr leaves out bodies and images.
    """

    seq: int
    model: str
    body: dict[str, Any] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    at: float
    fault: str | None = None
    answered: bool = False
    status: int | None = None
    payload: dict[str, Any] | None = field(default=None, repr=False)
    image: bytes | None = field(default=None, repr=False)

    def summary(self) -> str:
        state = (self.status or "reset") if self.answered else "pending"
        return f"#{self.seq} {self.model} -> {state}" + (f" (fault {self.fault})" if self.fault else "")


class _GeminiHandler(QuietHandler):
    fake: ClassVar[FakeGemini]

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")


class FakeGemini:
    """The loopback Gemini. ``with FakeGemini() as gemini: ... GEMINI_API_URL = gemini.url``."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        models: dict[str, FakeModel] | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self._models = dict(DEFAULT_MODELS if models is None else models)
        self.latency_s = latency_s
        self._cond = threading.Condition(threading.RLock())
        self._calls: list[GeminiCall] = []
        self._faults: deque[Fault] = deque()
        self._retired: set[str] = set()
        self._issued: set[str] = set()
        self._stopping = threading.Event()
        self._server: ServerThread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> FakeGemini:
        if self._server is None:
            fake = self

            class Handler(_GeminiHandler):
                pass

            Handler.fake = fake
            handler = Handler
            self._stopping.clear()
            self._server = ServerThread(handler, name="fake-gemini")
            self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging/latent requests so their threads finish
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGemini is not running; call start() first")
        return self._server.url

    # -- test-facing state ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[GeminiCall]:
        with self._cond:
            return list(self._calls)

    @property
    def issued_signatures(self) -> set[str]:
        with self._cond:
            return set(self._issued)

    @property
    def models(self) -> dict[str, FakeModel]:
        return dict(self._models)

    def script(self, *faults: Fault) -> None:
        """Queue faults; each generateContent request consumes one (if any) at arrival."""
        with self._cond:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._cond:
            return list(self._faults)

    def clear_faults(self) -> list[Fault]:
        """Drop the faults no request has consumed yet, and return them (so one app can serve many cases)."""
        with self._cond:
            dropped = list(self._faults)
            self._faults.clear()
            return dropped

    def retire(self, model_id: str) -> None:
        """From now on ``model_id`` answers 404, like a shut-down model."""
        with self._cond:
            self._retired.add(model_id)

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 15.0) -> T:
        """Block until ``predicate()`` is truthy (re-checked on each request and answer); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "; ".join(c.summary() for c in self._calls) or "none"
                    raise TimeoutError(
                        f"FakeGemini: condition not met within {timeout}s. "
                        f"{len(self._calls)} generateContent request(s): {seen}. "
                        f"Unused faults: {[f.name for f in self._faults]}"
                    )
                self._cond.wait(remaining)

    def wait_for_requests(self, n: int, timeout: float = 15.0) -> list[GeminiCall]:
        """The first ``n`` generateContent requests, once they have arrived (not necessarily answered)."""
        return self.wait_for(lambda: self._calls[:n] if len(self._calls) >= n else None, timeout)

    def last_image_of(self, call: GeminiCall) -> bytes | None:
        """The final (non-thought) image the fake returned for ``call``; None if none or not answered yet."""
        with self._cond:
            return call.image

    # -- request handling ----------------------------------------------------------------------------

    def _handle(self, handler: _GeminiHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query_keys = parse_qs(url.query).get("key") or [""]
        sent_key = handler.headers.get("x-goog-api-key") or query_keys[0]
        raw = handler.read_body() if method == "POST" else b""
        route = _ROUTE.match(url.path)
        if method == "GET" and url.path.rstrip("/") == "/v1beta/models":
            handler.send_json(*self._list_models(sent_key))
            return
        if method != "POST" or route is None or route["method"] != "generateContent":
            handler.send_json(404, ApiError(404, "NOT_FOUND", "Method not found.").body())
            return
        call = self._record(handler, unquote(route["model"]), raw)
        fault = self._consume_fault(call)
        if fault is not None and fault.kind == "reset":
            self._pause(fault.delay_s)
            self._finish_call(call, None)
            handler.reset_connection()
            return
        answer = self._answer(call.model, raw, sent_key, fault)
        self._pause(self.latency_s + (fault.delay_s if fault else 0.0))
        self._finish_call(call, answer)
        log.debug("fake gemini: %s", call.summary())
        handler.send_bytes(answer.status, answer.body, "application/json; charset=UTF-8")

    def _list_models(self, sent_key: str | None) -> tuple[int, dict[str, Any]]:
        try:
            self._check_key(sent_key)
        except ApiError as error:
            return error.code, error.body()
        with self._cond:
            live = [m for m in self._models if m not in self._retired]
        models = [
            {"name": f"models/{m}", "displayName": m, "supportedGenerationMethods": ["generateContent"]}
            for m in live
        ]
        return 200, {"models": models}

    def _record(self, handler: _GeminiHandler, model_id: str, raw: bytes) -> GeminiCall:
        headers = {
            name.lower(): (REDACTED if name.lower() in _SECRET_HEADERS else value)
            for name, value in handler.headers.items()
        }
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        with self._cond:
            call = GeminiCall(
                seq=len(self._calls) + 1,
                model=model_id,
                body=parsed if isinstance(parsed, dict) else {},
                headers=headers,
                at=time.monotonic(),
            )
            self._calls.append(call)
            self._cond.notify_all()
        return call

    def _consume_fault(self, call: GeminiCall) -> Fault | None:
        with self._cond:
            fault = self._faults.popleft() if self._faults else None
            call.fault = fault.name if fault else None
            return fault

    def _finish_call(self, call: GeminiCall, answer: Answer | None) -> None:
        with self._cond:
            call.answered = True
            if answer is not None:
                call.status = answer.status
                call.payload = answer.payload
                call.image = answer.image
                self._issued.update(answer.signatures)
            self._cond.notify_all()

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _check_key(self, sent_key: str | None) -> None:
        if not sent_key:
            raise api_key_missing()
        if not secrets.compare_digest(sent_key.encode(), self.api_key.encode()):
            raise api_key_invalid()

    def _model(self, model_id: str) -> FakeModel:
        with self._cond:
            model = self._models.get(model_id)
            if model is None or model_id in self._retired:
                raise model_not_found(model_id)
            return model

    def _answer(self, model_id: str, raw: bytes, sent_key: str | None, fault: Fault | None) -> Answer:
        replaces = fault is not None and fault.kind not in ("delay", "jpeg_labelled_png")
        try:
            if replaces and fault is not None:
                model = self._models.get(model_id) or FakeModel(
                    model_id, STANDARD_RATIOS, (), False, "image/png"
                )
                return fault_answer(model, lenient_parse(model, _loads_or_none(raw)), fault)
            self._check_key(sent_key)
            model = self._model(model_id)
            body = _loads(raw)
            with self._cond:
                issued = set(self._issued)
            request = parse_request(model, body, issued)
            if not request.want_image:
                return text_only_answer(model, request, "Here is a description instead of an image.")
            return success_answer(
                model, request, jpeg_labelled_png=fault is not None and fault.kind == "jpeg_labelled_png"
            )
        except ApiError as error:
            return json_answer(error.code, error.body())


def _loads(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise invalid_argument(
            f"Invalid JSON payload received. Unexpected token at position {_pos(exc)}."
        ) from None


def _loads_or_none(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _pos(exc: ValueError) -> int:
    return exc.pos if isinstance(exc, json.JSONDecodeError) else 0
