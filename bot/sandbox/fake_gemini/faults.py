"""Scripted misbehaviour: the ``Fault`` type (errors, resets, hangs, safety blocks, malformed bodies…)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.sandbox.fake_gemini.errors import TROUBLESHOOTING_URL

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
    "answer",
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
DEFAULT_FINISH_MESSAGES = {
    "IMAGE_SAFETY": IMAGE_SAFETY_MESSAGE,
    "IMAGE_OTHER": IMAGE_SAFETY_MESSAGE,
    "IMAGE_PROHIBITED_CONTENT": PROHIBITED_MESSAGE,
    "IMAGE_RECITATION": IMAGE_SAFETY_MESSAGE,
}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour. Build with the classmethods; ``name`` is what ``GeminiCall.fault`` shows.

    A fault replaces the whole answer of the request that consumes it (whatever that request holds), except
    ``hang``/``delay``/``jpeg_labelled_png``/``answer``, which answer normally (validation included) after
    their twist.
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
    model_version: str | None = None

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

    @classmethod
    def answer(
        cls,
        *,
        text: str | None = None,
        finish_reason: str = "STOP",
        model_version: str | None = None,
        delay_s: float = 0.0,
    ) -> Fault:
        """A normal success (image included) with a twist: the answer's text part says ``text``, the
        candidate finishes with ``finish_reason`` (``CONTINUATION``: cut short, image delivered) and the
        envelope reports ``model_version`` (a deprecated ID served by its successor)."""
        return cls(
            "answer",
            "answer",
            delay_s=delay_s,
            reason=finish_reason,
            text=text or "",
            model_version=model_version,
        )
