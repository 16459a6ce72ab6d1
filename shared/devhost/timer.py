"""Timer triggers: six-field NCRONTAB schedules (``second minute hour day month day-of-week``), in UTC.

Supported per field: ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n`` and ``a-b/n``, month and
day names (``JAN``, ``MON``). Like the host without ``runOnStartup``, the first run is the first scheduled
time after the start. A run still going when the next is due delays it (no overlapping runs).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import azure.functions as func

from shared.devhost.functions import HostedFunction
from shared.devhost.outputs import OutputProducer
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.settings import Settings

log = logging.getLogger("streamduck.devhost")

_NAMES = {
    **{
        m: i
        for i, m in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
        )
    },
    **{d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}
_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _value(text: str) -> int:
    return _NAMES[text.upper()] if text.upper() in _NAMES else int(text)


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body in {"*", "?"}:
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = _value(a), _value(b)
        else:
            start = end = _value(body)
            if step_text:
                end = high
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"{part!r} is outside {low}..{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Schedule:
    """A parsed six-field NCRONTAB expression."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(f"{expression!r} is not a six-field NCRONTAB expression")
        parsed = [_field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True)]
        self.expression = expression
        self.seconds, self.minutes, self.hours, self.days, self.months, weekdays = parsed
        self.weekdays = frozenset(0 if d == 7 else d for d in weekdays)  # 7 is Sunday too
        self._any_day = fields[3] in {"*", "?"}
        self._any_weekday = fields[5] in {"*", "?"}

    def _day_matches(self, t: datetime) -> bool:
        weekday = (t.weekday() + 1) % 7  # Sunday = 0
        day_ok, weekday_ok = t.day in self.days, weekday in self.weekdays
        if self._any_day or self._any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok  # cron: either restriction matches

    def next_after(self, after: datetime) -> datetime:
        """The first scheduled time strictly after ``after`` (UTC)."""
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise ValueError(f"{self.expression!r} never fires")


class TimerSource:
    """Runs one timer-triggered function on its schedule in its own thread."""

    def __init__(
        self,
        fn: HostedFunction,
        settings: Settings,
        invoker: Invoker,
        stats: HostStats,
        stop: threading.Event,
    ) -> None:
        self.fn = fn
        self.schedule = Schedule(fn.source)
        self.invoker = invoker
        self.stats = stats
        self.stop = stop
        self.outputs = OutputProducer(fn, settings)

    def run(self) -> None:
        self.stats.ready(self.fn.name)
        due = self.schedule.next_after(datetime.now(tz=UTC))
        try:
            while not self.stop.is_set():
                wait = (due - datetime.now(tz=UTC)).total_seconds()
                if wait > 0 and self.stop.wait(min(wait, 1.0)):
                    break
                if wait > 0:
                    continue
                now = datetime.now(tz=UTC)
                request = func.TimerRequest(past_due=(now - due).total_seconds() > 1)
                outcome = self.invoker.invoke(
                    self.fn, request, deliver_outputs=self.outputs.deliver, label="timer"
                )
                if outcome.status == "abandoned":
                    break
                self.stats.batch_done(self.fn.name, "timer", 0, due.strftime("%H:%M:%S"), outcome.status)
                due = self.schedule.next_after(max(due, datetime.now(tz=UTC)))
        finally:
            self.outputs.close()
