"""What Gemini answered, as the rest of the bot uses it. Pure data: the Gemini client builds it, the store
keeps it, and neither needs the other.

Image bytes are decoded once, when the answer is parsed; the store writes those bytes to blobs and the
next request encodes them again. Nothing in between converts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Billed = Literal["yes", "no", "maybe"]
CallOutcome = Literal["image", "refused", "error", "timeout"]


@dataclass(frozen=True)
class Answer:
    """A successful answer. ``parts`` are Gemini's parts verbatim (text, thoughts, ``thoughtSignature``s),
    except that an image part is ``{"inlineData": {"mimeType": <the type its bytes really are>, "bytes":
    <the bytes>}}``: the store swaps ``bytes`` for a blob id. ``final_index`` is the image the person gets
    (the last one that is not a thought: earlier ones are drafts)."""

    parts: list[dict[str, Any]]
    final_index: int
    usage: dict[str, Any]
    model_version: str | None

    @property
    def image(self) -> bytes:
        return bytes(self.parts[self.final_index]["inlineData"]["bytes"])

    @property
    def mime_type(self) -> str:
        return str(self.parts[self.final_index]["inlineData"]["mimeType"])


@dataclass(frozen=True)
class SentCall:
    """A request that reached Gemini (or may have) and did not become the answer returned: a refusal, an
    error, an answer that could not be read, a timeout. ``billed``: "yes" when the answer carried
    ``usageMetadata``; "maybe" when no answer was read (Google may have made, and billed, the image)."""

    model_id: str
    outcome: CallOutcome
    billed: Billed
    usage: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
