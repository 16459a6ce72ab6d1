"""Counters the live view, the idle detector and the exit summary read (thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionStats:
    function: str
    partition: str
    events: int = 0
    batches: int = 0
    retries: int = 0
    failed_batches: int = 0
    abandoned_batches: int = 0
    position: str = ""  # last checkpointed offset / sequence number
    lag: int | None = None
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=120))

    def rate(self, now: float, window: float = 5.0) -> float:
        total = sum(n for t, n in self.recent if now - t <= window)
        return total / window

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "partition": self.partition,
            "events": self.events,
            "batches": self.batches,
            "retries": self.retries,
            "failed_batches": self.failed_batches,
            "abandoned_batches": self.abandoned_batches,
            "position": self.position,
            "lag": self.lag,
        }


class HostStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[tuple[str, str], PartitionStats] = {}
        self.last_activity = time.monotonic()
        self.started = time.monotonic()
        self.errors: list[str] = []
        self._ready: set[str] = set()
        self._unreached: dict[str, str] = {}  # function -> why its source has not connected (plain sentence)
        self._connected: set[str] = set()

    def _get(self, function: str, partition: str) -> PartitionStats:
        key = (function, partition)
        if key not in self._parts:
            self._parts[key] = PartitionStats(function, partition)
        return self._parts[key]

    def batch_done(self, function: str, partition: str, events: int, position: str, status: str) -> None:
        with self._lock:
            p = self._get(function, partition)
            if status == "abandoned":
                p.abandoned_batches += 1
            else:
                p.events += events
                p.batches += 1
                p.position = position
                p.recent.append((time.monotonic(), events))
                if status == "failed":
                    p.failed_batches += 1
            self.last_activity = time.monotonic()

    def retried(self, function: str, partitions: str) -> None:
        """One retry of a batch of ``partitions`` (comma-separated when a Kafka batch spans several)."""
        with self._lock:
            for partition in partitions.split(","):
                self._get(function, partition).retries += 1
            self.last_activity = time.monotonic()

    def set_lag(self, function: str, partition: str, lag: int | None) -> None:
        with self._lock:
            self._get(function, partition).lag = lag

    def ready(self, function: str) -> None:
        """``function``'s source is connected and knows its partitions (before that, idle is not drained)."""
        with self._lock:
            self._ready.add(function)
            self._connected.add(function)
            self._unreached.pop(function, None)

    def connected(self, function: str) -> None:
        """``function``'s source reached its service (its partitions may not be known yet)."""
        with self._lock:
            self._connected.add(function)
            self._unreached.pop(function, None)

    def unreached(self, function: str, sentence: str) -> None:
        """``function``'s source failed to connect, for ``sentence``'s reason (ignored once it is connected)."""
        with self._lock:
            if function not in self._connected:
                self._unreached[function] = sentence

    def is_connected(self, function: str) -> bool:
        with self._lock:
            return function in self._connected

    def waiting(self) -> dict[str, str]:
        """Sources that failed to connect so far and have not connected since, with the reason."""
        with self._lock:
            return dict(self._unreached)

    def not_connected(self, functions: list[str]) -> dict[str, str | None]:
        """Of ``functions``, those whose source has not connected yet, with the last reason known (or None)."""
        with self._lock:
            return {f: self._unreached.get(f) for f in functions if f not in self._connected}

    def ready_count(self) -> int:
        with self._lock:
            return len(self._ready)

    def touch(self) -> None:
        with self._lock:
            self.last_activity = time.monotonic()

    def error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def idle_for(self) -> float:
        with self._lock:
            return time.monotonic() - self.last_activity

    def total_lag(self) -> int:
        with self._lock:
            return sum(p.lag or 0 for p in self._parts.values())

    def snapshot(self) -> list[PartitionStats]:
        with self._lock:
            return [
                PartitionStats(**{k: v for k, v in vars(p).items() if k != "recent"}, recent=deque(p.recent))
                for p in sorted(self._parts.values(), key=lambda p: (p.function, p.partition))
            ]

    def summary(self) -> dict[str, Any]:
        parts = self.snapshot()
        return {
            "events": sum(p.events for p in parts),
            "batches": sum(p.batches for p in parts),
            "retries": sum(p.retries for p in parts),
            "failed_batches": sum(p.failed_batches for p in parts),
            "abandoned_batches": sum(p.abandoned_batches for p in parts),
            "seconds": round(time.monotonic() - self.started, 3),
            "partitions": [p.as_dict() for p in parts],
        }
