"""A loopback stand-in for Gemini's ``POST /v1beta/models/{model}:generateContent`` (image models).

It follows Google's REST documentation for the Gemini API, so a raw httpx client written against the
docs works against it unchanged:

* auth by ``x-goog-api-key`` (or ``?key=``); Google's error body shape ``{"error": {code, message, status}}``;
* request validation (roles, ``candidateCount``, aspect ratio / image size per model, input image types);
* thought signatures on the Gemini 3 family: issued on every answer, required when a model turn is replayed;
* real images at the documented pixel size, coloured and captioned from the prompt so edits are visible;
* a FIFO of scripted faults (429 with ``RetryInfo``, 5xx, resets, hangs, safety blocks, malformed bodies…).

The pure helpers live in their own modules: ``models`` (catalogue, sizes), ``errors`` (Google's error
bodies), ``faults`` (``Fault``), ``validation`` (request parsing), ``images`` (rendering) and ``answers``
(response bodies); the HTTP plumbing is ``server`` (``FakeGemini``) and ``calls`` (``GeminiCall``).
This package re-exports all of their public names. Nothing here logs API keys or image bytes.
"""

from bot.sandbox.fake_gemini.answers import (
    Answer,
    choose_layout,
    envelope,
    fault_answer,
    finish_answer,
    json_answer,
    new_response_id,
    new_signature,
    planning_text,
    prompt_usage,
    success_answer,
    text_only_answer,
    text_tokens,
    thoughts_tokens,
    usage_metadata,
)
from bot.sandbox.fake_gemini.calls import REDACTED, GeminiCall, redacted_headers
from bot.sandbox.fake_gemini.errors import (
    TROUBLESHOOTING_URL,
    ApiError,
    api_key_invalid,
    api_key_missing,
    format_duration,
    invalid_argument,
    model_not_found,
    rate_limited_error,
)
from bot.sandbox.fake_gemini.faults import (
    DEFAULT_FINISH_MESSAGES,
    IMAGE_SAFETY_MESSAGE,
    PROHIBITED_MESSAGE,
    Fault,
    FaultKind,
)
from bot.sandbox.fake_gemini.images import (
    COLOURS,
    RGB,
    Picture,
    background_colour,
    colour_word,
    encode,
    hashed_colour,
    image_dimensions,
    render,
    render_draft,
)
from bot.sandbox.fake_gemini.models import (
    DEFAULT_MODELS,
    EXTRA_RATIOS,
    SIZES_25,
    SIZES_G3,
    STANDARD_RATIOS,
    FakeModel,
    Size,
    closest_ratio,
    pixel_size,
    ratio_value,
)
from bot.sandbox.fake_gemini.server import DEFAULT_API_KEY, FakeGemini, Hold
from bot.sandbox.fake_gemini.validation import (
    CORRUPTED_SIGNATURE,
    INPUT_MIME_TYPES,
    SIGNATURE_DOCS_URL,
    UNPROCESSABLE_IMAGE,
    OutputConfig,
    ParsedRequest,
    Part,
    Turn,
    check_signatures,
    decode_base64,
    lenient_parse,
    load_body,
    load_body_or_none,
    parse_request,
    sniff_image_mime,
)

__all__ = [
    "COLOURS",
    "CORRUPTED_SIGNATURE",
    "DEFAULT_API_KEY",
    "DEFAULT_FINISH_MESSAGES",
    "DEFAULT_MODELS",
    "EXTRA_RATIOS",
    "IMAGE_SAFETY_MESSAGE",
    "INPUT_MIME_TYPES",
    "PROHIBITED_MESSAGE",
    "REDACTED",
    "RGB",
    "SIGNATURE_DOCS_URL",
    "SIZES_25",
    "SIZES_G3",
    "STANDARD_RATIOS",
    "TROUBLESHOOTING_URL",
    "UNPROCESSABLE_IMAGE",
    "Answer",
    "ApiError",
    "FakeGemini",
    "FakeModel",
    "Fault",
    "FaultKind",
    "GeminiCall",
    "Hold",
    "OutputConfig",
    "ParsedRequest",
    "Part",
    "Picture",
    "Size",
    "Turn",
    "api_key_invalid",
    "api_key_missing",
    "background_colour",
    "check_signatures",
    "choose_layout",
    "closest_ratio",
    "colour_word",
    "decode_base64",
    "encode",
    "envelope",
    "fault_answer",
    "finish_answer",
    "format_duration",
    "hashed_colour",
    "image_dimensions",
    "invalid_argument",
    "json_answer",
    "lenient_parse",
    "load_body",
    "load_body_or_none",
    "model_not_found",
    "new_response_id",
    "new_signature",
    "parse_request",
    "pixel_size",
    "planning_text",
    "prompt_usage",
    "rate_limited_error",
    "ratio_value",
    "redacted_headers",
    "render",
    "render_draft",
    "sniff_image_mime",
    "success_answer",
    "text_only_answer",
    "text_tokens",
    "thoughts_tokens",
    "usage_metadata",
]
