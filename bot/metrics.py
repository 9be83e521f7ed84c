"""Prometheus metrics, every one named ``banana_…``, in a registry of the bot's own (``REGISTRY``).

Counters and histograms are this process's: Prometheus scrapes each process (``/metrics`` on the HTTP
server, ``METRICS_PORT`` for ``worker`` and Socket Mode processes) and sums them. The queue's figures
(jobs by state, depth, the oldest queued job's age) are read from the database when scraped
(``watch_queue``), so every process reports the same numbers: take their ``max``, not their sum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
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


def exposition() -> bytes:
    return generate_latest(REGISTRY)
