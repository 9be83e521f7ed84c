"""Request parsing and validation (pure): a generateContent body is checked as the real API does, with its
error messages (roles, ``candidateCount``, aspect ratio / image size per model, input images, signatures)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bot.sandbox.fake_gemini.errors import TROUBLESHOOTING_URL, ApiError, invalid_argument
from bot.sandbox.fake_gemini.models import FakeModel

_PROTO = "type.googleapis.com/google.ai.generativelanguage.v1beta."
SIGNATURE_DOCS_URL = "https://ai.google.dev/gemini-api/docs/thought-signatures#model-behavior"
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


def load_body(raw: bytes) -> object:
    """The JSON request body; malformed JSON is Google's 400 with the offending position."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise invalid_argument(
            f"Invalid JSON payload received. Unexpected token at position {_pos(exc)}."
        ) from None


def load_body_or_none(raw: bytes) -> object:
    """The JSON request body, or None when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _pos(exc: ValueError) -> int:
    return exc.pos if isinstance(exc, json.JSONDecodeError) else 0
