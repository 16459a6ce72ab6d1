"""Recording the catalog's metrics: instruments created lazily through OpenTelemetry's global MeterProvider.

Whatever installs the provider decides where the numbers go: the Azure Monitor distro in Azure
(:mod:`shared.telemetry.azure`), the dev host's readers locally (:mod:`shared.telemetry.local`), nothing at all
otherwise (the API's default provider makes every call a no-op). Instruments are created on first use from
``metrics.get_meter("streamduck")``; one created before a provider is installed is a proxy that the API binds to
the provider once it is set, so import order does not matter.

Cost: the record functions take a batch's totals, build each attribute set once and make one ``add`` or
``record`` call per instrument and attribute set, never one per event. Callers pass counts they already have
(or count bad events, which are few); the hot path adds no loop over the batch's events.

This module imports nothing else from ``shared``: every package may record metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from opentelemetry import metrics

from shared.telemetry import catalog
from shared.telemetry.catalog import Kind, Metric

METER_NAME = "streamduck"

# Bucket boundaries (seconds) suggested to the SDK for the histograms; Azure Monitor keeps sum, count, min and
# max per interval, Prometheus and OTLP backends get these buckets.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)  # fmt: skip
LAG_BUCKETS: tuple[float, ...] = (
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
)  # fmt: skip
_LAG_METRICS = frozenset({catalog.EH_LAG.name, catalog.KAFKA_LAG.name})

Attributes = Mapping[str, str]


class _Instruments:
    """The instruments of the catalog, each created the first time it is used (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def get(self, metric: Metric) -> Any:
        instrument = self._made.get(metric.name)
        if instrument is None:
            with self._lock:
                instrument = self._made.get(metric.name)
                if instrument is None:
                    instrument = self._made[metric.name] = _create(metric)
        return instrument

    def counter(self, metric: Metric) -> metrics.Counter:
        return cast(metrics.Counter, self.get(metric))

    def histogram(self, metric: Metric) -> metrics.Histogram:
        return cast(metrics.Histogram, self.get(metric))

    def gauge(self, metric: Metric) -> metrics._Gauge:
        return cast(metrics._Gauge, self.get(metric))


def _create(metric: Metric) -> Any:
    meter = metrics.get_meter(METER_NAME)
    if metric.kind is Kind.COUNTER:
        return meter.create_counter(metric.name, unit=metric.unit, description=metric.description)
    if metric.kind is Kind.HISTOGRAM:
        buckets = LAG_BUCKETS if metric.name in _LAG_METRICS else DURATION_BUCKETS
        return meter.create_histogram(
            metric.name,
            unit=metric.unit,
            description=metric.description,
            explicit_bucket_boundaries_advisory=buckets,
        )
    return meter.create_gauge(metric.name, unit=metric.unit, description=metric.description)


_INSTRUMENTS = _Instruments()


def _add(metric: Metric, value: int, attributes: Attributes, *, skip_zero: bool = False) -> None:
    if value or not skip_zero:
        _INSTRUMENTS.counter(metric).add(value, attributes)


def _lag_seconds(now_ms: int, newest_ms: int | None) -> float | None:
    return None if newest_ms is None else max(0.0, (now_ms - newest_ms) / 1000)


# --------------------------------------------------------------------------------------- Event Hubs


def eventhubs_batch(
    mapping: str,
    partition: str,
    *,
    received: int,
    written: int,
    replayed: int,
    dead_letters: Iterable[tuple[str, int]],
    watermark: int,
    seconds: float,
    newest_enqueued_ms: int | None,
    now_ms: int,
) -> None:
    """One applied Event Hubs batch of ``mapping`` (its function name) and ``partition``.

    ``dead_letters`` are (reason, count) pairs; ``newest_enqueued_ms`` is the newest event's enqueued time
    (epoch ms), so the lag is ``now_ms`` minus it.
    """
    where = {catalog.MAPPING: mapping, catalog.PARTITION: partition}
    _add(catalog.EH_RECEIVED, received, where)
    _add(catalog.EH_WRITTEN, written, where)
    _add(catalog.EH_REPLAYED, replayed, where)
    for reason, count in dead_letters:
        _add(catalog.EH_DEAD_LETTERED, count, {**where, catalog.REASON: reason}, skip_zero=True)
    _INSTRUMENTS.gauge(catalog.EH_WATERMARK).set(watermark, where)
    _INSTRUMENTS.histogram(catalog.EH_BATCH_DURATION).record(seconds, {catalog.MAPPING: mapping})
    lag = _lag_seconds(now_ms, newest_enqueued_ms)
    if lag is not None:
        _INSTRUMENTS.histogram(catalog.EH_LAG).record(lag, where)


# --------------------------------------------------------------------------------------- Kafka


@dataclass(slots=True)
class PartitionCounts:
    """What one Kafka-triggered batch did on one topic partition."""

    received: int = 0
    enriched: int = 0
    unknown_content: int = 0
    content_applied: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)  # reason -> records
    newest_ms: int | None = None  # the newest record's Kafka timestamp (epoch ms)


def engagement_batch(
    topic: str,
    partitions: Mapping[tuple[str, int], PartitionCounts],
    *,
    seconds: float,
    clickhouse_seconds: float | None,
    redis_seconds: float | None,
    now_ms: int,
    reenriched: Mapping[str, int] | None = None,
) -> None:
    """One applied Kafka-triggered batch of ``topic``, with its counts per (topic, partition).

    ``reenriched`` counts the events the batch re-enriched, by their source topic (content function).
    """
    for (part_topic, partition), counts in partitions.items():
        where = {catalog.TOPIC: part_topic, catalog.PARTITION: str(partition)}
        _add(catalog.KAFKA_RECORDS, counts.received, where)
        _add(catalog.KAFKA_ENRICHED, counts.enriched, where, skip_zero=True)
        _add(catalog.KAFKA_UNKNOWN_CONTENT, counts.unknown_content, where, skip_zero=True)
        _add(catalog.KAFKA_CONTENT, counts.content_applied, where, skip_zero=True)
        for reason, count in counts.dead_letters.items():
            _add(catalog.KAFKA_DEAD_LETTERS, count, {**where, catalog.REASON: reason}, skip_zero=True)
        lag = _lag_seconds(now_ms, counts.newest_ms)
        if lag is not None:
            _INSTRUMENTS.histogram(catalog.KAFKA_LAG).record(lag, where)
    engagement_reenriched(reenriched or {})
    by_topic = {catalog.TOPIC: topic}
    _INSTRUMENTS.histogram(catalog.KAFKA_BATCH_DURATION).record(seconds, by_topic)
    if clickhouse_seconds is not None:
        _INSTRUMENTS.histogram(catalog.KAFKA_CLICKHOUSE_DURATION).record(clickhouse_seconds, by_topic)
    if redis_seconds is not None:
        _INSTRUMENTS.histogram(catalog.KAFKA_REDIS_DURATION).record(redis_seconds, by_topic)


def engagement_reenriched(by_topic: Mapping[str, int]) -> None:
    """Events re-enriched after their content arrived, by the topic they came from."""
    for topic, count in by_topic.items():
        _add(catalog.KAFKA_REENRICHED, count, {catalog.TOPIC: topic}, skip_zero=True)


# --------------------------------------------------------------------------------------- timer jobs

JOB_COMPACTION = "compaction"
JOB_LEADERBOARD_WINDOWS = "leaderboard_windows"
JOB_CLICKHOUSE_UPKEEP = "clickhouse_upkeep"

OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"


@dataclass(slots=True)
class JobRun:
    """What a timer job did so far: ``items[action]`` (rows deleted, windows built, ...)."""

    job: str
    items: dict[str, int] = field(default_factory=dict)

    def count(self, action: str, n: int) -> None:
        self.items[action] = self.items.get(action, 0) + n


@contextmanager
def job_run(job: str) -> Iterator[JobRun]:
    """Time one run of a timer job and record it: ``outcome=ok``, or ``outcome=error`` when the body raises.

    The exception is re-raised unchanged (the host must see the failure); the items counted before it are
    recorded too, since that work was done.
    """
    run = JobRun(job)
    started = time.perf_counter()
    outcome = OUTCOME_ERROR
    try:
        yield run
        outcome = OUTCOME_OK
    finally:
        seconds = time.perf_counter() - started
        _add(catalog.JOB_RUNS, 1, {catalog.JOB: job, catalog.OUTCOME: outcome})
        _INSTRUMENTS.histogram(catalog.JOB_DURATION).record(seconds, {catalog.JOB: job})
        for action, n in run.items.items():
            _add(catalog.JOB_ITEMS, n, {catalog.JOB: job, catalog.ACTION: action})
