"""Gemini ``generateContent`` for image models: pure request building and response parsing, plus the one
network call with its retry policy (https://ai.google.dev/gemini-api/docs/image-generation and
https://ai.google.dev/gemini-api/docs/troubleshooting)."""

from __future__ import annotations

import binascii
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from bot import metrics
from bot.answer import Answer, Billed, CallOutcome, SentCall
from bot.errors import (
    GeminiAlarm,
    GeminiAuthError,
    GeminiBadRequest,
    GeminiModelUnavailable,
    GeminiRefusal,
    GeminiUnavailable,
    Interrupted,
)
from bot.images import sniff_mime

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# A 4K image is about 10 MB as base64, with its draft and text; an answer larger than this is not read
# (and not asked for again: it may be paid for).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Answers read and decoded at the same time, per process. A 4K answer is ~17 MB in hand while it is read
# and decoded, and all CPU under the GIL: more at once only adds memory (fifty 4K answers arriving
# together took 1.4 GB), and each long decode delays the acks of the listener threads.
ANSWERS_AT_ONCE = 4
# What the status message says while the bot waits to try again.
_TRANSIENT_REASONS = {
    500: "Gemini had an internal error (HTTP 500)",
    502: "Gemini's front end failed (HTTP 502)",
    503: "Gemini is overloaded (HTTP 503)",
    504: "Gemini ran out of time on its side (HTTP 504)",
}


# --- request -------------------------------------------------------------------------------------------


def build_request(
    contents: list[dict[str, Any]], *, aspect_ratio: str | None, image_size: str | None
) -> dict[str, Any]:
    """The body for one call. One candidate only: image models reject ``candidateCount > 1``."""
    image_config: dict[str, str] = {}
    if aspect_ratio:
        image_config["aspectRatio"] = aspect_ratio
    if image_size:
        image_config["imageSize"] = image_size
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    return {"contents": contents, "generationConfig": config}


# --- response ------------------------------------------------------------------------------------------


def refusal(reason: str, *, detail: str | None = None, text: str | None = None) -> GeminiRefusal:
    """The error for an answer without an image; the operator-level reasons are alarms of their own."""
    kind = GeminiAlarm if reason in GeminiAlarm.ALARMS else GeminiRefusal
    return kind(reason, detail=detail, text=text)


_DECODE_STEP = 256 * 1024  # base64 characters (a multiple of 4) decoded per call


def decode_base64(text: str) -> bytes:
    """Strict base64, decoded a slice at a time straight from the text (no ASCII copy first).

    One call on a 4K image's 8.5 MB would hold the GIL for ~18 ms, and every request thread waiting for
    it (an ack in progress) with it; a slice takes well under a millisecond. Slices are whole 4-character
    groups, so the result (and what strict mode refuses) is the same as decoding it all at once."""
    if len(text) <= _DECODE_STEP:
        return binascii.a2b_base64(text, strict_mode=True)
    out = bytearray()
    for start in range(0, len(text), _DECODE_STEP):
        piece = text[start : start + _DECODE_STEP]
        if piece.endswith("=") and start + _DECODE_STEP < len(text):
            raise binascii.Error("Excess data after padding")  # what decoding it whole would say
        out += binascii.a2b_base64(piece, strict_mode=True)
    return bytes(out)


def parse_response(body: dict[str, Any]) -> Answer:
    """Take the last non-thought image (earlier ones are low-resolution drafts) and keep every part.

    A 200 without an image is a refusal, never an empty success, whatever the finish reason; an image is
    delivered whatever the finish reason too (``CONTINUATION``: cut short, but the image came).
    """
    candidates = body.get("candidates") or []
    if not candidates:
        feedback = body.get("promptFeedback") or {}
        reason = feedback.get("blockReason")
        if reason:
            raise refusal(str(reason), detail=feedback.get("blockReasonMessage"))
        raise GeminiRefusal("EMPTY")
    candidate = candidates[0]
    finish = candidate.get("finishReason")  # on the candidate, not inside content
    raw_parts = (candidate.get("content") or {}).get("parts") or []
    if not isinstance(raw_parts, list):
        raise GeminiUnavailable("Gemini sent a response I couldn't read")

    parts: list[dict[str, Any]] = []
    final_index: int | None = None
    for part in raw_parts:
        part = dict(part)
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, dict):
            try:  # the one place an answer's image is decoded
                data = decode_base64(inline.pop("data", None) or "")
            except ValueError as err:  # binascii.Error is a ValueError
                raise GeminiUnavailable("Gemini sent an image that isn't valid base64") from err
            real = sniff_mime(data) or str(inline.get("mimeType") or inline.get("mime_type") or "")
            part.pop("inline_data", None)
            part["inlineData"] = {"mimeType": real, "bytes": data}
            if not part.get("thought") and real.startswith("image/"):
                final_index = len(parts)
        parts.append(part)

    text = "\n".join(
        p["text"].strip()
        for p in parts
        if isinstance(p.get("text"), str) and not p.get("thought") and p["text"].strip()
    )
    if final_index is None:
        raise refusal(str(finish or "NO_IMAGE"), detail=candidate.get("finishMessage"), text=text or None)
    return Answer(
        parts=parts,
        final_index=final_index,
        usage=dict(body.get("usageMetadata") or {}),
        model_version=str(body["modelVersion"])[:128] if body.get("modelVersion") else None,
    )


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)s\s*$")


def retry_delay(body: Any) -> float | None:
    """``RetryInfo.retryDelay`` ("53s", "0.5s") from an error body; Gemini sends no Retry-After header."""
    try:
        details = body["error"].get("details") or []
    except (TypeError, KeyError, AttributeError):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _error_reason(body: Any) -> str | None:
    try:
        for detail in body["error"].get("details") or []:
            if isinstance(detail, dict) and detail.get("reason"):
                return str(detail["reason"])
    except (TypeError, KeyError, AttributeError):
        return None
    return None


def _error_message(body: Any, fallback: str) -> str:
    try:
        return str(body["error"]["message"])
    except (TypeError, KeyError):
        return fallback


def _read_at_most(response: httpx.Response, limit: int) -> bytearray:
    """The body, in one buffer that grows as it arrives (a list of chunks joined at the end would hold it
    twice); refused past ``limit``."""
    declared = response.headers.get("content-length") or ""
    if declared.isdigit() and int(declared) > limit:
        raise GeminiUnavailable(f"Gemini's answer was over {limit / 1_048_576:g} MB, so it was not read")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise GeminiUnavailable(f"Gemini's answer was over {limit / 1_048_576:g} MB, so it was not read")
    return body


def backoff(attempt: int, *, base: float = 1.0, cap: float = 20.0) -> float:
    """Capped exponential backoff with jitter: attempt 0 → 0.5–1 s, 1 → 1–2 s, …, at most ``cap``."""
    return float(min(cap, base * 2**attempt) * random.uniform(0.5, 1.0))


# --- client --------------------------------------------------------------------------------------------


class GeminiClient:
    """One blocking call with a bounded retry budget. 429s wait at least ``retryDelay``; refusals and 4xx
    are never retried. ``cancel`` (set on shutdown) interrupts the waits between attempts (``Interrupted``);
    a call already sent is never cut short: its answer may already be paid for."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        api_key: str,
        max_attempts: int = 4,
        max_wait: float = 90.0,
        cancel: threading.Event | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        answers_at_once: int = ANSWERS_AT_ONCE,
    ) -> None:
        self._http = http
        self._max_answer_bytes = max_answer_bytes
        self._reading = threading.BoundedSemaphore(answers_at_once)
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._cancel = cancel or threading.Event()

    def check_key(self, api_key: str, *, timeout: float = 2.5) -> str | None:
        """Why Gemini refuses ``api_key``, or None: one free call (the model list), before a workspace's
        own key is saved. Within a modal's 3 s."""
        try:
            response = self._http.get(
                f"{self._base_url}/v1beta/models",
                params={"pageSize": 1},
                headers={"x-goog-api-key": api_key},
                timeout=timeout,
            )
        except httpx.HTTPError:
            return "Gemini couldn't be reached to try the key; try again in a moment"
        if response.status_code == 200:
            return None
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        reason = str(error.get("message") or f"HTTP {response.status_code}")[:200]
        return f"Gemini refused this key: {reason}"

    def generate(
        self, model_id: str, body: dict[str, Any], *, on_retry: Callable[[str, float], None] | None = None
    ) -> Answer:
        """``on_retry(reason, seconds)`` is called before each wait, so the thread can show progress."""
        with self.answer(model_id, body, on_retry=on_retry) as generated:
            return generated

    @contextmanager
    def answer(
        self,
        model_id: str,
        body: dict[str, Any],
        *,
        on_retry: Callable[[str, float], None] | None = None,
        on_call: Callable[[SentCall], None] | None = None,
        api_key: str | None = None,
    ) -> Iterator[Answer]:
        """``generate``, with the answer counted among the ``answers_at_once`` in hand until the block
        ends. The caller stores it inside the block, so answers waiting to be stored wait unread (a
        stored answer holds no memory; fifty decoded 4K images in a queue hold 320 MB).

        ``on_call`` is told of every request sent that did not become the answer (refused, failed,
        unreadable, timed out), for the cost ledger; the answer's own call is the caller's to record, with
        the answer (its ``usage`` and ``model_version``). ``api_key``: the workspace's own key, instead of
        the operator's."""
        generated = self._generate(
            model_id, body, on_retry, on_call or (lambda _call: None), api_key or self._api_key
        )
        try:
            yield generated
        finally:
            self._reading.release()

    def _generate(
        self,
        model_id: str,
        body: dict[str, Any],
        on_retry: Callable[[str, float], None] | None,
        on_call: Callable[[SentCall], None],
        api_key: str,
    ) -> Answer:
        """Returns holding the answer's place in ``self._reading``, which the caller gives back."""
        url = f"{self._base_url}/v1beta/models/{model_id}:generateContent"
        payload = json.dumps(body).encode()
        last: GeminiUnavailable | None = None

        def sent(outcome: CallOutcome, data: Any = None, *, answered: bool = False, code: str) -> None:
            """A call that brought no image: to the ledger (``on_call``) and counted as an error by
            ``code``. ``answered``: Gemini's answer was read, and it is not an image we could have been
            billed for without ``usageMetadata`` saying so."""
            metrics.GEMINI_ERRORS.labels(model_id, code).inc()
            usage = data.get("usageMetadata") if isinstance(data, dict) else None
            version = data.get("modelVersion") if isinstance(data, dict) else None
            billed: Billed = "yes" if usage else "no" if answered else "maybe"
            on_call(
                SentCall(
                    model_id,
                    outcome,
                    billed,
                    usage=dict(usage) if isinstance(usage, dict) else {},
                    model_version=str(version)[:128] if version else None,
                )
            )

        for attempt in range(self._max_attempts):
            if attempt:
                assert last is not None
                wait = max(last.retry_after or 0.0, backoff(attempt - 1))
                if wait > self._max_wait:
                    raise last
                log.info(
                    "gemini retry %d/%d for %s in %.1fs: %s",
                    attempt,
                    self._max_attempts - 1,
                    model_id,
                    wait,
                    last,
                )
                if on_retry is not None:
                    on_retry(str(last), wait)
                if self._cancel.wait(wait):
                    raise Interrupted("stopping while waiting to try Gemini again") from last
            started = time.monotonic()
            with ExitStack() as place:  # this answer's place among the answers in hand, once it is read
                try:
                    with self._http.stream(
                        "POST",
                        url,
                        content=payload,
                        headers={"x-goog-api-key": api_key, "content-type": "application/json"},
                    ) as response:
                        status = response.status_code
                        took = time.monotonic() - started
                        log.info("gemini %s answered %d in %.1fs", model_id, status, took)
                        metrics.GEMINI_SECONDS.labels(model_id).observe(took)
                        self._reading.acquire()
                        place.callback(self._reading.release)
                        try:
                            data = self._read_json(response)
                        except GeminiUnavailable:  # too large to read: it may be a paid-for image
                            sent("error", code="unreadable")
                            raise
                        try:
                            generated = (
                                parse_response(data) if status == 200 and isinstance(data, dict) else None
                            )
                        except GeminiRefusal:
                            sent("refused", data, answered=True, code="refused")
                            raise
                        except GeminiUnavailable:  # an image we can't decode
                            sent("error", code="unreadable")
                            raise
                except (httpx.ConnectTimeout, httpx.PoolTimeout):
                    metrics.GEMINI_ERRORS.labels(model_id, "connection").inc()
                    last = GeminiUnavailable("Gemini could not be reached in time")
                    continue  # the request was never sent: safe to send again
                except httpx.ConnectError as err:
                    metrics.GEMINI_ERRORS.labels(model_id, "connection").inc()
                    last = GeminiUnavailable(f"the connection to Gemini failed ({type(err).__name__})")
                    continue  # never sent either
                except httpx.TimeoutException as err:
                    # Sent, and no answer in time: Gemini may still finish and bill it, so sending it again
                    # could pay twice. Give up instead; the person can ask again.
                    sent("timeout", code="timeout")
                    raise GeminiUnavailable("Gemini did not answer in time", timed_out=True) from err
                except httpx.TransportError as err:
                    sent("error", code="connection")  # cut off after it was sent: Gemini may have made it
                    last = GeminiUnavailable(f"the connection to Gemini failed ({type(err).__name__})")
                    continue
                if generated is not None:
                    if generated.model_version and generated.model_version != model_id:
                        # Deprecated IDs may be served (and billed) by their successor: cost follows this.
                        log.warning("gemini: asked for %s, answered by %s", model_id, generated.model_version)
                    place.pop_all()  # kept until the caller has stored it (``answer``)
                    return generated
            sent("error", data, answered=status != 200, code=str(status))  # not billed, or unreadable
            if status == 200:
                last = GeminiUnavailable("Gemini sent a response I couldn't read")
                continue
            if status in RETRYABLE_STATUS:
                limited = status == 429
                last = GeminiUnavailable(
                    "rate limited by Gemini"
                    if limited
                    else _TRANSIENT_REASONS.get(status, f"Gemini error (HTTP {status})"),
                    rate_limited=limited,
                    retry_after=retry_delay(data) if limited else None,
                )
                continue
            self._raise_for(status, data, model_id)
        assert last is not None
        raise last

    def _read_json(self, response: httpx.Response) -> Any:
        """The answer's JSON (``None`` if it isn't), one copy at a time: bytes → text (the bytes dropped) →
        parsed (the text dropped). Parsing the bytes directly would hold all three at once, four times the
        image at 4K."""
        raw = _read_at_most(response, self._max_answer_bytes)
        text = raw.decode("utf-8", errors="replace")
        del raw
        try:
            return json.loads(text)
        except ValueError:
            return None

    @staticmethod
    def _raise_for(status: int, data: Any, model_id: str) -> None:
        message = _error_message(data, f"HTTP {status}")
        if status == 404:
            raise GeminiModelUnavailable(model_id, message)
        if status in (401, 403) or _error_reason(data) in {"API_KEY_INVALID", "API_KEY_EXPIRED"}:
            raise GeminiAuthError(message)
        raise GeminiBadRequest(message)
