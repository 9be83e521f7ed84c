"""The HTTP plumbing: ``FakeGemini`` (lifecycle, test-facing state, routing, call recording, fault queue)."""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from bot.sandbox._http import QuietHandler, ServerThread
from bot.sandbox.fake_gemini.answers import (
    Answer,
    fault_answer,
    json_answer,
    success_answer,
    text_only_answer,
)
from bot.sandbox.fake_gemini.calls import GeminiCall, redacted_headers
from bot.sandbox.fake_gemini.errors import ApiError, api_key_invalid, api_key_missing, model_not_found
from bot.sandbox.fake_gemini.faults import Fault
from bot.sandbox.fake_gemini.models import DEFAULT_MODELS, STANDARD_RATIOS, FakeModel
from bot.sandbox.fake_gemini.validation import lenient_parse, load_body, load_body_or_none, parse_request

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_KEY = "sandbox-gemini-key"
_ROUTE = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")


class _GeminiHandler(QuietHandler):
    fake: ClassVar[FakeGemini]

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")


class Hold:
    """generateContent answers held back until ``release()`` (see ``FakeGemini.hold``): each request is
    recorded as it arrives and then waits, so a test can act while the app is surely inside its call."""

    def __init__(self, fake: FakeGemini) -> None:
        self._fake = fake
        self._released = threading.Event()
        self.held = 0

    def wait_for_call(self, n: int = 1, timeout: float = 15.0) -> None:
        """Until at least ``n`` requests are being held."""
        self._fake.wait_for(lambda: self.held >= n, timeout)

    def release(self) -> None:
        """Let the held requests (and every later one) be answered."""
        with self._fake._cond:
            if self._fake._hold is self:
                self._fake._hold = None
        self._released.set()

    def _block(self, stopping: threading.Event) -> None:
        with self._fake._cond:
            self.held += 1
            self._fake._cond.notify_all()
        while not self._released.wait(0.05):
            if stopping.is_set():
                return

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class FakeGemini:
    """The loopback Gemini. ``with FakeGemini() as gemini: ... GEMINI_API_URL = gemini.url``."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        models: dict[str, FakeModel] | None = None,
        latency_s: float = 0.0,
        grain: bool = False,
    ) -> None:
        """``grain``: photographic noise in every image, so a 4K answer weighs what a real one does."""
        self.api_key = api_key
        self.grain = grain
        self._models = dict(DEFAULT_MODELS if models is None else models)
        self.latency_s = latency_s
        self._cond = threading.Condition(threading.RLock())
        self._calls: list[GeminiCall] = []
        self._faults: deque[Fault] = deque()
        self._retired: dict[str, bool] = {}  # model id → "no longer available" wording (else "not found")
        self._issued: set[str] = set()
        self._stopping = threading.Event()
        self._server: ServerThread | None = None
        self._hold: Hold | None = None
        self._keys: dict[str, str] = {api_key: "operator"}  # every key it takes, by its name in the calls

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

    def retire(self, model_id: str, *, no_longer_available: bool = False) -> None:
        """From now on ``model_id`` answers 404, like a shut-down model: "models/X is not found for API
        version v1beta…", or with ``no_longer_available`` "This model models/X is no longer available…"
        (Google uses both wordings)."""
        with self._cond:
            self._retired[model_id] = no_longer_available

    def hold(self) -> Hold:
        """Hold back the answers of the generateContent requests that arrive from now on until released::

        with gemini.hold() as held:
            held.wait_for_call()  # the app is now inside its Gemini call
        """
        with self._cond:
            self._hold = Hold(self)
            return self._hold

    def unretire(self, model_id: str) -> None:
        with self._cond:
            self._retired.pop(model_id, None)

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
        call = self._record(handler, unquote(route["model"]), raw, self._key_name(sent_key))
        fault = self._consume_fault(call)
        with self._cond:
            hold = self._hold
        if hold is not None:
            hold._block(self._stopping)
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

    def _record(self, handler: _GeminiHandler, model_id: str, raw: bytes, key_name: str | None) -> GeminiCall:
        headers = redacted_headers(handler.headers.items())
        parsed = load_body_or_none(raw)
        with self._cond:
            call = GeminiCall(
                seq=len(self._calls) + 1,
                model=model_id,
                body=parsed if isinstance(parsed, dict) else {},
                headers=headers,
                at=time.monotonic(),
                key_name=key_name,
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
            call.answered_at = time.monotonic()
            if answer is not None:
                call.status = answer.status
                call.payload = answer.payload
                call.image = answer.image
                self._issued.update(answer.signatures)
            self._cond.notify_all()

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def add_key(self, key: str, *, name: str) -> None:
        """Take ``key`` too (another project's, e.g. a workspace's own); its calls say ``name``."""
        with self._cond:
            self._keys[key] = name

    def _key_name(self, sent_key: str | None) -> str | None:
        with self._cond:
            keys = dict(self._keys)
        return next((name for key, name in keys.items() if secrets.compare_digest(key, sent_key or "")), None)

    def _check_key(self, sent_key: str | None) -> None:
        if not sent_key:
            raise api_key_missing()
        if self._key_name(sent_key) is None:
            raise api_key_invalid()

    def _model(self, model_id: str) -> FakeModel:
        with self._cond:
            model = self._models.get(model_id)
            if model is None or model_id in self._retired:
                raise model_not_found(model_id, no_longer_available=self._retired.get(model_id, False))
            return model

    def _answer(self, model_id: str, raw: bytes, sent_key: str | None, fault: Fault | None) -> Answer:
        replaces = fault is not None and fault.kind not in ("delay", "jpeg_labelled_png", "answer")
        try:
            if replaces and fault is not None:
                model = self._models.get(model_id) or FakeModel(
                    model_id, STANDARD_RATIOS, (), False, "image/png"
                )
                return fault_answer(model, lenient_parse(model, load_body_or_none(raw)), fault)
            self._check_key(sent_key)
            model = self._model(model_id)
            body = load_body(raw)
            with self._cond:
                issued = set(self._issued)
            request = parse_request(model, body, issued)
            if not request.want_image:
                return text_only_answer(model, request, "Here is a description instead of an image.")
            return success_answer(
                model,
                request,
                jpeg_labelled_png=fault is not None and fault.kind == "jpeg_labelled_png",
                twist=fault if fault is not None and fault.kind == "answer" else None,
                grain=self.grain,
            )
        except ApiError as error:
            return json_answer(error.code, error.body())
