"""Prometheus metrics, every one named ``banana_…``, in a registry of the bot's own (``REGISTRY``).

Counters and histograms are this process's: Prometheus scrapes each process (``/metrics`` on the HTTP
server, ``METRICS_PORT`` for ``worker`` and Socket Mode processes) and sums them; a ``serve``'s worker
process is not scraped but reported by its ``serve`` (``include_child``). The queue's figures
(jobs by state, depth, the oldest queued job's age) are read from the database when scraped
(``watch_queue``), so every process reports the same numbers: take their ``max``, not their sum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.db import reading
from bot.models import JOB_STATES, Job, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry()
ProcessCollector(namespace="banana", registry=REGISTRY)  # memory, CPU, open files of this process

CLAIMS = Counter("banana_claims", "Jobs claimed by this process's workers", registry=REGISTRY)
FINISHED = Counter(
    "banana_jobs_finished", "Jobs this process ended, by outcome", ["state"], registry=REGISTRY
)
GEMINI_SECONDS = Histogram(
    "banana_gemini_request_seconds",
    "generateContent calls until Gemini's answer began, by model asked for",
    ["model"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 180),
    registry=REGISTRY,
)
GEMINI_ERRORS = Counter(
    "banana_gemini_errors",
    "generateContent calls that brought no image, by model and HTTP status (or timeout, connection)",
    ["model", "code"],
    registry=REGISTRY,
)
SLACK_ERRORS = Counter(
    "banana_slack_api_errors",
    "Slack Web API calls that failed, by method and error",
    ["method", "code"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "banana_ack_seconds",
    "Requests from Slack (POST /slack/events) until answered: Slack gives up after 3 s",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3),
    registry=REGISTRY,
)
IMAGES = Counter(
    "banana_images", "Images delivered into Slack threads, by model", ["model"], registry=REGISTRY
)
DOLLARS = Counter(
    "banana_spent_dollars",
    "Dollars written to the cost ledger by this process, by model priced as",
    ["model"],
    registry=REGISTRY,
)


def charged(row: Mapping[str, Any]) -> None:
    """A ledger row (``ledger.charge_row``) was written: its dollars, by the model it was priced as."""
    DOLLARS.labels(row["priced_as"]).inc(row["cost_micros"] / 1_000_000)


class _Queue(Collector):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        with reading(self._sessions) as session:
            counts = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).tuples().all())
            oldest = session.scalar(select(func.min(Job.created_at)).where(Job.state == "queued"))
        jobs = GaugeMetricFamily("banana_jobs", "Jobs in the database, by state", labels=["state"])
        for state in JOB_STATES:
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
        yield GaugeMetricFamily(
            "banana_queue_depth", "Jobs waiting to be claimed", value=counts.get("queued", 0)
        )
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "banana_queue_oldest_seconds", "How long the oldest waiting job has waited", value=max(0.0, age)
        )


_watched: list[_Queue] = []


def watch_queue(sessions: sessionmaker[Session]) -> None:
    """Report the queue read from ``sessions``' database (the last one given, in this process)."""
    for old in _watched:
        REGISTRY.unregister(old)
    _watched[:] = [_Queue(sessions)]
    REGISTRY.register(_watched[0])


_children: list[Callable[[], str]] = []


def include_child(exposition: Callable[[], str], pid: Callable[[], int | None]) -> None:
    """Report a child process (``serve``'s worker process) in this one's ``/metrics``: its counters and
    histograms added to ours, and its memory, CPU and open files as ``banana_worker_process_*``."""
    _children.append(exposition)
    ProcessCollector(namespace="banana_worker", pid=lambda: pid() or "none", registry=REGISTRY)


def exposition() -> bytes:
    families: Iterable[Metric] = REGISTRY.collect()
    for child in _children:
        families = merged(families, text_string_to_metric_families(child()))
    return render(families)


def render(families: Iterable[Metric]) -> bytes:
    """Families already collected, in Prometheus's text format."""
    return generate_latest(_Fixed(families))


def merged(ours: Iterable[Metric], theirs: Iterable[Metric]) -> list[Metric]:
    """Our families with another process's counters and histograms added, sample by sample. Its gauges
    are left out: the queue's figures are the same database's, and a process's own figures are its own."""
    families = {family.name: family for family in ours}
    for family in theirs:
        if family.type not in ("counter", "histogram"):
            continue
        mine = families.setdefault(family.name, family)
        if mine is family:
            continue
        where = {(s.name, _labels(s)): i for i, s in enumerate(mine.samples)}
        for sample in family.samples:
            i = where.get((sample.name, _labels(sample)))
            if i is None:
                mine.samples.append(sample)
            else:
                mine.samples[i] = mine.samples[i]._replace(value=mine.samples[i].value + sample.value)
    return list(families.values())


def _labels(sample: Sample) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(sample.labels.items()))


class _Fixed(CollectorRegistry):
    """Families already collected, in the shape ``generate_latest`` takes."""

    def __init__(self, families: Iterable[Metric]) -> None:
        super().__init__(auto_describe=False)
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families
