"""The record of one generateContent request, as the tests see it (headers lower-cased, API key redacted)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

REDACTED = "REDACTED"
_SECRET_HEADERS = {"x-goog-api-key", "authorization"}


def redacted_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; the API key (and any Authorization) replaced by ``REDACTED``."""
    return {name.lower(): (REDACTED if name.lower() in _SECRET_HEADERS else value) for name, value in items}


@dataclass(eq=False)
class GeminiCall:
    """One generateContent request as the fake saw it (headers lower-cased, the API key redacted).

    ``status``/``payload``/``image`` are filled in once the fake has answered (``answered``); a reset leaves
    ``status`` None. ``at`` is ``time.monotonic()`` at arrival, ``answered_at`` when the answer went out
    (so ``answered_at - at`` is the time the request spent inside Gemini). The repr leaves out bodies and
    images.
    """

    seq: int
    model: str
    body: dict[str, Any] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    at: float
    fault: str | None = None
    answered: bool = False
    answered_at: float | None = None
    status: int | None = None
    payload: dict[str, Any] | None = field(default=None, repr=False)
    image: bytes | None = field(default=None, repr=False)
    key_name: str | None = None  # which of the fake's keys was sent ("operator", or ``add_key``'s name)

    def summary(self) -> str:
        state = (self.status or "reset") if self.answered else "pending"
        return f"#{self.seq} {self.model} -> {state}" + (f" (fault {self.fault})" if self.fault else "")
