"""Retry policies as the Functions host reads them from a function's ``retry`` setting.

``exponential_backoff``: the n-th retry waits ``min(maximum_interval, minimum_interval * 2**(n-1))``;
``fixed_delay``: every retry waits ``delay_interval``. ``max_retry_count = -1`` retries forever. The
invoker that applies a policy is :class:`shared.devhost.retry.Invoker`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.devhost.expressions import resolve_expression
from shared.errors import ConfigError
from shared.timespan import parse_timespan


@dataclass(frozen=True)
class RetryPolicy:
    strategy: Literal["exponential_backoff", "fixed_delay"]
    max_retry_count: int  # -1: forever
    delay: float = 0.0  # fixed_delay
    minimum: float = 0.0  # exponential_backoff
    maximum: float = 0.0

    def delay_for(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if self.strategy == "fixed_delay":
            return self.delay
        return float(min(self.maximum, self.minimum * 2.0 ** (retry - 1)))

    def allows(self, retry: int) -> bool:
        return self.max_retry_count < 0 or retry <= self.max_retry_count

    def describe(self) -> str:
        count = "forever" if self.max_retry_count < 0 else f"{self.max_retry_count}x"
        if self.strategy == "fixed_delay":
            return f"fixed {self.delay:g}s, {count}"
        return f"exponential {self.minimum:g}s..{self.maximum:g}s, {count}"


def parse_retry_policy(raw: Mapping[str, Any], environ: Mapping[str, str], *, where: str) -> RetryPolicy:
    def value(key: str) -> str | None:
        item = raw.get(key)
        return None if item is None else resolve_expression(str(item), environ, where=f"{where} retry policy")

    strategy = (value("strategy") or "").lower()
    try:
        count = int(value("max_retry_count") or "0")
        if strategy == "fixed_delay":
            return RetryPolicy(
                "fixed_delay", count, delay=parse_timespan(value("delay_interval") or "00:00:00")
            )
        if strategy == "exponential_backoff":
            return RetryPolicy(
                "exponential_backoff",
                count,
                minimum=parse_timespan(value("minimum_interval") or "00:00:00"),
                maximum=parse_timespan(value("maximum_interval") or "00:00:00"),
            )
    except ValueError as exc:
        raise ConfigError({f"{where} retry policy": str(exc)}) from exc
    raise ConfigError(
        {f"{where} retry policy": f"unknown strategy {strategy!r} (fixed_delay, exponential_backoff)"}
    )
