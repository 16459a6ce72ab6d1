"""Time spans as the Functions host reads them: one reading for settings, retry policies and host.json."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings
from shared.timespan import parse_timespan


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:00", 0.0),
        ("00:00:05", 5.0),
        ("00:01:00", 60.0),
        ("23:59:59", 86399.0),
        ("1.02:00:00", 93600.0),
        ("00:00:00.200", 0.2),
        ("00:00:01.1234567", 1.1234567),
        ("3:04:05", 11045.0),
        (" 00:00:30 ", 30.0),
    ],
)
def test_time_spans(text: str, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "5", "00:60:00", "00:00:60", "24:00:00", "00:00", "00:00:00.12345678", "-00:00:01", "1d"]
)
def test_not_time_spans(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time span hh:mm:ss"):
        parse_timespan(text)


def test_settings_take_the_same_time_spans() -> None:
    assert (
        load_settings({"STREAMDUCK_RETRY_MIN_INTERVAL": "00:00:00.500"}).retry_min_interval == "00:00:00.500"
    )
    with pytest.raises(ConfigError, match="STREAMDUCK_RETRY_MIN_INTERVAL"):
        load_settings({"STREAMDUCK_RETRY_MIN_INTERVAL": "00:99:00"})
