"""A ``serve``'s ``/metrics`` adds its worker process's counters and histograms to its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import merged, render


def process(claims: float, errors: dict[str, float], seconds: list[float], depth: float) -> CollectorRegistry:
    """One process's registry with the bot's kinds of metric."""
    registry = CollectorRegistry()
    Counter("banana_claims", "claims", registry=registry).inc(claims)
    by_code = Counter("banana_errors", "errors", ["code"], registry=registry)
    for code, count in errors.items():
        by_code.labels(code).inc(count)
    histogram = Histogram("banana_seconds", "seconds", buckets=(1, 5), registry=registry)
    for value in seconds:
        histogram.observe(value)
    Gauge("banana_queue_depth", "depth", registry=registry).set(depth)
    return registry


def samples(families: list[Metric]) -> dict[str, float]:
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(render(families).decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_counters_and_histograms_add_up_and_the_childs_gauges_are_left_out() -> None:
    parent = process(0, {"timeout": 1}, [0.5], depth=3)
    child = process(2, {"timeout": 2, "429": 1}, [2, 7], depth=3)
    child_families = text_string_to_metric_families(generate_latest(child).decode())

    got = samples(merged(parent.collect(), child_families))

    assert got["banana_claims_total[]"] == 2
    assert got["banana_errors_total[('code', 'timeout')]"] == 3
    assert got["banana_errors_total[('code', '429')]"] == 1  # only the child's
    assert got["banana_seconds_count[]"] == 3 and got["banana_seconds_sum[]"] == 9.5
    assert got["banana_seconds_bucket[('le', '1.0')]"] == 1
    assert got["banana_seconds_bucket[('le', '5.0')]"] == 2
    assert got["banana_seconds_bucket[('le', '+Inf')]"] == 3
    assert got["banana_queue_depth[]"] == 3  # the same database's figure, not summed
