"""The Event Hubs function's metrics for a known batch and its replay, read with the real SDK."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from shared.eventhubs.ingest import EventHubIngestor
from shared.telemetry import catalog
from tests.eventhubs.helpers import T0, batch, mapping_env, settings_for, source_events
from tests.telemetry.conftest import Recorded, attrs

NOW = T0 + timedelta(seconds=90)


def body(i: int) -> bytes:
    if i == 2:
        return b'{"n": 2, "broken": '  # invalid JSON
    if i == 4:
        return json.dumps({"n": 4, "pad": "x" * 300}).encode()  # over the 200-byte limit
    return json.dumps({"n": i}).encode()


def test_a_batch_and_its_replay_give_exact_counts_per_mapping_partition_and_reason(
    tmp_path: Path, recorded: Recorded
) -> None:
    env = mapping_env(1, tmp_path / "data", STREAMDUCK_MAX_EVENT_BYTES="200")
    settings = settings_for(env)
    mapping = settings.mappings[0]
    ingestor = EventHubIngestor(settings, clock=lambda: NOW)
    try:
        # 0..5 on partition 3 (2: invalid JSON, 4: oversized), then the host replays 4..9 (4 and 5 again).
        ingestor.ingest(mapping, batch(source_events(0, 6, body=body), partition="3"))
        ingestor.ingest(mapping, batch(source_events(4, 10, body=body), partition="3"))
        # Another partition: two good events.
        ingestor.ingest(mapping, batch(source_events(0, 2), partition="7"))
    finally:
        ingestor.close()
    recorded.collect()

    fn = mapping.function_name
    assert fn == "eventhub_to_motherduck_1"
    p3 = {"streamduck_mapping": fn, "streamduck_partition": "3"}
    p7 = {"streamduck_mapping": fn, "streamduck_partition": "7"}
    assert recorded.by(catalog.EH_RECEIVED.name) == {attrs(**p3): 12, attrs(**p7): 2}
    assert recorded.by(catalog.EH_WRITTEN.name) == {attrs(**p3): 8, attrs(**p7): 2}
    assert recorded.by(catalog.EH_REPLAYED.name) == {attrs(**p3): 2, attrs(**p7): 0}
    assert recorded.by(catalog.EH_DEAD_LETTERED.name) == {
        attrs(**p3, streamduck_reason="invalid_json"): 1,
        attrs(**p3, streamduck_reason="oversized"): 1,
    }
    assert recorded.gauge(catalog.EH_WATERMARK.name, **p3) == 9
    assert recorded.gauge(catalog.EH_WATERMARK.name, **p7) == 1

    duration = recorded.histogram(catalog.EH_BATCH_DURATION.name, streamduck_mapping=fn)
    assert duration.count == 3 and 0 < duration.sum < 60
    # Lag: the clock minus the newest event's enqueued time (T0 + sequence number in ms), per batch.
    lag3 = recorded.histogram(catalog.EH_LAG.name, **p3)
    assert lag3.count == 2
    assert lag3.max == (NOW - (T0 + timedelta(milliseconds=5))).total_seconds()
    assert lag3.min == (NOW - (T0 + timedelta(milliseconds=9))).total_seconds()
    assert recorded.histogram(catalog.EH_LAG.name, **p7).max == 89.999
