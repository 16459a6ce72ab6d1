"""The timer jobs' metrics: runs by outcome, duration and items; a failure is recorded and raised unchanged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.demo.engagement import Collect
from shared.duck.compaction import compact_all
from shared.engagement.batch import RawRecord
from shared.engagement.decode_rows import decode_content
from shared.engagement.functions import (
    Pipeline,
    on_content_batch,
    on_engagement_batch,
    on_upkeep_timer,
    on_windows_timer,
    use_pipeline,
)
from shared.engagement.records import ContentChange
from shared.errors import StreamDuckError, TransientError
from shared.eventhubs.ingest import EventHubIngestor
from shared.settings import Settings
from shared.telemetry import catalog
from tests.engagement.support import T0_MS, content_row, dumps, engagement_row
from tests.eventhubs.helpers import T0, batch, mapping_env, settings_for, source_events
from tests.telemetry.conftest import Recorded, attrs
from tests.telemetry.test_engagement_metrics import C1, C2, events, pipeline, settings

__all__ = ["pipeline", "settings"]  # fixtures shared with the engagement metrics tests

RUNS, DURATION, ITEMS = catalog.JOB_RUNS.name, catalog.JOB_DURATION.name, catalog.JOB_ITEMS.name


def items(recorded: Recorded, job: str) -> dict[str, int]:
    return {dict(a)[catalog.ACTION]: n for a, n in recorded.by(ITEMS).items() if (catalog.JOB, job) in a}


def test_compaction_run_records_outcome_duration_and_rows_deleted(tmp_path: Path, recorded: Recorded) -> None:
    settings = settings_for(mapping_env(1, tmp_path / "data", MOTHERDUCK_1_RETENTION_DAYS="1"))
    ingestor = EventHubIngestor(settings)
    try:
        ingestor.ingest(settings.mappings[0], batch(source_events(0, 25)))
        recorded.collect()  # the ingest's own metrics are not what this test reads
        recorded.counters.clear()
        recorded.histograms.clear()
        compact_all(settings, ingestor.connections, clock=lambda: T0 + timedelta(days=3))
    finally:
        ingestor.close()
    recorded.collect()
    assert recorded.by(RUNS) == {attrs(streamduck_job="compaction", streamduck_outcome="ok"): 1}
    assert recorded.histogram(DURATION, streamduck_job="compaction").count == 1
    assert items(recorded, "compaction") == {
        "rows_deleted": 25,
        "dead_letters_deleted": 0,
        "tables_compacted": 1,
        "tables_skipped": 0,
    }


def test_failing_compaction_records_an_error_and_raises(tmp_path: Path, recorded: Recorded) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "lake.duckdb").write_bytes(b"not a DuckDB database file" * 100)
    settings = settings_for(mapping_env(1, data))
    ingestor = EventHubIngestor(settings)
    try:
        with pytest.raises(StreamDuckError):
            compact_all(settings, ingestor.connections)
    finally:
        ingestor.close()
    recorded.collect()
    assert recorded.by(RUNS) == {attrs(streamduck_job="compaction", streamduck_outcome="error"): 1}
    assert recorded.histogram(DURATION, streamduck_job="compaction").count == 1
    assert items(recorded, "compaction") == {}  # it failed on the first table


def test_leaderboard_and_upkeep_runs_record_windows_and_reenriched_events(
    settings: Settings, pipeline: Pipeline, recorded: Recorded
) -> None:
    ts = T0_MS - 60_000
    unknown = [dumps(engagement_row(i, C2, ts_ms=ts)) for i in (1, 2)]
    on_engagement_batch(settings, events(settings.topic_engage, unknown, [0, 0], newest_ms=T0_MS), Collect())
    # C2 reaches the content store without the content function (which would re-enrich at once): the sweep
    # of the upkeep timer finds the two events.
    pipeline.store.apply([_content_change(settings)])
    recorded.collect()
    recorded.counters.clear()
    recorded.histograms.clear()

    on_windows_timer(settings)
    on_upkeep_timer(settings, Collect())
    recorded.collect()
    assert recorded.by(RUNS) == {
        attrs(streamduck_job="leaderboard_windows", streamduck_outcome="ok"): 1,
        attrs(streamduck_job="clickhouse_upkeep", streamduck_outcome="ok"): 1,
    }
    assert items(recorded, "leaderboard_windows") == {"windows_built": len(settings.leaderboard_windows)}
    upkeep = items(recorded, "clickhouse_upkeep")
    assert upkeep["events_reenriched"] == 2 and upkeep["partitions_optimized"] >= 1
    assert recorded.by(catalog.KAFKA_REENRICHED.name) == {attrs(streamduck_topic=settings.topic_engage): 2}
    for job in ("leaderboard_windows", "clickhouse_upkeep"):
        assert recorded.histogram(DURATION, streamduck_job=job).count == 1


def test_failing_timer_records_outcome_error_and_raises(settings: Settings, recorded: Recorded) -> None:
    down = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})
    with use_pipeline(Pipeline(down)), pytest.raises(TransientError):
        on_windows_timer(down)
    recorded.collect()
    assert recorded.by(RUNS) == {attrs(streamduck_job="leaderboard_windows", streamduck_outcome="error"): 1}
    duration = recorded.histogram(DURATION, streamduck_job="leaderboard_windows")
    assert duration.count == 1 and duration.sum > 0
    assert items(recorded, "leaderboard_windows") == {}


def _content_change(settings: Settings) -> ContentChange:
    record = RawRecord(settings.topic_content, 0, 0, None, dumps(content_row(C2)), T0_MS)
    return decode_content(record)


_ = (C1, on_content_batch)
