"""Compaction and retention on real DuckDB files: every row kept (or expired by the rule), idempotent, bounded."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.duck.compaction import compact_all
from shared.eventhubs.ingest import EventHubIngestor
from tests.eventhubs.helpers import batch, mapping_env, rows, settings_for, source_events

FINGERPRINT = (
    "SELECT count(*), sum(hash(partition_id, sequence_number, body::VARCHAR, event_offset, enqueued_time)) "
    "FROM lake.raw.events_1"
)


def _fill(ing: EventHubIngestor, batches: int, size: int = 40) -> None:
    for b in range(batches):  # many small appends, each its own transaction
        ing.ingest(ing.mapping(1), batch(source_events(b * size, (b + 1) * size), partition=str(b % 2)))


def test_compaction_preserves_every_row_and_records_the_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ing = EventHubIngestor(settings_for(mapping_env(1, data)))
    _fill(ing, 30)
    ing.close()
    before = rows(data, FINGERPRINT)
    ing = EventHubIngestor(settings_for(mapping_env(1, data)))
    report = compact_all(ing.settings, ing.connections)
    again = compact_all(ing.settings, ing.connections)  # idempotent
    ing.close()
    assert rows(data, FINGERPRINT) == before
    assert before[0][0] == 1200
    (done,) = report.compacted
    assert done.rows_before == done.rows_after == 1200
    assert done.checkpointed is True
    assert done.row_groups_after == 1  # 1,200 rows need one row group
    assert again.compacted[0].rows_after == 1200
    assert rows(
        data, "SELECT count(*), min(rows_after), max(rows_after) FROM lake.raw._streamduck_maintenance"
    ) == [(2, 1200, 1200)]


def test_retention_expires_only_rows_past_the_horizon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**mapping_env(1, data), "MOTHERDUCK_1_RETENTION_DAYS": "7"}
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    ing = EventHubIngestor(settings_for(env), clock=lambda: now)
    m = ing.mapping(1)
    old_t0 = now - timedelta(days=10)
    ing.ingest(m, batch(source_events(0, 50, t0=old_t0)))
    ing.ingest(m, batch(source_events(50, 80, t0=now - timedelta(days=1))))
    ing.ingest(m, batch(source_events(80, 81, body=lambda i: b"\xff", t0=now)))  # a fresh dead letter
    report = compact_all(ing.settings, ing.connections, clock=lambda: now)
    ing.close()
    (done,) = report.compacted
    assert (done.rows_before, done.rows_expired, done.rows_after) == (80, 50, 30)
    assert done.dead_letters_expired == 0
    assert rows(data, "SELECT min(sequence_number), count(*) FROM lake.raw.events_1") == [(50, 30)]
    assert rows(data, "SELECT count(*) FROM lake.raw._streamduck_dead_letters") == [(1,)]
    # Watermarks are not touched: a replay of expired events is still recognised and skipped.
    ing = EventHubIngestor(settings_for(env), clock=lambda: now)
    replay = ing.ingest(ing.mapping(1), batch(source_events(0, 50, t0=old_t0)))
    ing.close()
    assert replay is not None and replay.written == 0


def test_budget_bounds_the_run_and_reports_what_was_skipped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**mapping_env(1, data), **mapping_env(2, data)}
    ing = EventHubIngestor(settings_for(env))
    report = compact_all(ing.settings, ing.connections, budget_seconds=0.0)
    ing.close()
    assert report.skipped == ["lake.raw.events_1", "lake.raw.events_2"]
    assert report.compacted == []


def test_compaction_while_ingestion_runs_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**mapping_env(1, data), "MOTHERDUCK_1_RETENTION_DAYS": "3650"}
    ing = EventHubIngestor(settings_for(env))
    m = ing.mapping(1)
    ing.ingest(m, batch(source_events(0, 1)))
    stop = threading.Event()
    errors: list[Exception] = []

    def compact_repeatedly() -> None:
        while not stop.is_set():
            try:
                compact_all(ing.settings, ing.connections)
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
                errors.append(exc)

    worker = threading.Thread(target=compact_repeatedly)
    worker.start()
    try:
        for start in range(1, 2001, 100):
            ing.ingest(
                m, batch(source_events(start, start + 100, body=lambda i: json.dumps({"i": i}).encode()))
            )
    finally:
        stop.set()
        worker.join()
    ing.close()
    assert rows(data, "SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1") == [
        (2001, 2001)
    ]
    assert all("TransactionException" in str(e) for e in errors), errors


def test_checkpoint_after_expiry_merges_the_row_groups_of_small_appends(tmp_path: Path) -> None:
    """Small appends checkpointed over time leave partly filled row groups; once retention deletes old rows,
    compaction's CHECKPOINT merges what is left into fewer row groups, keeping every remaining row."""
    data = tmp_path / "data"
    env = {**mapping_env(1, data), "MOTHERDUCK_1_RETENTION_DAYS": "7"}
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    ing = EventHubIngestor(settings_for(env), clock=lambda: now)
    m = ing.mapping(1)
    for b in range(200):  # 200 small batches; the compaction timer ran every 20 of them
        t0 = now - timedelta(days=30 if b < 150 else 1)
        ing.ingest(m, batch(source_events(b * 40, (b + 1) * 40, t0=t0)))
        if b % 20 == 19:  # earlier runs, when none of these rows had reached the retention horizon yet
            compact_all(ing.settings, ing.connections, clock=lambda: now - timedelta(days=29))
    report = compact_all(ing.settings, ing.connections, clock=lambda: now)
    ing.close()
    (done,) = report.compacted
    assert (done.rows_before, done.rows_expired, done.rows_after) == (8000, 6000, 2000)
    assert done.row_groups_before is not None and done.row_groups_after is not None
    assert done.row_groups_before > 1  # the small appends did leave several row groups
    assert done.row_groups_after == 1  # 2,000 rows need one
    assert rows(
        data, "SELECT count(*), min(sequence_number), max(sequence_number) FROM lake.raw.events_1"
    ) == [(2000, 6000, 7999)]
