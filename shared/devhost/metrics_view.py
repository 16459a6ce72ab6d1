"""The emitted metrics as the dev host shows them: per function and partition, next to its own counters.

Numbers come from the metrics the functions record (read through the dev host's in-memory reader), so the live
view and the ``--json`` summary show what Application Insights, Prometheus or an OTLP backend receive. A metric
stream is matched to a function by its ``streamduck.mapping`` (Event Hubs: the function name) or its
``streamduck.topic`` (Kafka: the trigger's topic).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.telemetry import catalog
from shared.telemetry.local import LocalMetrics, Point

_DEAD_LETTERS = frozenset({catalog.EH_DEAD_LETTERED.name, catalog.KAFKA_DEAD_LETTERS.name})
_LAG = frozenset({catalog.EH_LAG.name, catalog.KAFKA_LAG.name})


@dataclass
class RowMetrics:
    """One function partition's metrics: dead letters so far and the end-to-end lag (seconds)."""

    dead_letters: int = 0
    lag_seconds: float | None = None  # mean lag of the batches since the previous refresh (kept while idle)
    lag_seconds_max: float | None = None
    lag_batches: int = 0
    _lag_sum: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dead_letters": self.dead_letters,
            "lag_seconds": _round(self.lag_seconds),
            "lag_seconds_max": _round(self.lag_seconds_max),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class MetricsView:
    """Reads the emitted metrics on demand (:meth:`refresh`) and keeps them by (function, partition)."""

    def __init__(self, local: LocalMetrics, topics: dict[str, str]) -> None:
        """``topics``: the Kafka-triggered functions by their trigger's topic."""
        self.local = local
        self.topics = topics
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], RowMetrics] = {}
        self._points: list[Point] = []

    def _function(self, attributes: dict[str, str]) -> str | None:
        mapping = attributes.get(catalog.MAPPING)
        if mapping is not None:
            return mapping
        topic = attributes.get(catalog.TOPIC)
        return None if topic is None else self.topics.get(topic)

    def refresh(self) -> None:
        points = self.local.points()
        with self._lock:
            self._points = points
            dead: dict[tuple[str, str], int] = {}
            for point in points:
                function = self._function(point.attributes)
                partition = point.attributes.get(catalog.PARTITION)
                if function is None or partition is None:
                    continue
                key = (function, partition)
                if point.name in _DEAD_LETTERS:
                    dead[key] = dead.get(key, 0) + int(point.value or 0)
                elif point.name in _LAG:
                    self._lag(key, point)
            for key, n in dead.items():
                self._row(key).dead_letters = n

    def _row(self, key: tuple[str, str]) -> RowMetrics:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = RowMetrics()
        return row

    def _lag(self, key: tuple[str, str], point: Point) -> None:
        row = self._row(key)
        new = point.count - row.lag_batches
        if new > 0:
            row.lag_seconds = (point.sum - row._lag_sum) / new
            row.lag_batches, row._lag_sum = point.count, point.sum
            row.lag_seconds_max = point.max

    def row(self, function: str, partition: str) -> RowMetrics:
        with self._lock:
            return self._rows.get((function, partition)) or RowMetrics()

    def summary(self, partitions: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Adds each partition's metrics to the dev host's partition entries; the totals and every stream."""
        self.refresh()
        for entry in partitions:
            entry.update(self.row(str(entry["function"]), str(entry["partition"])).as_dict())
        with self._lock:
            dead = sum(r.dead_letters for r in self._rows.values())
            points = [p.as_dict() for p in sorted(self._points, key=_order)]
        return {"dead_letters": dead, "metrics": points}


def _order(point: Point) -> tuple[str, list[tuple[str, str]]]:
    return point.name, sorted(point.attributes.items())
