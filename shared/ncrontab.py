"""Six-field NCRONTAB schedules (``second minute hour day month day-of-week``), in UTC, as Azure Functions reads them.

Supported per field: ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a/n`` and ``a-b/n``; month
names (``JAN``) in the month field and day names (``MON``) in the day-of-week field, where 7 is Sunday too.
Settings validation and the dev host's timers parse with the same :class:`Schedule`, so a schedule the dev host
cannot run is rejected when the app is indexed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FIELDS = ("second", "minute", "hour", "day", "month", "day-of-week")
_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES: dict[str, dict[str, int]] = {
    "month": {m: i for i, m in enumerate(_MONTHS, start=1)},
    "day-of-week": {d: i for i, d in enumerate(_DAYS)},
}
EXAMPLE = "0 30 3 * * *"


def _value(text: str, field: str, part: str) -> int:
    names = _NAMES.get(field, {})
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        kind = "a number or a name (" + ", ".join(names) + ")" if names else "a number"
        raise ValueError(f"{part!r} in the {field} field is not {kind}")
    return int(text)


def _field(text: str, field: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        if slash and not step_text.isdigit():
            raise ValueError(f"{part!r} in the {field} field has no whole-number step after '/'")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError(f"{part!r} in the {field} field has step {step}; a step is at least 1")
        if body in {"*", "?"}:
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = _value(a, field, part), _value(b, field, part)
        else:
            start = end = _value(body, field, part)
            if slash:
                end = high
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"{part!r} in the {field} field is outside {low}..{high}")
        if start > end:
            raise ValueError(f"{part!r} in the {field} field is a range that runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Schedule:
    """A parsed six-field NCRONTAB expression; :class:`ValueError` names the field that is wrong."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) != len(FIELDS):
            raise ValueError(
                f"{expression!r} has {len(fields)} field(s); a six-field NCRONTAB expression has "
                f"{' '.join(FIELDS)}"
            )
        parsed = [
            _field(text, name, low, high)
            for text, name, (low, high) in zip(fields, FIELDS, _RANGES, strict=True)
        ]
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
        """The first scheduled time strictly after ``after`` (UTC); :class:`ValueError` if it never fires."""
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
        raise ValueError(f"{self.expression!r} never fires (no such date in five years)")
