"""Reading what the code records, with the real OpenTelemetry SDK.

Design: OpenTelemetry's MeterProvider is global and can be set once per process, and the code under test records
through that global provider (``shared.telemetry.metrics`` asks ``metrics.get_meter("streamduck")``), unchanged.
So this folder installs one SDK ``MeterProvider`` for the whole test process, the first time a test asks for it,
with an ``InMemoryMetricReader`` that prefers DELTA temporality for every instrument kind: each collection returns
only what was recorded since the previous one. The ``recorded`` fixture collects once when a test starts (dropping
whatever earlier tests left) and then gives the test exactly its own measurements. Instruments created earlier,
before the provider was set, are proxies that the API binds to it, so test order does not matter.

Tests in this folder run one at a time in a process (no background recording from other tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, _Gauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

Key = tuple[str, frozenset[tuple[str, str]]]

_READER: InMemoryMetricReader | None = None


def _reader() -> InMemoryMetricReader:
    global _READER
    if _READER is None:
        delta = AggregationTemporality.DELTA
        reader = InMemoryMetricReader(
            preferred_temporality={Counter: delta, Histogram: delta, _Gauge: delta},
        )
        provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(provider)
        assert metrics.get_meter_provider() is provider, "another MeterProvider was installed in this process"
        _READER = reader
    return _READER


@dataclass
class HistogramPoints:
    count: int = 0
    sum: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")


@dataclass
class Recorded:
    """What the code recorded since the test started: counter sums, histogram summaries, last gauge values."""

    reader: InMemoryMetricReader
    counters: dict[Key, int] = field(default_factory=dict)
    histograms: dict[Key, HistogramPoints] = field(default_factory=dict)
    gauges: dict[Key, float] = field(default_factory=dict)

    def collect(self) -> Recorded:
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        key = (
                            metric.name,
                            frozenset((k, str(v)) for k, v in (point.attributes or {}).items()),
                        )
                        self._add(metric.data, key, point)
        return self

    def _add(self, data: Any, key: Key, point: Any) -> None:
        if isinstance(point, HistogramDataPoint):
            h = self.histograms.setdefault(key, HistogramPoints())
            h.count += point.count
            h.sum += point.sum
            h.min, h.max = min(h.min, point.min), max(h.max, point.max)
        elif isinstance(point, NumberDataPoint) and isinstance(data, Gauge):
            self.gauges[key] = point.value
        elif isinstance(point, NumberDataPoint):
            self.counters[key] = self.counters.get(key, 0) + int(point.value)

    def counter(self, name: str, **attributes: str) -> int:
        return self.counters.get(_key(name, attributes), 0)

    def by(self, name: str) -> dict[frozenset[tuple[str, str]], int]:
        """Every attribute set of counter ``name`` with its sum."""
        return {attrs: value for (n, attrs), value in self.counters.items() if n == name}

    def histogram(self, name: str, **attributes: str) -> HistogramPoints:
        return self.histograms.get(_key(name, attributes), HistogramPoints())

    def gauge(self, name: str, **attributes: str) -> float | None:
        return self.gauges.get(_key(name, attributes))


def attrs(**attributes: str) -> frozenset[tuple[str, str]]:
    """An attribute set written with ``_`` for ``.`` (``streamduck_mapping`` is ``streamduck.mapping``)."""
    return frozenset((k.replace("_", ".", 1), v) for k, v in attributes.items())


def _key(name: str, attributes: Mapping[str, str]) -> Key:
    return name, attrs(**attributes)


@pytest.fixture
def recorded() -> Recorded:
    """The measurements of this test only (call ``.collect()`` after the code under test ran)."""
    reader = _reader()
    reader.get_metrics_data()  # drop what earlier tests recorded
    return Recorded(reader)
