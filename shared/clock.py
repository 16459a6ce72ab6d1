"""Time as a value passed in: the clock type every time-dependent component takes, and the real one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the default :data:`Clock`)."""
    return datetime.now(UTC)
