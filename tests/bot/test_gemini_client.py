"""The Gemini client against the loopback stand-in: retries, budgets and errors (no real waiting)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx
import pytest

from bot.answer import SentCall
from bot.errors import (
    GeminiAuthError,
    GeminiBadRequest,
    GeminiModelUnavailable,
    GeminiRefusal,
    GeminiUnavailable,
)
from bot.gemini import GeminiClient, build_request
from bot.sandbox.fake_gemini import FakeGemini, Fault

BODY = build_request(
    [{"role": "user", "parts": [{"text": "a red fox"}]}], aspect_ratio="1:1", image_size=None
)
MODEL = "gemini-3.1-flash-image"


class RecordingCancel(threading.Event):
    """Stands in for the shutdown event: records each wait instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        return False


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def client(
    fake: FakeGemini,
    cancel: threading.Event,
    *,
    timeout: float = 10.0,
    key: str | None = None,
    max_attempts: int = 4,
) -> GeminiClient:
    http = httpx.Client(timeout=timeout)
    return GeminiClient(
        http, base_url=fake.url, api_key=key or fake.api_key, cancel=cancel, max_attempts=max_attempts
    )


def test_success_returns_the_final_image(gemini: FakeGemini) -> None:
    result = client(gemini, RecordingCancel()).generate(MODEL, BODY)
    assert result.mime_type == "image/jpeg"
    assert result.usage["totalTokenCount"] > 0
    assert sum(1 for p in result.parts if p.get("thoughtSignature")) == 2


def test_429_waits_at_least_retry_delay_then_succeeds(gemini: FakeGemini) -> None:
    gemini.script(Fault.rate_limited(retry_delay_s=7), Fault.rate_limited(retry_delay_s=3))
    cancel = RecordingCancel()
    seen: list[tuple[str, float]] = []
    client(gemini, cancel).generate(MODEL, BODY, on_retry=lambda reason, s: seen.append((reason, s)))
    assert len(gemini.requests) == 3
    assert cancel.waits[0] >= 7 and cancel.waits[1] >= 3
    assert seen[0][0] == "rate limited by Gemini"


@pytest.mark.parametrize(
    "fault",
    [Fault.internal(), Fault.overloaded(), Fault.deadline(), Fault.reset(), Fault.malformed_json()],
    ids=["500", "503", "504", "reset", "malformed"],
)
def test_transient_errors_are_retried_with_backoff(gemini: FakeGemini, fault: Fault) -> None:
    gemini.script(fault)
    cancel = RecordingCancel()
    assert client(gemini, cancel).generate(MODEL, BODY).image
    assert len(gemini.requests) == 2
    assert 0.5 <= cancel.waits[0] <= 1.0


def test_retry_budget_is_bounded(gemini: FakeGemini) -> None:
    gemini.script(*[Fault.overloaded() for _ in range(10)])
    cancel = RecordingCancel()
    with pytest.raises(GeminiUnavailable) as info:
        client(gemini, cancel, max_attempts=4).generate(MODEL, BODY)
    assert not info.value.rate_limited
    assert len(gemini.requests) == 4
    assert len(cancel.waits) == 3


def test_a_retry_delay_beyond_the_budget_gives_up_without_waiting(gemini: FakeGemini) -> None:
    gemini.script(Fault.rate_limited(retry_delay_s=3600))
    cancel = RecordingCancel()
    with pytest.raises(GeminiUnavailable) as info:
        client(gemini, cancel).generate(MODEL, BODY)
    assert info.value.rate_limited and info.value.retry_after == 3600
    assert cancel.waits == [] and len(gemini.requests) == 1


def test_a_read_timeout_is_not_retried(gemini: FakeGemini) -> None:
    """The request was sent: Gemini may still finish and bill it, so it is not sent twice."""
    gemini.script(Fault.hang(2.0))
    with pytest.raises(GeminiUnavailable) as info:
        client(gemini, RecordingCancel(), timeout=0.5).generate(MODEL, BODY)
    assert info.value.timed_out
    assert len(gemini.requests) == 1


def test_an_unreachable_gemini_is_retried() -> None:
    with FakeGemini() as fake:
        url = fake.url  # a port nothing listens on once the stand-in is stopped
    cancel = RecordingCancel()
    http = httpx.Client(timeout=1.0)
    with pytest.raises(GeminiUnavailable):
        GeminiClient(http, base_url=url, api_key="k", cancel=cancel).generate(MODEL, BODY)
    assert len(cancel.waits) == 3  # four attempts: a request that never left can be sent again


@pytest.mark.parametrize(
    "fault",
    [
        Fault.finish("IMAGE_SAFETY"),
        Fault.finish("PROHIBITED_CONTENT"),
        Fault.finish("NO_IMAGE"),
        Fault.finish("RECITATION"),
        Fault.prompt_blocked(),
        Fault.text_only(),
        Fault.no_candidates(),
    ],
    ids=[
        "image-safety",
        "prohibited",
        "no-image",
        "recitation",
        "prompt-blocked",
        "text-only",
        "no-candidates",
    ],
)
def test_refusals_are_never_retried(gemini: FakeGemini, fault: Fault) -> None:
    gemini.script(fault)
    with pytest.raises(GeminiRefusal):
        client(gemini, RecordingCancel()).generate(MODEL, BODY)
    assert len(gemini.requests) == 1


def test_jpeg_labelled_png_is_sniffed(gemini: FakeGemini) -> None:
    gemini.script(Fault.jpeg_labelled_png())
    result = client(gemini, RecordingCancel()).generate(MODEL, BODY)
    assert result.mime_type == "image/jpeg"
    assert result.parts[result.final_index]["inlineData"]["mimeType"] == "image/jpeg"


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda g: g.retire(MODEL), GeminiModelUnavailable),
        (lambda g: None, GeminiAuthError),
        (lambda g: g.script(Fault.permission_denied()), GeminiAuthError),
    ],
    ids=["retired-model", "bad-key", "permission-denied"],
)
def test_permanent_errors_are_not_retried(gemini: FakeGemini, setup: Any, error: type[Exception]) -> None:
    setup(gemini)
    key = "wrong-key" if error is GeminiAuthError and not gemini.pending_faults else None
    with pytest.raises(error):
        client(gemini, RecordingCancel(), key=key).generate(MODEL, BODY)
    assert len(gemini.requests) == 1


def test_bad_request_is_not_retried(gemini: FakeGemini) -> None:
    body = build_request([{"role": "user", "parts": [{"text": "x"}]}], aspect_ratio="7:3", image_size=None)
    with pytest.raises(GeminiBadRequest):
        client(gemini, RecordingCancel()).generate(MODEL, body)
    assert len(gemini.requests) == 1


def test_an_answer_larger_than_the_limit_is_not_read_nor_asked_for_again(gemini: FakeGemini) -> None:
    http = httpx.Client(timeout=10)
    small = GeminiClient(
        http, base_url=gemini.url, api_key=gemini.api_key, cancel=RecordingCancel(), max_answer_bytes=100_000
    )
    body = build_request(
        [{"role": "user", "parts": [{"text": "a fox"}]}], aspect_ratio="1:1", image_size="4K"
    )
    with pytest.raises(GeminiUnavailable, match="was not read"):
        small.generate(MODEL, body)
    assert len(gemini.requests) == 1  # it may be paid for: not sent again
    assert small.generate(MODEL, BODY).image  # a 1K answer fits


def one_at_a_time(fake: FakeGemini, cancel: threading.Event | None = None) -> GeminiClient:
    return GeminiClient(
        httpx.Client(timeout=10),
        base_url=fake.url,
        api_key=fake.api_key,
        cancel=cancel or RecordingCancel(),
        answers_at_once=1,
    )


def test_an_answer_is_not_read_while_the_answers_in_hand_are_at_the_bound(gemini: FakeGemini) -> None:
    """A caller stores its answer inside ``answer()``; until it has, no other answer of the process is
    read and decoded (fifty 4K answers waiting to be stored held 320 MB)."""
    gemini_client = one_at_a_time(gemini)
    with ThreadPoolExecutor(max_workers=1) as pool:
        with gemini_client.answer(MODEL, BODY) as first:
            assert first.image
            second = pool.submit(gemini_client.generate, MODEL, BODY)
            gemini.wait_for(lambda: len(gemini.requests) == 2 and gemini.requests[1].answered, timeout=10)
            with pytest.raises(FutureTimeout):  # answered by Gemini, but not read: the first is in hand
                second.result(timeout=0.5)
        assert second.result(timeout=10).image  # read as soon as the first is stored


def in_time(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``call()``'s result or exception, failing the test (not hanging it) if it blocks: a lost place in
    the bound would block the next answer forever. The thread is a daemon, so a stuck one can't keep the
    test run from ending."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", call()))
        except Exception as err:
            outcome.append(("error", err))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, "blocked: an earlier answer kept its place"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def test_no_failed_or_refused_answer_keeps_its_place(gemini: FakeGemini) -> None:
    """Every way an answer can go wrong gives its place back, or the process would stop reading answers."""
    gemini_client = one_at_a_time(gemini)

    def generate() -> Any:
        return in_time(lambda: gemini_client.generate(MODEL, BODY))

    gemini.script(Fault.overloaded())
    assert generate().image  # a 503, then an answer
    gemini.script(Fault.finish("IMAGE_SAFETY"))
    with pytest.raises(GeminiRefusal):
        generate()
    gemini.script(Fault.permission_denied())
    with pytest.raises(GeminiAuthError):
        generate()
    gemini.script(*[Fault.malformed_json() for _ in range(4)])
    with pytest.raises(GeminiUnavailable, match="couldn't read"):
        generate()
    assert generate().image


def test_every_call_sent_that_brought_no_answer_is_reported_for_the_ledger(gemini: FakeGemini) -> None:
    """A 503 is an error Google doesn't bill; a reset after sending may have made (and billed) the image;
    a refusal carries its usage; the answer's own call is left to the caller, who stores it."""
    calls: list[SentCall] = []
    gemini.script(Fault.overloaded(), Fault.reset())
    with client(gemini, RecordingCancel()).answer(MODEL, BODY, on_call=calls.append) as answer:
        assert answer.usage
    assert [(c.outcome, c.billed) for c in calls] == [("error", "no"), ("error", "maybe")]

    calls.clear()
    gemini.script(Fault.prompt_blocked())
    with pytest.raises(GeminiRefusal):
        client(gemini, RecordingCancel()).generate(MODEL, BODY)
    gemini.script(Fault.prompt_blocked())
    with (
        pytest.raises(GeminiRefusal),
        client(gemini, RecordingCancel()).answer(MODEL, BODY, on_call=calls.append),
    ):
        pass
    [refused] = calls
    assert (refused.outcome, refused.billed, refused.model_version) == ("refused", "yes", MODEL)
    assert refused.usage["promptTokenCount"] > 0


def test_a_call_that_never_left_is_not_reported() -> None:
    with FakeGemini() as fake:
        url = fake.url  # nothing listens here once the stand-in has stopped
    calls: list[SentCall] = []
    gemini_client = GeminiClient(
        httpx.Client(timeout=1.0), base_url=url, api_key="k", cancel=RecordingCancel()
    )
    with pytest.raises(GeminiUnavailable), gemini_client.answer(MODEL, BODY, on_call=calls.append):
        pass
    assert calls == []
