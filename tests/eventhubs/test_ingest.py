"""Event Hubs -> DuckDB ingestion against real DuckDB files: exactly-once effect, dead letters, failures."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from shared.errors import ConfigError, TerminalError, TransientError
from shared.eventhubs.ingest import EventHubIngestor
from shared.eventhubs.sink import MotherDuckSink
from tests.eventhubs.helpers import T0, batch, index_app, mapping_env, rows, settings_for, source_events


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def ingestor(data_dir: Path) -> Iterator[EventHubIngestor]:
    env = {
        **mapping_env(1, data_dir),
        **mapping_env(2, data_dir, fmt="text"),
        **mapping_env(3, data_dir, fmt="binary"),
    }
    env["STREAMDUCK_MAX_EVENT_BYTES"] = "1000"
    ing = EventHubIngestor(settings_for(env))
    yield ing
    ing.close()


def test_batch_lands_with_every_column(ingestor: EventHubIngestor, data_dir: Path) -> None:
    result = ingestor.ingest(ingestor.mapping(1), batch(source_events(0, 5)))
    assert result is not None
    assert (result.written, result.dead_lettered, result.skipped, result.watermark) == (5, 0, 0, 4)
    ingestor.close()
    got = rows(
        data_dir,
        "SELECT body->>'v', event_hub, consumer_group, partition_id, sequence_number, event_offset, enqueued_time, "
        "partition_key, properties->>'app', system_properties, ingested_at IS NOT NULL "
        "FROM lake.raw.events_1 ORDER BY sequence_number",
    )
    assert [r[0] for r in got] == [f"value-{i}" for i in range(5)]
    first = got[0]
    assert first[1:6] == ("hub1", "$Default", "0", 0, "0")
    assert first[6] == T0
    assert first[7] == "k0"
    assert first[8] == "test"
    assert json.loads(first[9]) == {}  # sequence number, offset, time and key have their own columns
    assert first[10] is True
    (wm,) = rows(
        data_dir,
        "SELECT namespace, event_hub, partition_id, target_table, sequence_number, event_offset, epoch "
        "FROM lake.raw._streamduck_watermarks",
    )
    assert wm == ("test.servicebus.windows.net", "hub1", "0", "events_1", 4, "256", 0)


def test_replays_and_overlapping_splits_write_each_event_once(
    ingestor: EventHubIngestor, data_dir: Path
) -> None:
    m = ingestor.mapping(1)
    events = source_events(0, 100)
    ingestor.ingest(m, batch(events[:60]))
    again = ingestor.ingest(m, batch(events[:60]))  # crash before checkpoint: the host replays the batch
    assert again is not None and (again.written, again.skipped) == (0, 60)
    overlap = ingestor.ingest(m, batch(events[40:100]))  # a different split after a rebalance
    assert overlap is not None and (overlap.written, overlap.skipped) == (40, 20)
    ingestor.close()
    assert rows(
        data_dir,
        "SELECT count(*), count(DISTINCT sequence_number), max(sequence_number) FROM lake.raw.events_1",
    ) == [(100, 100, 99)]


def test_partitions_have_independent_watermarks(ingestor: EventHubIngestor, data_dir: Path) -> None:
    m = ingestor.mapping(1)
    ingestor.ingest(m, batch(source_events(0, 10), partition="0"))
    ingestor.ingest(m, batch(source_events(0, 10), partition="1"))  # same sequence numbers, other partition
    ingestor.close()
    assert rows(data_dir, "SELECT partition_id, count(*) FROM lake.raw.events_1 GROUP BY 1 ORDER BY 1") == [
        ("0", 10),
        ("1", 10),
    ]


def test_every_kind_of_bad_input_is_parked_while_neighbours_land(
    ingestor: EventHubIngestor, data_dir: Path
) -> None:
    bodies = {
        1: b"{not json",
        2: b"\xff\xfe\x00garbage",
        3: b"",
        4: b'{"big": "' + b"x" * 2000 + b'"}',
        5: b"[1, 2",
    }
    events = source_events(0, 8, body=lambda i: bodies.get(i, json.dumps({"n": i}).encode()))
    result = ingestor.ingest(ingestor.mapping(1), batch(events))
    assert result is not None
    assert (result.written, result.dead_lettered, result.watermark) == (3, 5, 7)
    ingestor.close()
    assert [r[0] for r in rows(data_dir, "SELECT sequence_number FROM lake.raw.events_1 ORDER BY 1")] == [
        0,
        6,
        7,
    ]
    letters = rows(
        data_dir,
        "SELECT sequence_number, kind, reason, raw, body_bytes, partition_id, event_offset, target_table "
        "FROM lake.raw._streamduck_dead_letters ORDER BY sequence_number",
    )
    assert [(r[0], r[1]) for r in letters] == [
        (1, "invalid_json"),
        (2, "not_utf8"),
        (3, "invalid_json"),
        (4, "oversized"),
        (5, "invalid_json"),
    ]
    for seq, _kind, reason, raw, size, partition, offset, target in letters:
        assert raw == bodies[seq]  # the exact bytes are kept
        assert size == len(bodies[seq])
        assert (partition, offset, target) == ("0", str(seq * 64), "events_1")
        assert reason
    assert "over the limit of 1000 (STREAMDUCK_MAX_EVENT_BYTES)" in letters[3][2]
    assert "not UTF-8" in letters[1][2]


def test_text_and_binary_mappings(ingestor: EventHubIngestor, data_dir: Path) -> None:
    bodies = [b"plain text", b"\xc3\x28 broken utf-8", b"{json is fine as text"]
    events = source_events(0, 3, body=lambda i: bodies[i])
    text = ingestor.ingest(ingestor.mapping(2), batch(events, hub="hub2"))
    binary = ingestor.ingest(ingestor.mapping(3), batch(events, hub="hub3"))
    assert text is not None and (text.written, text.dead_lettered) == (2, 1)
    assert binary is not None and (binary.written, binary.dead_lettered) == (3, 0)
    ingestor.close()
    assert [r[0] for r in rows(data_dir, "SELECT body FROM lake.raw.events_2 ORDER BY sequence_number")] == [
        "plain text",
        "{json is fine as text",
    ]
    assert [
        r[0] for r in rows(data_dir, "SELECT body FROM lake.raw.events_3 ORDER BY sequence_number")
    ] == bodies


def test_replayed_bad_events_are_parked_once(ingestor: EventHubIngestor, data_dir: Path) -> None:
    events = source_events(0, 4, body=lambda i: b"oops" if i == 2 else b"{}")
    for _ in range(3):
        ingestor.ingest(ingestor.mapping(1), batch(events))
    ingestor.close()
    assert rows(data_dir, "SELECT count(*) FROM lake.raw._streamduck_dead_letters") == [(1,)]
    assert rows(data_dir, "SELECT count(*) FROM lake.raw.events_1") == [(3,)]


class Boom(duckdb.IOException):
    """A real DuckDB exception type, raised where a connection loss would surface."""


def test_transient_failure_leaves_nothing_half_written_and_retry_succeeds(data_dir: Path) -> None:
    settings = settings_for(mapping_env(1, data_dir))
    fail = {"on": True}

    def before_commit(cur: duckdb.DuckDBPyConnection) -> None:
        if fail["on"]:
            raise Boom("connection lost")

    ing = EventHubIngestor(settings)
    ing.sink = MotherDuckSink(ing.connections, before_commit=before_commit)
    m = ing.mapping(1)
    events = source_events(0, 10, body=lambda i: b"bad" if i == 3 else json.dumps({"n": i}).encode())
    with pytest.raises(TransientError, match="connection lost"):
        ing.ingest(m, batch(events))
    cur = ing.connections.cursor("lake")
    assert cur.execute("SELECT count(*) FROM lake.raw.events_1").fetchall() == [(0,)]
    assert cur.execute("SELECT count(*) FROM lake.raw._streamduck_dead_letters").fetchall() == [(0,)]
    assert cur.execute("SELECT count(*) FROM lake.raw._streamduck_watermarks").fetchall() == [(0,)]
    cur.close()
    fail["on"] = False  # the host retries the same batch
    result = ing.ingest(m, batch(events))
    assert result is not None and (result.written, result.dead_lettered) == (9, 1)
    ing.close()


def test_concurrent_delivery_of_one_partition_conflicts_and_the_retry_skips(data_dir: Path) -> None:
    """Two instances deliver the same partition during a rebalance: a real DuckDB write-write conflict on the
    watermark row makes the later one raise (host retries), and its retry writes nothing twice."""
    settings = settings_for(mapping_env(1, data_dir))
    ing = EventHubIngestor(settings)
    m = ing.mapping(1)
    ing.ingest(m, batch(source_events(0, 1)))
    events = batch(source_events(0, 20))
    plain = ing.sink
    rival_errors: list[TransientError] = []

    def rival_delivers_meanwhile(cur: duckdb.DuckDBPyConnection) -> None:
        ing.sink = plain
        try:
            ing.ingest(m, events)  # the other instance, while this transaction is still open
        except TransientError as exc:
            rival_errors.append(exc)

    ing.sink = MotherDuckSink(ing.connections, before_commit=rival_delivers_meanwhile)
    first = ing.ingest(m, events)
    assert first is not None and first.written == 19
    assert len(rival_errors) == 1 and "TransactionException" in str(rival_errors[0])
    retry = ing.ingest(m, events)  # the host retries the rival's batch
    assert retry is not None and (retry.written, retry.skipped) == (0, 20)
    ing.close()
    assert rows(data_dir, "SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1") == [
        (20, 20)
    ]


def test_sequence_numbers_going_backwards_start_a_new_epoch(
    ingestor: EventHubIngestor, data_dir: Path
) -> None:
    m = ingestor.mapping(1)
    ingestor.ingest(m, batch(source_events(0, 50)))
    # The hub was deleted and recreated: numbering restarts, enqueued times are later than the watermark's.
    recreated = source_events(
        0, 10, t0=T0 + timedelta(days=1), body=lambda i: json.dumps({"new": i}).encode()
    )
    result = ingestor.ingest(m, batch(recreated))
    assert result is not None and (result.reset, result.epoch, result.written, result.watermark) == (
        True,
        1,
        10,
        9,
    )
    replay = ingestor.ingest(m, batch(recreated))  # a replay inside the new epoch is still deduplicated
    assert replay is not None and (replay.reset, replay.written, replay.skipped) == (False, 0, 10)
    more = source_events(10, 20, t0=T0 + timedelta(days=1), body=lambda i: json.dumps({"new": i}).encode())
    nxt = ingestor.ingest(m, batch(more))  # the new epoch continues normally
    assert nxt is not None and (nxt.reset, nxt.written, nxt.epoch) == (False, 10, 1)
    ingestor.close()
    assert rows(data_dir, "SELECT count(*) FROM lake.raw.events_1 WHERE body->>'new' IS NOT NULL") == [(20,)]
    assert rows(data_dir, "SELECT count(*) FROM lake.raw.events_1") == [(70,)]
    assert rows(data_dir, "SELECT epoch, sequence_number FROM lake.raw._streamduck_watermarks") == [(1, 19)]


def test_a_recreated_hub_whose_numbering_reaches_exactly_the_watermark_loses_nothing(
    ingestor: EventHubIngestor, data_dir: Path
) -> None:
    """The new numbering's first batch starts at the old watermark's sequence number: that event is new too."""
    m = ingestor.mapping(1)
    ingestor.ingest(m, batch(source_events(0, 10)))  # watermark 9
    recreated = source_events(
        9, 12, t0=T0 + timedelta(days=1), body=lambda i: json.dumps({"new": i}).encode()
    )
    result = ingestor.ingest(m, batch(recreated))
    assert result is not None and (result.reset, result.written, result.watermark) == (True, 3, 11)
    ingestor.close()
    assert rows(data_dir, "SELECT count(*) FROM lake.raw.events_1 WHERE body->>'new' IS NOT NULL") == [(3,)]


def test_parallel_partitions_on_the_worker_thread_pool(ingestor: EventHubIngestor, data_dir: Path) -> None:
    m = ingestor.mapping(1)
    errors: list[BaseException] = []

    def run(partition: str) -> None:
        try:
            for start in range(0, 500, 50):
                ingestor.ingest(m, batch(source_events(start, start + 50), partition=partition))
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(str(p),)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ingestor.close()
    assert rows(
        data_dir,
        "SELECT partition_id, count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1 "
        "GROUP BY 1 ORDER BY 1",
    ) == [(str(p), 500, 500) for p in range(4)]


def test_existing_table_with_another_body_type_is_a_clear_config_error(data_dir: Path) -> None:
    json_ing = EventHubIngestor(settings_for(mapping_env(1, data_dir, table="shared_t")))
    json_ing.ingest(json_ing.mapping(1), batch(source_events(0, 1)))
    json_ing.close()
    from shared.duck import tables

    tables.forget_ensured()
    text_ing = EventHubIngestor(settings_for(mapping_env(1, data_dir, fmt="binary", table="shared_t")))
    with pytest.raises(
        ConfigError, match=r"MOTHERDUCK_1_FORMAT: table lake\.raw\.shared_t exists with body JSON"
    ):
        text_ing.ingest(text_ing.mapping(1), batch(source_events(1, 2)))
    text_ing.close()


def test_batch_without_partition_context_raises_instead_of_guessing(ingestor: EventHubIngestor) -> None:
    import azure.functions as func

    events = [func.EventHubEvent(body=b"{}", sequence_number=1, offset="1", enqueued_time=T0)]
    with pytest.raises(TerminalError, match="PartitionContext"):
        ingestor.ingest(ingestor.mapping(1), events)


def test_unreachable_motherduck_fails_fast_with_the_setting_to_check(tmp_path: Path) -> None:
    """Without internet the motherduck extension cannot be downloaded (its own message, naming the egress to
    allow); with it, MotherDuck refuses the token (naming MOTHERDUCK_TOKEN). Either way: transient, quickly."""
    env = {**mapping_env(1, tmp_path), "MOTHERDUCK_TOKEN": "not-a-real-token"}
    ing = EventHubIngestor(settings_for(env))
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        ing.ingest(ing.mapping(1), batch(source_events(0, 1)))
    assert time.monotonic() - started < 30
    message = str(info.value)
    if "'motherduck' extension" in message:
        assert re.search(
            r"(?s)md:lake: cannot get the DuckDB 'motherduck' extension.*outbound HTTPS", message
        )
    else:
        assert re.search(r"(?s)cannot reach MotherDuck database md:lake.*MOTHERDUCK_TOKEN", message)


def test_function_entry_point_end_to_end(tmp_path: Path) -> None:
    """The registered function, as the worker calls it, with replays: exact counts in the file."""
    code = """
import json
import re
import function_app
from shared.appindex import user_function
from tests.eventhubs.helpers import batch, source_events
fn = user_function(function_app.app, "eventhub_to_motherduck_1")
events = source_events(0, 300, body=lambda i: b"\\xff" if i % 100 == 7 else json.dumps({"n": i}).encode())
for start in (0, 100, 50, 200, 0):
    fn(batch(events[start:start + 100]))
fn(batch(events))
from shared.eventhubs import default_ingestor
cur = default_ingestor(function_app.settings).connections.cursor("lake")
print(json.dumps({
    "rows": cur.execute("SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1").fetchall()[0],
    "dead": cur.execute("SELECT count(*) FROM lake.raw._streamduck_dead_letters").fetchall()[0][0],
}))
"""
    found = index_app(mapping_env(1, tmp_path / "data"), code)
    assert found == {"rows": [297, 297], "dead": 3}


def test_two_first_deliveries_of_a_partition_race_and_only_one_applies(data_dir: Path) -> None:
    """No watermark row yet: both deliveries insert one; the primary key makes the rival fail (transient)."""
    ing = EventHubIngestor(settings_for(mapping_env(1, data_dir)))
    m = ing.mapping(1)
    events = batch(source_events(0, 30))
    plain = ing.sink
    rival_errors: list[TransientError] = []

    def rival_delivers_meanwhile(cur: duckdb.DuckDBPyConnection) -> None:
        ing.sink = plain
        try:
            ing.ingest(m, events)
        except TransientError as exc:
            rival_errors.append(exc)

    ing.sink = MotherDuckSink(ing.connections, before_commit=rival_delivers_meanwhile)
    # The rival commits first; this delivery's commit then violates the key and rolls back.
    with pytest.raises(TransientError, match="PRIMARY KEY or UNIQUE constraint violation"):
        ing.ingest(m, events)
    assert rival_errors == []
    ing.sink = plain
    retry = ing.ingest(m, events)  # the host retries
    assert retry is not None and (retry.written, retry.skipped) == (0, 30)
    ing.close()
    assert rows(data_dir, "SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1") == [
        (30, 30)
    ]


def test_watermark_moved_by_another_instance_is_read_again_before_writing(data_dir: Path) -> None:
    """Each instance remembers the watermark it committed. When another instance moved the row meanwhile
    (a rebalance), the remembered value is stale: the compare-and-set finds it, and the batch is redone
    from the row as it is, so nothing is written twice."""
    settings = settings_for(mapping_env(1, data_dir))
    first, second = EventHubIngestor(settings), EventHubIngestor(settings)
    m = first.mapping(1)
    events = source_events(0, 30)
    assert first.ingest(m, batch(events[:10])) is not None  # first remembers watermark 9
    moved = second.ingest(m, batch(events[:20]))  # the partition moved to the second instance
    assert moved is not None and (moved.written, moved.skipped, moved.watermark) == (10, 10, 19)
    back = first.ingest(m, batch(events[10:30]))  # and back: 10..19 are already there
    assert back is not None and (back.written, back.skipped, back.watermark) == (10, 10, 29)
    again = second.ingest(m, batch(events[20:30]))  # the second instance's memory is stale too
    assert again is not None and (again.written, again.skipped) == (0, 10)
    first.close()
    second.close()
    assert rows(
        data_dir,
        "SELECT count(*), count(DISTINCT sequence_number), max(sequence_number) FROM lake.raw.events_1",
    ) == [(30, 30, 29)]
    assert rows(data_dir, "SELECT sequence_number, epoch FROM lake.raw._streamduck_watermarks") == [(29, 0)]


def test_new_epoch_started_by_another_instance_is_not_started_twice(data_dir: Path) -> None:
    settings = settings_for(mapping_env(1, data_dir))
    first, second = EventHubIngestor(settings), EventHubIngestor(settings)
    m = first.mapping(1)
    first.ingest(m, batch(source_events(0, 50)))  # first remembers watermark 49 of epoch 0
    later = T0 + timedelta(days=1)
    recreated = source_events(0, 20, t0=later, body=lambda i: json.dumps({"new": i}).encode())
    reset = second.ingest(
        m, batch(recreated[:10])
    )  # the hub was recreated; the second instance sees it first
    assert reset is not None and (reset.reset, reset.epoch, reset.written) == (True, 1, 10)
    # The first instance, from memory, would also see numbers going backwards and start epoch 2; the
    # compare-and-set sends it to the row instead, which already is epoch 1 at 9.
    nxt = first.ingest(m, batch(recreated[5:20]))
    assert nxt is not None and (nxt.reset, nxt.epoch, nxt.written, nxt.skipped) == (False, 1, 10, 5)
    first.close()
    second.close()
    assert rows(data_dir, "SELECT count(*) FROM lake.raw.events_1 WHERE body->>'new' IS NOT NULL") == [(20,)]
    assert rows(data_dir, "SELECT epoch, sequence_number FROM lake.raw._streamduck_watermarks") == [(1, 19)]


def test_extra_system_properties_are_kept_and_dotnet_times_are_read(
    ingestor: EventHubIngestor, data_dir: Path
) -> None:
    """IoT Hub routes add system properties of their own; they land in ``system_properties`` (the ones with a
    column of their own do not). The host writes .NET times, with up to seven fractional digits."""
    device = {"iothub-connection-device-id": "sensor-7", "iothub-enqueuedtime": "2026-11-22T07:59:59.9Z"}
    plain = source_events(0, 2)
    from_iot = [
        replace(e, system_properties={**device, "EnqueuedTimeUtc": "2026-11-22T08:00:01.1234567Z"})
        for e in source_events(2, 4)
    ]
    ingestor.ingest(ingestor.mapping(1), batch(plain))
    ingestor.ingest(ingestor.mapping(1), batch(from_iot))
    ingestor.close()
    got = rows(
        data_dir,
        "SELECT sequence_number, system_properties, enqueued_time FROM lake.raw.events_1 ORDER BY 1",
    )
    assert [json.loads(r[1]) for r in got] == [{}, {}, device, device]
    assert got[0][2] == T0
    assert got[2][2] == T0 + timedelta(seconds=1, microseconds=123456)


def test_local_commits_leave_checkpoints_to_the_compaction_timer(data_dir: Path) -> None:
    """DuckDB would fold the log into the file inside an ingest commit every 16 MB; StreamDuck's local files
    let the log grow (up to 256 MB) and the compaction timer's CHECKPOINT folds it, every row kept."""
    from shared.duck.compaction import compact_all

    settings = settings_for(mapping_env(1, data_dir))
    ing = EventHubIngestor(settings)
    m = ing.mapping(1)
    pad = "x" * 600
    events = source_events(0, 40_000, body=lambda i: json.dumps({"n": i, "pad": pad}).encode())
    for start in range(0, len(events), 5_000):
        ing.ingest(m, batch(events[start : start + 5_000]))
    wal = data_dir / "lake.duckdb.wal"
    assert wal.stat().st_size > 24 * 2**20  # 40,000 events of ~620 bytes, still in the log
    run = compact_all(settings, ing.connections)
    assert [r.checkpointed for r in run.compacted] == [True]
    assert not wal.exists() or wal.stat().st_size < 2**20
    ing.close()
    assert rows(data_dir, "SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1") == [
        (40_000, 40_000)
    ]


def test_application_properties_are_kept_verbatim_and_missing_ones_are_an_empty_object(
    ingestor: EventHubIngestor, data_dir: Path
) -> None:
    from azure.functions.meta import Datum

    events = batch(source_events(0, 3))
    datums = events[0]._EventHubEvent__trigger_metadata  # type: ignore[attr-defined]  # the worker's, shared
    datums["PropertiesArray"] = Datum('[null, {"app": "x", "n": [1, 2.5]}, {}]', "json")
    ingestor.ingest(ingestor.mapping(1), events)
    ingestor.close()
    got = rows(data_dir, "SELECT properties FROM lake.raw.events_1 ORDER BY sequence_number")
    assert [json.loads(r[0]) for r in got] == [{}, {"app": "x", "n": [1, 2.5]}, {}]
