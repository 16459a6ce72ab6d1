"""Timestamps: ISO 8601 texts and epoch numbers to epoch milliseconds, and back to the one text form published.

The hot path reads the usual ``YYYY-MM-DDTHH:MM:SS.mmmZ`` texts through a per-second cache.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import cast

MAX_TS_MS = 253402300800000  # year 10000


def parse_timestamp_ms(value: object) -> int | None:
    """Epoch milliseconds from an ISO 8601 string (``Z`` or offset; naive means UTC) or an epoch number.

    Numbers are read by magnitude: seconds, milliseconds or microseconds since the epoch.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        if abs(number) >= 1e14:  # microseconds
            return int(number // 1000)
        if abs(number) >= 1e11:  # milliseconds
            return int(number)
        return int(number * 1000)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("/Date("):  # .NET JSON date
            digits = text[6:].split(")")[0].split("+")[0]
            return int(digits) if digits.lstrip("-").isdigit() else None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _dt_ms(parsed)
    return None


def _dt_ms(parsed: datetime) -> int:
    whole = int(parsed.replace(microsecond=0).timestamp())
    return whole * 1000 + parsed.microsecond // 1000


_ISO_SECONDS: dict[int, str] = {}


def iso_ms(epoch_ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC) of epoch milliseconds."""
    seconds, millis = divmod(epoch_ms, 1000)
    prefix = _ISO_SECONDS.get(seconds)
    if prefix is None:
        if len(_ISO_SECONDS) > 100_000:
            _ISO_SECONDS.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _ISO_SECONDS[seconds] = prefix
    return f"{prefix}.{millis:03d}Z"


# ``YYYY-MM-DDTHH:MM:SS`` -> epoch ms of that second, for seconds since 1970 already parsed in full. Only
# texts exactly as :func:`iso_ms` writes them are kept, so a text read through the cache is canonical.
SECOND_MS: dict[str, int] = {}
MILLIS: dict[str, int] = {f"{i:03d}": i for i in range(1000)}


def iso_timestamp_ms(text: str) -> int | None:
    """:func:`parse_timestamp_ms` of a string; ``...SS.mmmZ`` texts of a second already seen skip the parse."""
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        millis = MILLIS.get(text[20:23])
        if millis is not None:
            base = SECOND_MS.get(text[:19])
            if base is not None:
                return base + millis
            value = parse_timestamp_ms(text)
            if value is not None and value >= 0 and iso_ms(value) == text:
                if len(SECOND_MS) > 100_000:
                    SECOND_MS.clear()
                SECOND_MS[text[:19]] = value - millis
            return value
    return parse_timestamp_ms(text)


def utc_stamps_ms(texts: list[str]) -> tuple[list[int], list[str]] | None:
    """Epoch ms and the canonical ``...SS.mmmZ`` texts of ``YYYY-MM-DDTHH:MM:SS[.f...]Z`` texts; else ``None``.

    Debezium's ``ZonedTimestamp`` writes as many fraction digits as the value needs (none, 1 to 9), so a
    batch mixes lengths. Each text must be such a UTC text of a second since 1970 in canonical form; its
    value is what :func:`parse_timestamp_ms` gives (the fraction truncated to milliseconds), and its canonical
    text is :func:`iso_ms` of that value. ``None`` as soon as one text is anything else.
    """
    seconds = SECOND_MS
    millis_of = MILLIS
    values: list[int] = []
    canonical: list[str] = []
    for text in texts:
        n = len(text)
        if n == 24 and text[19] == "." and text[23] == "Z":  # already canonical in form
            millis = millis_of.get(text[20:23])
            head = text
        elif n > 21 and text[19] == "." and text[-1] == "Z":
            digits = text[20:-1]
            millis = millis_of.get((digits + "00")[:3])
            if not (digits.isascii() and digits.isdigit()):
                return None
            head = f"{text[:20]}{(digits + '00')[:3]}Z"
        elif n == 20 and text[19] == "Z":
            millis = 0
            head = f"{text[:19]}.000Z"
        else:
            return None
        if millis is None:
            return None
        base = seconds.get(text[:19])
        if base is None:
            value = iso_timestamp_ms(head)  # parses and caches the second when ``head`` is canonical
            if value is None or not 0 <= value < MAX_TS_MS or iso_ms(value) != head:
                return None
            base = value - millis
        values.append(base + millis)
        canonical.append(head)
    return values, canonical


def canonical_stamps_ms(stamps: list[str]) -> list[int] | None:
    """Epoch ms of texts that are all canonical ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (checked for the batch at once,
    seconds through the per-second cache); ``None`` when any is not. :func:`utc_stamps_ms` reads the other
    UTC forms, one text at a time."""
    n = len(stamps)
    if {len(t) for t in stamps} != {24}:
        return None
    joined = "".join(stamps)
    if joined[19::24] != "." * n or joined[23::24] != "Z" * n:
        return None
    get_millis = MILLIS.get
    millis = [get_millis(t[20:23]) for t in stamps]
    if None in millis:
        return None
    get_second = SECOND_MS.get
    seconds = [get_second(t[:19]) for t in stamps]
    if None in seconds:
        for i, second in enumerate(seconds):
            if second is None:
                value = iso_timestamp_ms(stamps[i])
                if value is None or not 0 <= value < MAX_TS_MS or iso_ms(value) != stamps[i]:
                    return None
                seconds[i] = value - cast(int, millis[i])
    return [cast(int, s) + cast(int, m) for s, m in zip(seconds, millis, strict=True)]
