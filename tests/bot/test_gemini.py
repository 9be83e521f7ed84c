"""Pure request building and response parsing for Gemini's generateContent (image models)."""

from __future__ import annotations

import base64
import binascii
import io
import os

import pytest
from PIL import Image

from bot.errors import GeminiRefusal
from bot.gemini import backoff, build_request, decode_base64, parse_response, retry_delay
from bot.history import first_text


def image_bytes(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_request_has_image_config_and_one_candidate() -> None:
    body = build_request([{"role": "user", "parts": [{"text": "hi"}]}], aspect_ratio="4:5", image_size="2K")
    config = body["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "4:5", "imageSize": "2K"}
    assert "candidateCount" not in config
    assert (
        build_request([], aspect_ratio=None, image_size=None)["generationConfig"].get("imageConfig") is None
    )


def test_last_non_thought_image_wins_and_parts_are_kept_verbatim() -> None:
    draft, final = image_bytes("JPEG", (4, 4)), image_bytes("JPEG", (16, 16))
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "planning", "thought": True},
                        {"inlineData": {"mimeType": "image/jpeg", "data": b64(draft)}, "thought": True},
                        {"text": "Here it is", "thoughtSignature": "SIG-A"},
                        {
                            "inlineData": {"mimeType": "image/png", "data": b64(final)},
                            "thoughtSignature": "SIG-B",
                        },
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"totalTokenCount": 10},
    }
    result = parse_response(body)
    assert result.image == final
    assert result.mime_type == "image/jpeg"  # sniffed: the label said PNG
    assert first_text(result.parts) == "Here it is"
    assert result.parts[3]["inlineData"]["bytes"] == final  # decoded once, here
    assert [p.get("thoughtSignature") for p in result.parts] == [None, None, "SIG-A", "SIG-B"]
    assert result.parts[3]["inlineData"]["mimeType"] == "image/jpeg"
    assert result.final_index == 3
    assert result.usage == {"totalTokenCount": 10}


@pytest.mark.parametrize("reason", ["IMAGE_SAFETY", "PROHIBITED_CONTENT", "NO_IMAGE", "RECITATION"])
def test_finish_reason_without_image_is_a_refusal(reason: str) -> None:
    body = {"candidates": [{"content": {"parts": []}, "finishReason": reason, "finishMessage": "nope"}]}
    with pytest.raises(GeminiRefusal) as info:
        parse_response(body)
    assert info.value.reason == reason
    assert info.value.detail == "nope"


def test_prompt_block_and_empty_and_text_only() -> None:
    with pytest.raises(GeminiRefusal) as blocked:
        parse_response({"promptFeedback": {"blockReason": "SAFETY"}})
    assert blocked.value.reason == "SAFETY"
    with pytest.raises(GeminiRefusal) as empty:
        parse_response({"candidates": []})
    assert empty.value.reason == "EMPTY"
    with pytest.raises(GeminiRefusal) as text_only:
        parse_response(
            {"candidates": [{"content": {"parts": [{"text": "I can't"}]}, "finishReason": "STOP"}]}
        )
    assert text_only.value.reason == "STOP"
    assert text_only.value.text == "I can't"


def test_retry_delay_comes_from_retry_info() -> None:
    body = {
        "error": {
            "code": 429,
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "53s"},
            ],
        }
    }
    assert retry_delay(body) == 53.0
    assert (
        retry_delay(
            {
                "error": {
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}]
                }
            }
        )
        == 0.5
    )
    assert retry_delay({"error": {}}) is None
    assert retry_delay("garbage") is None


def test_backoff_is_capped_and_jittered() -> None:
    values = [backoff(n, base=1, cap=20) for n in range(10)]
    assert all(0 < v <= 20 for v in values)
    assert 0.5 <= backoff(0) <= 1.0


@pytest.mark.parametrize("size", [0, 3, 1000, 256 * 1024 * 3 // 4, 1_000_001])
def test_base64_is_decoded_slice_by_slice_to_the_same_bytes(size: int) -> None:
    data = os.urandom(size)
    assert decode_base64(b64(data)) == data


@pytest.mark.parametrize("where", [10, 700_000, -3])
def test_a_bad_character_in_any_slice_is_refused(where: int) -> None:
    text = list(b64(os.urandom(1_000_000)))
    text[where] = "*"
    with pytest.raises(binascii.Error):
        decode_base64("".join(text))
    with pytest.raises(binascii.Error, match="after padding"):  # padding in the middle, at a slice's end
        decode_base64(b64(os.urandom(3 * 256 * 1024 // 4 - 1)) + b64(b"tail"))
