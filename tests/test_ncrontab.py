"""NCRONTAB schedules: what the dev host's timers fire on, and the field each wrong expression is refused for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ncrontab import Schedule
from shared.settings import Settings

T0 = datetime(2026, 3, 4, 10, 20, 30, tzinfo=UTC)  # a Wednesday


def _runs(expression: str, count: int, after: datetime = T0) -> list[datetime]:
    schedule, runs = Schedule(expression), []
    for _ in range(count):
        after = schedule.next_after(after)
        runs.append(after)
    return runs


@pytest.mark.parametrize(
    ("expression", "first_two"),
    [
        ("0 30 3 * * *", ["2026-03-05T03:30:00", "2026-03-06T03:30:00"]),
        ("*/15 * * * * *", ["2026-03-04T10:20:45", "2026-03-04T10:21:00"]),
        ("0 */10 * * * *", ["2026-03-04T10:30:00", "2026-03-04T10:40:00"]),
        ("5/20 0 11 * * *", ["2026-03-04T11:00:05", "2026-03-04T11:00:25"]),
        ("0 0 9 * * MON-FRI", ["2026-03-05T09:00:00", "2026-03-06T09:00:00"]),
        ("0 0 0 * * 7", ["2026-03-08T00:00:00", "2026-03-15T00:00:00"]),  # 7 is Sunday, as 0 is
        ("0 0 0 1 JAN,jul *", ["2026-07-01T00:00:00", "2027-01-01T00:00:00"]),
        ("0 0 0 13 * FRI", ["2026-03-06T00:00:00", "2026-03-13T00:00:00"]),  # day or weekday, as in cron
        ("0 0 12 29 2 *", ["2028-02-29T12:00:00", "2032-02-29T12:00:00"]),
    ],
)
def test_runs_fall_on_the_scheduled_times(expression: str, first_two: list[str]) -> None:
    assert [t.isoformat(timespec="seconds").removesuffix("+00:00") for t in _runs(expression, 2)] == first_two


def test_the_next_run_is_strictly_after_the_given_time_and_in_utc() -> None:
    on_the_dot = datetime(2026, 3, 4, 3, 30, tzinfo=UTC)
    assert Schedule("0 30 3 * * *").next_after(on_the_dot) == on_the_dot + timedelta(days=1)
    local = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).astimezone()
    assert Schedule("0 0 13 * * *").next_after(local).tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("99 * * * * *", "'99' in the second field is outside 0..59"),
        ("* * 25 * * *", "'25' in the hour field is outside 0..23"),
        ("0 0 0 32 * *", "'32' in the day field is outside 1..31"),
        ("0 0 0 * 13 *", "'13' in the month field is outside 1..12"),
        ("0 0 0 * * 8", "'8' in the day-of-week field is outside 0..7"),
        ("*/5 * * * *", "'*/5 * * * *' has 5 field(s); a six-field NCRONTAB expression has second minute"),
        ("0 0 0 * * * 2026", "has 7 field(s)"),
        ("*/0 * * * * *", "'*/0' in the second field has step 0; a step is at least 1"),
        ("0 */x * * * *", "'*/x' in the minute field has no whole-number step"),
        ("0 0 MON * * *", "'MON' in the hour field is not a number"),
        ("0 0 0 * MON *", "'MON' in the month field is not a number or a name (JAN, FEB,"),
        ("0 0 0 * * MOON", "'MOON' in the day-of-week field is not a number or a name (SUN, MON,"),
        ("0 0 0 * * 1,,5", "'' in the day-of-week field is not a number"),
        ("0 50-10 * * * *", "'50-10' in the minute field is a range that runs backwards"),
    ],
)
def test_a_wrong_expression_is_refused_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Schedule(expression)
    assert message in str(info.value)


def test_a_schedule_on_a_date_that_never_comes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'0 0 0 30 2 \*' never fires"):
        Schedule("0 0 0 30 2 *").next_after(T0)


@pytest.mark.parametrize(
    "field", ["compaction_schedule", "clickhouse_upkeep_schedule", "leaderboard_schedule"]
)
def test_every_default_schedule_parses_and_fires(field: str) -> None:
    default = str(Settings.model_fields[field].default)
    assert Schedule(default).next_after(T0) > T0
