"""How verify marks its test data: reserved ids, and an event time no leaderboard window ever reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from shared.engagement.leaderboard import Leaderboard, minute_name
from shared.settings import load_settings
from shared.verify.marks import ENGAGEMENT_ID_BASE, RunMarks
from tests.support.cli import base_env, run_cli

NOW = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)


@pytest.mark.parametrize("ttl", ["7200", "3660", "86460"])
def test_the_test_engagement_is_in_no_window_now_or_later(ttl: str) -> None:
    windows = {"7200": "5,10,30,60", "3660": "5,60", "86460": "1440"}[ttl]
    settings = load_settings({"LEADERBOARD_BUCKET_TTL_SECONDS": ttl, "LEADERBOARD_WINDOWS": windows})
    marks = RunMarks.new(settings, NOW)
    # Only the window arithmetic is used: the client is never connected.
    board = Leaderboard(redis.Redis(port=1), bucket_ttl_seconds=settings.leaderboard_bucket_ttl_seconds)
    bucket = board.bucket_key(marks.event_minute)
    for later in (0, 1, 59, 3600, int(ttl) + 600):  # from the send until the bucket expires and beyond
        now_ms = int((NOW + timedelta(seconds=later)).timestamp() * 1000)
        for minutes in range(1, board.max_window_minutes + 1):
            assert bucket not in board.window_buckets(minutes, now_ms), (minutes, later)
    # ...but only just: a window a few minutes longer than the buckets serve would reach it.
    reach = board.max_window_minutes + 1 + 5 + 1
    now_ms = int(NOW.timestamp() * 1000)
    assert bucket in [board.bucket_key(now_ms // 60_000 - i) for i in range(1, reach + 1)]
    assert minute_name(marks.event_minute) == bucket.rsplit(":", 1)[1]


def test_ids_are_reserved_and_derived_from_the_run_id() -> None:
    settings = load_settings({})
    first, second = RunMarks.new(settings, NOW), RunMarks.new(settings, NOW)
    assert first.run_id != second.run_id
    assert first.run_id.startswith("verify-20260301T123456Z-")
    for marks in (first, second):
        assert marks.content.id.startswith("5d5d5d5d-")
        assert ENGAGEMENT_ID_BASE <= marks.engagement.id < 2**63
        assert marks.engagement.content_id == marks.content.id
        assert marks.content.title == f"StreamDuck verify {marks.run_id}"
        assert marks.engagement.raw_payload == {"streamduck_verify": marks.run_id}
    assert first.content.id != second.content.id
    assert first.engagement.id != second.engagement.id


def test_help_has_examples_and_a_bad_settings_file_is_one_line(tmp_path: Path) -> None:
    help_text = run_cli("verify", "--help", env=base_env(tmp_path), cwd=tmp_path)
    assert help_text.code == 0
    assert "streamduck verify --timeout 300" in help_text.stdout

    (tmp_path / "local.settings.json").write_text('{"IsEncrypted": false}', encoding="utf-8")
    result = run_cli(
        "verify", "--local-settings", "local.settings.json", env=base_env(tmp_path), cwd=tmp_path
    )
    assert result.code == 3
    assert result.stderr.splitlines() == [
        "error: invalid configuration (1 problem(s)); fix:",
        '  --local-settings: local.settings.json has no "Values" object (the local.settings.json layout)',
    ]


def test_only_eventhubs_without_a_mapping_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_cli("verify", "--only", "eventhubs", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 3
    assert result.stderr.splitlines()[1] == (
        "  EVENTHUBNAME_1: no Event Hubs mapping is configured (--only eventhubs needs one), "
        "for example EVENTHUBNAME_1=telemetry"
    )
