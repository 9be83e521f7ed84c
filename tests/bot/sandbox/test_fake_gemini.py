"""FakeGemini behaves like the documented generateContent REST API (raw httpx against the loopback server)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.sandbox.fake_gemini import (
    COLOURS,
    DEFAULT_API_KEY,
    DEFAULT_MODELS,
    FakeGemini,
    FakeModel,
    Fault,
    format_duration,
    hashed_colour,
    pixel_size,
)

PRO = "gemini-3-pro-image"
FLASH = "gemini-3.1-flash-image"
NB = "gemini-2.5-flash-image"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def client(gemini: FakeGemini) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gemini.url, headers={"x-goog-api-key": DEFAULT_API_KEY}, timeout=10) as c:
        yield c


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def inline(data: bytes, mime: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return buf.getvalue()


def generate(client: httpx.Client, model: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/v1beta/models/{model}:generateContent", json=body)


def ask(client: httpx.Client, model: str, prompt: str, **image_config: str) -> httpx.Response:
    body: dict[str, Any] = {"contents": [user(text(prompt))]}
    if image_config:
        body["generationConfig"] = {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": image_config}
    return generate(client, model, body)


def parts_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    parts: list[dict[str, Any]] = response.json()["candidates"][0]["content"]["parts"]
    return parts


def final_image(response: httpx.Response) -> tuple[str, bytes]:
    images = [p for p in parts_of(response) if "inlineData" in p and not p.get("thought")]
    blob = images[-1]["inlineData"]
    return blob["mimeType"], base64.b64decode(blob["data"])


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def background(data: bytes) -> tuple[int, int, int]:
    """The fake leaves the top-right corner as plain background."""
    img = open_image(data).convert("RGB")
    r, g, b = img.getpixel((img.width - 3, 3))  # type: ignore[misc]
    return int(r), int(g), int(b)


def close_to(actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


# ------------------------------------------------------------------------------------------------- success


def test_gemini3_answer_has_thoughts_first_then_signed_text_and_final_jpeg(
    gemini: FakeGemini, client: httpx.Client
) -> None:
    response = ask(client, PRO, "a ceramic mug on a marble counter", aspectRatio="4:5", imageSize="2K")
    payload = response.json()
    candidate = payload["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert candidate["index"] == 0
    assert candidate["content"]["role"] == "model"
    parts = candidate["content"]["parts"]
    assert [bool(p.get("thought")) for p in parts] == [True, True, False, False]
    assert [next(iter(p)) for p in parts] == ["text", "inlineData", "text", "inlineData"]
    assert not any("thoughtSignature" in p for p in parts[:2])
    assert parts[2]["text"].startswith("Here is")
    sig_a, sig_b = parts[2]["thoughtSignature"], parts[3]["thoughtSignature"]
    assert len(sig_a) >= 100
    assert sig_a != sig_b
    assert gemini.issued_signatures == {sig_a, sig_b}

    mime, data = final_image(response)
    assert mime == "image/jpeg"
    img = open_image(data)
    assert img.format == "JPEG"
    assert img.size == (1856, 2304)
    draft = open_image(base64.b64decode(parts[1]["inlineData"]["data"]))
    assert max(draft.size) <= 256

    usage = payload["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1120
    assert 150 <= usage["thoughtsTokenCount"] <= 300
    assert usage["totalTokenCount"] == (
        usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )
    assert usage["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 1120}]
    assert usage["promptTokensDetails"][0]["modality"] == "TEXT"
    assert payload["modelVersion"] == PRO
    assert payload["responseId"]

    (call,) = gemini.requests
    assert gemini.last_image_of(call) == data
    assert (call.status, call.fault) == (200, None)


def test_flash_512_sixteen_nine_is_688_by_384(client: httpx.Client) -> None:
    response = ask(client, FLASH, "a lighthouse", aspectRatio="16:9", imageSize="512")
    assert open_image(final_image(response)[1]).size == (688, 384)
    assert response.json()["usageMetadata"]["candidatesTokenCount"] == 747


def test_flash_extra_ratio_4k(client: httpx.Client) -> None:
    response = ask(client, FLASH, "a banner", aspectRatio="8:1", imageSize="4K")
    assert open_image(final_image(response)[1]).size == (12288, 1536)
    assert response.json()["usageMetadata"]["candidatesTokenCount"] == 2520


def test_nano_banana_25_gives_png_without_thoughts_or_signatures(
    gemini: FakeGemini, client: httpx.Client
) -> None:
    response = generate(
        client,
        NB,
        {
            "contents": [user(text("a fox"), inline(png(40, 40), "image/png"))],
            "generationConfig": {"imageConfig": {"aspectRatio": "16:9"}},
        },
    )
    parts = parts_of(response)
    assert all("thought" not in p and "thoughtSignature" not in p for p in parts)
    assert [list(p) for p in parts] == [["text"], ["inlineData"]]
    mime, data = final_image(response)
    assert mime == "image/png"
    img = open_image(data)
    assert (img.format, img.size) == ("PNG", (1344, 768))
    usage = response.json()["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1290
    assert "thoughtsTokenCount" not in usage
    assert {"modality": "IMAGE", "tokenCount": 258} in usage["promptTokensDetails"]
    assert gemini.issued_signatures == set()


def test_snake_case_fields_and_default_ratio_follow_the_input_image(client: httpx.Client) -> None:
    photo = png(1600, 900, (10, 200, 10))
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "put it on a beach"},
                    {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(photo).decode()}},
                ],
            }
        ],
        "generation_config": {"image_config": {"image_size": "1K"}},
    }
    response = generate(client, PRO, body)
    img = open_image(final_image(response)[1]).convert("RGB")
    assert img.size == (1376, 768)  # closest ratio to 16:9 input, Pro 1K table
    # the input image is pasted as a thumbnail in the bottom-right corner
    corner = img.getpixel((img.width - 60, img.height - 60))
    assert close_to(corner, (10, 200, 10), tolerance=12)  # type: ignore[arg-type]
    usage = response.json()["usageMetadata"]
    assert {"modality": "IMAGE", "tokenCount": 560} in usage["promptTokensDetails"]


def test_default_is_one_to_one_1k(client: httpx.Client) -> None:
    response = ask(client, "gemini-nano-banana-2.1", "a cat")
    assert open_image(final_image(response)[1]).size == (1024, 1024)


def test_colour_words_set_the_background(client: httpx.Client) -> None:
    red = background(final_image(ask(client, PRO, "a red sports car"))[1])
    assert close_to(red, COLOURS["red"])
    blue = background(final_image(ask(client, PRO, "paint the red car matte blue"))[1])
    assert close_to(blue, COLOURS["blue"])
    plain = background(final_image(ask(client, NB, "a quiet harbour at dawn"))[1])
    assert close_to(plain, hashed_colour("a quiet harbour at dawn"))


# -------------------------------------------------------------------------------------- thought signatures


def first_turn(client: httpx.Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    prompt = user(text("a red kite over a field"))
    return prompt, parts_of(generate(client, PRO, {"contents": [prompt]}))


def test_replaying_the_model_turn_verbatim_succeeds(client: httpx.Client) -> None:
    prompt, model_parts = first_turn(client)
    body = {"contents": [prompt, {"role": "model", "parts": model_parts}, user(text("make it green"))]}
    response = generate(client, PRO, body)
    assert close_to(background(final_image(response)[1]), COLOURS["green"])


def test_thought_parts_may_be_left_out_of_the_replay(client: httpx.Client) -> None:
    prompt, model_parts = first_turn(client)
    kept = [p for p in model_parts if not p.get("thought")]
    body = {"contents": [prompt, {"role": "model", "parts": kept}, user(text("add a sun"))]}
    assert generate(client, PRO, body).status_code == 200


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (3, "Image part is missing a thought_signature in content position 2, part position 4."),
        (2, "Text part is missing a thought_signature in content position 2, part position 3."),
    ],
)
def test_a_missing_signature_is_a_400_naming_its_position(
    client: httpx.Client, drop: int, message: str
) -> None:
    prompt, model_parts = first_turn(client)
    del model_parts[drop]["thoughtSignature"]
    body = {"contents": [prompt, {"role": "model", "parts": model_parts}, user(text("again"))]}
    response = generate(client, PRO, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith(message)


def test_an_altered_signature_is_corrupted(client: httpx.Client) -> None:
    prompt, model_parts = first_turn(client)
    sig = model_parts[3]["thoughtSignature"]
    model_parts[3]["thoughtSignature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    body = {"contents": [prompt, {"role": "model", "parts": model_parts}, user(text("again"))]}
    response = generate(client, PRO, body)
    assert response.status_code == 400
    assert error_of(response)["message"] == "Corrupted thought signature."


def test_snake_case_signature_spelling_is_accepted(client: httpx.Client) -> None:
    prompt, model_parts = first_turn(client)
    replay = []
    for part in model_parts:
        if part.get("thought"):
            continue
        part = dict(part)
        part["thought_signature"] = part.pop("thoughtSignature")
        replay.append(part)
    body = {"contents": [prompt, {"role": "model", "parts": replay}, user(text("again"))]}
    assert generate(client, PRO, body).status_code == 200


def test_unsigned_model_turns_are_fine_for_nano_banana_25(client: httpx.Client) -> None:
    image = png(64, 64)
    body = {
        "contents": [
            user(text("a kite")),
            {"role": "model", "parts": [text("Here it is"), inline(image, "image/png")]},
            user(text("make it yellow")),
        ]
    }
    response = generate(client, NB, body)
    assert close_to(background(final_image(response)[1]), COLOURS["yellow"])
    # the same unsigned history is rejected by a Gemini 3 model
    assert generate(client, PRO, body).status_code == 400


# -------------------------------------------------------------------------------- auth, models, validation


def test_bad_api_key_is_400_api_key_invalid(gemini: FakeGemini) -> None:
    response = httpx.post(
        f"{gemini.url}/v1beta/models/{PRO}:generateContent",
        json={"contents": [user(text("x"))]},
        headers={"x-goog-api-key": "wrong"},
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_key_query_parameter_works_and_the_key_is_redacted(gemini: FakeGemini) -> None:
    response = httpx.post(
        f"{gemini.url}/v1beta/models/{NB}:generateContent",
        params={"key": DEFAULT_API_KEY},
        json={"contents": [user(text("x"))]},
    )
    assert response.status_code == 200
    with httpx.Client(headers={"x-goog-api-key": DEFAULT_API_KEY}) as c:
        c.post(f"{gemini.url}/v1beta/models/{NB}:generateContent", json={"contents": [user(text("x"))]})
    call = gemini.requests[-1]
    assert call.headers["x-goog-api-key"] == "REDACTED"
    assert DEFAULT_API_KEY not in repr(gemini.requests)


def test_missing_key_is_403(gemini: FakeGemini) -> None:
    response = httpx.post(
        f"{gemini.url}/v1beta/models/{NB}:generateContent", json={"contents": [user(text("x"))]}
    )
    assert response.status_code == 403
    assert error_of(response)["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "model", ["gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview", "imagen-9"]
)
def test_unknown_models_are_404(client: httpx.Client, model: str) -> None:
    response = ask(client, model, "x")
    assert response.status_code == 404
    error = error_of(response)
    assert error["status"] == "NOT_FOUND"
    assert error["message"] == (
        f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods."
    )


def test_retired_model_is_404(gemini: FakeGemini, client: httpx.Client) -> None:
    assert ask(client, FLASH, "x").status_code == 200
    gemini.retire(FLASH)
    assert ask(client, FLASH, "x").status_code == 404
    assert ask(client, PRO, "x").status_code == 200
    gemini.retire(FLASH, no_longer_available=True)
    gone = ask(client, FLASH, "x")
    assert gone.status_code == 404
    assert gone.json()["error"]["message"].startswith(f"This model models/{FLASH} is no longer available.")
    gemini.unretire(FLASH)
    assert ask(client, FLASH, "x").status_code == 200


def test_answer_twist_sets_text_finish_reason_and_model_version(
    gemini: FakeGemini, client: httpx.Client
) -> None:
    gemini.script(Fault.answer(text="Here <!here>", finish_reason="CONTINUATION", model_version="gemini-x"))
    response = ask(client, FLASH, "a fox")
    body = response.json()
    assert body["modelVersion"] == "gemini-x"
    assert body["candidates"][0]["finishReason"] == "CONTINUATION"
    answer = [p for p in parts_of(response) if not p.get("thought")]
    assert answer[0]["text"] == "Here <!here>" and "inlineData" in answer[1]


@pytest.mark.parametrize(
    ("model", "image_config", "fragment"),
    [
        (PRO, {"imageSize": "2k"}, "2k"),
        (PRO, {"imageSize": "512"}, "512"),
        (PRO, {"aspectRatio": "8:1"}, "8:1"),
        (NB, {"imageSize": "1K"}, "not supported"),
        ("gemini-3.1-flash-lite-image", {"imageSize": "2K"}, "2K"),
    ],
)
def test_unsupported_image_config_is_400(
    client: httpx.Client, model: str, image_config: dict[str, str], fragment: str
) -> None:
    response = ask(client, model, "x", **image_config)
    assert response.status_code == 400
    assert fragment in error_of(response)["message"]


def test_candidate_count_above_one_is_400(client: httpx.Client) -> None:
    body = {"contents": [user(text("x"))], "generationConfig": {"candidateCount": 2}}
    response = generate(client, PRO, body)
    assert response.status_code == 400
    assert error_of(response)["message"] == f"Multiple candidates is not enabled for models/{PRO}"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"contents": []}',
        b"{}",
        b'{"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}',
        b'{"contents": [{"role": "user", "parts": []}]}',
    ],
    ids=["not-json", "empty-contents", "no-contents", "bad-role", "no-parts"],
)
def test_malformed_requests_are_400(client: httpx.Client, content: bytes) -> None:
    response = client.post(
        f"/v1beta/models/{PRO}:generateContent", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (png(8, 8), "image/jpeg"),  # bytes don't match the declared type
        (b"GIF89a" + b"\x00" * 20, "image/gif"),  # not an accepted type
        (b"definitely not an image", "image/png"),
    ],
    ids=["png-labelled-jpeg", "gif", "garbage"],
)
def test_bad_input_images_are_400(client: httpx.Client, data: bytes, mime: str) -> None:
    response = generate(client, PRO, {"contents": [user(text("edit"), inline(data, mime))]})
    assert response.status_code == 400
    assert error_of(response)["message"].startswith("Unable to process input image.")


# -------------------------------------------------------------------------------------------------- faults


def test_rate_limited_carries_retry_info_and_no_retry_after(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.rate_limited())
    response = ask(client, PRO, "x")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    error = error_of(response)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    types = [d["@type"] for d in error["details"]]
    assert types == [
        "type.googleapis.com/google.rpc.QuotaFailure",
        "type.googleapis.com/google.rpc.Help",
        "type.googleapis.com/google.rpc.RetryInfo",
    ]
    assert error["details"][2]["retryDelay"] == "2s"
    assert ask(client, PRO, "x").status_code == 200  # one fault per request, then normal
    assert [c.fault for c in gemini.requests] == ["rate_limited", None]


@pytest.mark.parametrize(
    ("fault", "status", "status_text"),
    [
        (Fault.internal(), 500, "INTERNAL"),
        (Fault.overloaded(), 503, "UNAVAILABLE"),
        (Fault.deadline(), 504, "DEADLINE_EXCEEDED"),
        (Fault.permission_denied(), 403, "PERMISSION_DENIED"),
        (
            Fault.http(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
            400,
            "FAILED_PRECONDITION",
        ),
    ],
)
def test_http_faults(
    gemini: FakeGemini, client: httpx.Client, fault: Fault, status: int, status_text: str
) -> None:
    gemini.script(fault)
    response = ask(client, PRO, "x")
    assert response.status_code == status
    assert error_of(response)["status"] == status_text
    if status == 503:
        assert error_of(response)["message"] == "The model is overloaded. Please try again later."


def test_reset_drops_the_connection(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.reset())
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        ask(client, PRO, "x")
    assert ask(client, PRO, "x").status_code == 200
    first, _ = gemini.requests
    assert (first.fault, first.answered, first.status) == ("reset", True, None)


def test_hang_outlasts_the_client_timeout(gemini: FakeGemini) -> None:
    gemini.script(Fault.hang(1.0))
    with (
        httpx.Client(base_url=gemini.url, headers={"x-goog-api-key": DEFAULT_API_KEY}, timeout=0.3) as quick,
        pytest.raises(httpx.ReadTimeout),
    ):
        ask(quick, PRO, "x")
    (call,) = gemini.wait_for_requests(1)
    assert call.fault == "hang"


def test_delay_answers_normally_afterwards(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.delay(0.2))
    started = time.monotonic()
    response = ask(client, PRO, "x")
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200


def test_malformed_json(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.malformed_json())
    response = ask(client, PRO, "x")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError, match=r"."):
        response.json()
    assert gemini.issued_signatures == set()


def test_no_candidates(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.no_candidates())
    payload = ask(client, PRO, "x").json()
    assert "candidates" not in payload
    assert payload["usageMetadata"]["promptTokenCount"] > 0
    assert payload["modelVersion"] == PRO


def test_finish_image_safety_has_googles_message(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.finish("IMAGE_SAFETY"), Fault.finish("NO_IMAGE"), Fault.finish("OTHER", "nope"))
    safety = ask(client, PRO, "x").json()["candidates"][0]
    assert safety["finishReason"] == "IMAGE_SAFETY"
    assert "parts" not in safety.get("content", {})
    assert safety["finishMessage"].startswith("Unable to show the generated image.")
    assert "Support code:" in safety["finishMessage"]
    no_image = ask(client, PRO, "x").json()["candidates"][0]
    assert no_image["finishReason"] == "NO_IMAGE"
    assert "finishMessage" not in no_image
    other = ask(client, PRO, "x").json()["candidates"][0]
    assert other["finishMessage"] == "nope"


def test_prompt_blocked(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.prompt_blocked("PROHIBITED_CONTENT"))
    payload = ask(client, PRO, "x").json()
    assert payload["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"}
    assert "candidates" not in payload


def test_text_only_is_signed_on_thinking_models(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.text_only("No picture today."), Fault.text_only())
    payload = ask(client, PRO, "x").json()
    candidate = payload["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    answer = [p for p in candidate["content"]["parts"] if not p.get("thought")]
    assert answer == [{"text": "No picture today.", "thoughtSignature": answer[0]["thoughtSignature"]}]
    assert answer[0]["thoughtSignature"] in gemini.issued_signatures
    nb_parts = ask(client, NB, "x").json()["candidates"][0]["content"]["parts"]
    assert nb_parts == [{"text": "I can't draw that, but here is a description…"}]
    assert all(gemini.last_image_of(c) is None for c in gemini.requests)


def test_jpeg_labelled_png(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.jpeg_labelled_png())
    mime, data = final_image(ask(client, NB, "x"))
    assert mime == "image/png"
    assert data.startswith(b"\xff\xd8\xff")


def test_latency_applies_to_every_answer() -> None:
    with FakeGemini(latency_s=0.15) as fake, httpx.Client(base_url=fake.url) as c:
        started = time.monotonic()
        response = c.post(
            f"/v1beta/models/{NB}:generateContent",
            json={"contents": [user(text("x"))]},
            headers={"x-goog-api-key": DEFAULT_API_KEY},
        )
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.15


# ----------------------------------------------------------------------------------------- waiting helpers


def test_wait_for_requests_sees_a_request_from_another_thread(
    gemini: FakeGemini, client: httpx.Client
) -> None:
    worker = threading.Thread(target=ask, args=(client, PRO, "a teal boat"))
    worker.start()
    (call,) = gemini.wait_for_requests(1, timeout=5)
    image = gemini.wait_for(lambda: gemini.last_image_of(call), timeout=5)
    worker.join()
    assert close_to(background(image), COLOURS["teal"])
    assert call.body["contents"][0]["parts"][0]["text"] == "a teal boat"


def test_wait_for_times_out_with_a_summary(gemini: FakeGemini, client: httpx.Client) -> None:
    gemini.script(Fault.overloaded())
    ask(client, PRO, "x")
    with pytest.raises(TimeoutError, match=r"503 \(fault overloaded\)"):
        gemini.wait_for_requests(2, timeout=0.05)


# -------------------------------------------------------------------------------------------- pure helpers


def test_pixel_tables() -> None:
    assert pixel_size(DEFAULT_MODELS[NB], "4:3", None) == (1184, 864)
    assert pixel_size(DEFAULT_MODELS[PRO], "4:3", None) == (1200, 896)
    assert pixel_size(DEFAULT_MODELS[PRO], "21:9", "4K") == (6336, 2688)
    assert pixel_size(DEFAULT_MODELS[FLASH], "1:4", "512") == (256, 1024)
    for model in DEFAULT_MODELS.values():
        for size in model.sizes or (None,):
            for ratio in model.aspect_ratios:
                width, height = pixel_size(model, ratio, size)
                assert (width % 16, height % 16) == (0, 0)
                assert model.tokens_for(size) > 0


def test_retry_delay_format() -> None:
    assert [format_duration(s) for s in (2.0, 53, 0.5, 1.25)] == ["2s", "53s", "0.500s", "1.250s"]


def test_custom_models() -> None:
    odd = FakeModel("gemini-test-image", ("1:1",), ("1K",), False, "image/png")
    with FakeGemini(models={odd.model_id: odd}, api_key="k") as fake, httpx.Client(base_url=fake.url) as c:
        headers = {"x-goog-api-key": "k"}
        ok = c.post(
            f"/v1beta/models/{odd.model_id}:generateContent",
            json={"contents": [user(text("x"))]},
            headers=headers,
        )
        assert ok.status_code == 200
        gone = c.post(
            f"/v1beta/models/{PRO}:generateContent", json={"contents": [user(text("x"))]}, headers=headers
        )
        assert gone.status_code == 404


def test_hold_keeps_the_answer_back_until_released(gemini: FakeGemini, client: httpx.Client) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        with gemini.hold() as held:
            pending = pool.submit(ask, client, FLASH, "a held fox")
            held.wait_for_call()
            [call] = gemini.requests
            assert not call.answered and not pending.done()
        assert pending.result(timeout=10).status_code == 200
    assert gemini.requests[0].answered
    assert ask(client, FLASH, "not held").status_code == 200  # later requests are not held


def test_grain_makes_images_weigh_what_photos_weigh() -> None:
    with FakeGemini(grain=True) as grainy, httpx.Client(base_url=grainy.url, timeout=10) as c:
        c.headers["x-goog-api-key"] = DEFAULT_API_KEY
        photo = ask(c, FLASH, "a harbour", imageSize="1K")
        plain_size = None
        with FakeGemini() as flat, httpx.Client(base_url=flat.url, timeout=10) as c2:
            c2.headers["x-goog-api-key"] = DEFAULT_API_KEY
            plain_size = len(ask(c2, FLASH, "a harbour", imageSize="1K").content)
    assert len(photo.content) > 5 * plain_size


def test_a_call_records_when_it_was_answered_after_the_latency(
    gemini: FakeGemini, client: httpx.Client
) -> None:
    gemini.latency_s = 0.2
    assert generate(client, NB, {"contents": [user(text("a banana"))]}).status_code == 200
    call = gemini.requests[-1]
    assert call.answered_at is not None and call.answered_at - call.at >= 0.2
