"""Time as a value passed in: the clock type every time-dependent component takes, and the real one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the default :data:`Clock`)."""
    return datetime.now(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 in UTC with a ``Z`` (``2026-01-31T12:00:00.123Z``): the one format every command
    prints. A naive value is taken as UTC (DuckDB's ``TIMESTAMP`` columns hold UTC)."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = aware.isoformat(timespec="milliseconds" if aware.microsecond else "seconds")
    return text.removesuffix("+00:00") + "Z"
