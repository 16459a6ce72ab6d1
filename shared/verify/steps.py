"""Steps of a verify run and the report they make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.errors import ConfigError, StreamDuckError


class Status(StrEnum):
    OK = "ok"
    MISSING = "missing"  # sent, but not found before the timeout
    ERROR = "error"  # a store or source refused or could not be reached, or the event was parked
    SKIPPED = "skipped"  # not attempted: the step it depends on failed


@dataclass(frozen=True, slots=True)
class Pending:
    """Not there yet; ``detail`` says what was seen (shown if the timeout passes)."""

    detail: str


@dataclass(frozen=True, slots=True)
class Found:
    detail: str


@dataclass(frozen=True, slots=True)
class Failed:
    """A final failure: waiting longer cannot help (an event parked, a wrong score, refused credentials)."""

    detail: str


Outcome = Pending | Found | Failed
# A check looks once; it may raise StreamDuckError (a TransientError is retried until the timeout).
Check = Callable[[], Outcome]


@dataclass(slots=True)
class Step:
    """One line of the report."""

    name: str
    target: str
    status: Status | None = None
    seconds: float | None = None
    detail: str = ""
    check: Check | None = field(default=None, repr=False)
    # Checked only once this returns True (or at the deadline): see ``engagement.chdb_gate``.
    ready: Callable[[], bool] | None = field(default=None, repr=False)
    since: float | None = field(default=None, repr=False)  # when the event was sent (monotonic clock)

    @property
    def done(self) -> bool:
        return self.status is not None

    def finish(self, status: Status, seconds: float | None, detail: str) -> None:
        self.status = status
        self.seconds = None if seconds is None else round(seconds, 2)
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "target": self.target,
            "status": str(self.status) if self.status is not None else None,
            "seconds": self.seconds,
            "detail": self.detail,
        }


def error_text(exc: BaseException) -> str:
    """One plain line for an expected failure (a configuration error names each variable)."""
    if isinstance(exc, ConfigError):
        return "; ".join(f"{name}: {reason}" for name, reason in sorted(exc.problems.items()))
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, StreamDuckError):
        text = f"{type(exc).__name__}: {text}"
    return (text or type(exc).__name__)[:500]


def summary(steps: Sequence[Step]) -> dict[str, list[str]]:
    """Step names by status."""
    by: dict[str, list[str]] = {str(s): [] for s in Status}
    for step in steps:
        if step.status is not None:
            by[str(step.status)].append(step.name)
    return by
