"""Time spans as the Functions host reads them (.NET ``TimeSpan``): ``[d.]hh:mm:ss[.fffffff]``.

One reading for the app's retry settings (``RETRY_*_INTERVAL``), a function's ``@app.retry`` intervals and
host.json's ``maxWaitTime``: hours 0-23, minutes and seconds 0-59, up to seven fraction digits.
"""

from __future__ import annotations

import re

_TIMESPAN = re.compile(r"(?:(\d+)\.)?([01]?\d|2[0-3]):([0-5]\d):([0-5]\d(?:\.\d{1,7})?)")


def parse_timespan(value: str) -> float:
    """Seconds in ``value``; ``ValueError`` naming the expected form when it is not a time span."""
    match = _TIMESPAN.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a time span hh:mm:ss (optionally d.hh:mm:ss.fff)")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
