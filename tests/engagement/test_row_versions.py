"""The enriched row version orders by the engagement change first, then by the content version, then known
content over unknown; so under Debezium's at-least-once delivery (changes re-emitted at new Kafka offsets) an
older change of an engagement never ties with or beats a newer one, whatever its content did meanwhile.

The order is checked against an independent key (a tuple), on the row and the column paths; the re-emission
sequences run through the enrichment function with real Kafka, Redis and chDB and are read back with
``FINAL``, as a user of the warehouse reads them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.engagement.clickhouse import MIGRATIONS, SCHEMA_VERSION, migrate
from shared.engagement.clickhouse.schema import column_type, version_enriched_rows_by_engagement_first
from shared.engagement.enriched import (
    engagement_version_of,
    row_version,
    version_array,
    version_texts,
    version_words,
)

from .pipeline_support import content_msgs, engage_rows, final_rows, setup_topics
from .support import T0_MS, Env, content_row, engagement_row

INT64 = st.integers(-(2**63), 2**63 - 1)
ENGAGEMENT_MS = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 1, 2**41, 2**63 - 2, 2**63 - 1]))
CONTENT_MS = st.one_of(st.none(), INT64, st.sampled_from([-(2**63), -1, 0, 1, 2**63 - 1]))


def order_key(engagement_ms: int, content_ms: int | None) -> tuple[int, int, int]:
    """What the version must order by: engagement version, then known content (by version) over unknown."""
    return (engagement_ms, 0, 0) if content_ms is None else (engagement_ms, 1, content_ms)


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@settings(max_examples=2000, deadline=None)
@example((100, None), (100, None))
@example((200, 300), (100, 300))  # a delete and a re-emitted older insert, content newer than both
@example((2**63 - 1, 2**63 - 1), (2**63 - 1, 2**63 - 2))
@example((0, -(2**63)), (0, None))
@given(st.tuples(ENGAGEMENT_MS, CONTENT_MS), st.tuples(ENGAGEMENT_MS, CONTENT_MS))
def test_the_version_orders_as_engagement_then_content_then_known(
    a: tuple[int, int | None], b: tuple[int, int | None]
) -> None:
    va, vb = (row_version(e, c, c is not None) for e, c in (a, b))
    assert _sign(va - vb) == _sign((order_key(*a) > order_key(*b)) - (order_key(*a) < order_key(*b)))
    assert 0 <= va < 2**128 and engagement_version_of(va) == a[0]


def test_the_failure_case_orders_the_delete_last() -> None:
    insert, delete, content = 100, 200, 300
    assert row_version(delete, content, True) > row_version(insert, content, True)
    # re-delivered: the same version; re-enriched once its content arrives, or with newer content: higher
    assert row_version(insert, content, True) == row_version(insert, content, True)
    assert (
        row_version(insert, None, False) < row_version(insert, 50, True) < row_version(insert, content, True)
    )


def test_versions_out_of_range_fail_loudly() -> None:
    for engagement_ms in (-1, 2**63):
        with pytest.raises(ValueError, match="engagement version"):
            row_version(engagement_ms, 0, True)
    for content_ms in (None, -(2**63) - 1, 2**63):
        with pytest.raises(ValueError, match="content version"):
            row_version(0, content_ms, True)
    with pytest.raises(ValueError, match="engagement version"):
        version_words(np.array([5, -1], np.int64), np.zeros(2, np.int64), np.ones(2, np.bool_))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ENGAGEMENT_MS, CONTENT_MS), max_size=40))
def test_the_column_path_computes_the_same_versions(rows: list[tuple[int, int | None]]) -> None:
    engagement = np.array([e for e, _ in rows], np.int64)
    content = np.array([0 if c is None else c for _, c in rows], np.int64)
    known = np.array([c is not None for _, c in rows], np.bool_)
    high, low = version_words(engagement, content, known)
    expected = [row_version(e, c, c is not None) for e, c in rows]
    assert [(int(h) << 64) | int(lo) for h, lo in zip(high, low, strict=True)] == expected
    column = version_array(high, low)
    assert [int.from_bytes(v, "little") for v in column.to_pylist()] == expected
    assert version_texts(high, low).to_pylist() == [str(v) for v in expected]


# ------------------------------------------------------------------ through the function, Kafka and chDB


def _enrich(env: Env, *rows: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """Rows sent to the engagement topic and enriched by the function: (id, event_version, value) published."""
    out = env.call("engagement_enrich", env.send(env.settings.topic_engage, engage_rows(list(rows))))
    published = []
    for envelope in out:
        message = json.loads(envelope)
        headers = {h["Key"]: h["Value"] for h in message["Headers"]}
        value = json.loads(message["Value"])
        assert int(headers["event_version"]) == value["version"]
        published.append((int(headers["event_id"]), int(headers["event_version"]), value))
    return published


def _content(env: Env, *rows: dict[str, Any]) -> None:
    env.call("engagement_content_cdc", env.send(env.settings.topic_content, content_msgs(list(rows))))


def _durations(env: Env) -> dict[int, int | None]:
    """``id -> duration_ms`` of the rows ``FINAL`` shows (deleted rows are not shown)."""
    rows = env.pipeline.warehouse.query(
        "SELECT id, duration_ms FROM {db}.engagement_enriched FINAL WHERE is_deleted = 0 ORDER BY id"
    )
    return {int(i): d for i, d in rows}


def test_a_re_emitted_insert_after_a_delete_and_a_content_change_stays_deleted(env: Env) -> None:
    """Inserted at t=100, deleted at t=200, its content changed at t=300, then Kafka Connect crashes and
    re-emits the insert at a new offset: the engagement stays deleted, in ClickHouse and for a consumer of the
    enriched topic keeping the highest ``event_version`` per event id."""
    setup_topics(env)
    cid = str(uuid.uuid4())
    t = T0_MS - 10 * 60_000
    _content(env, content_row(cid, title="First", version=t + 50))
    insert = engagement_row(41, cid, ts_ms=t, duration_ms=20_000, version=t + 100)
    delete = engagement_row(41, cid, ts_ms=t, duration_ms=20_000, op="d", version=t + 200)
    [(_, v_insert, _)] = _enrich(env, insert)
    assert _durations(env) == {41: 20_000}
    _content(env, content_row(cid, title="Second", op="u", version=t + 300))
    [(_, v_delete, deleted)] = _enrich(env, delete)
    assert deleted["deleted"] is True and deleted["title"] == "Second"
    assert _durations(env) == {}
    # re-emitted with the change after it (a crash re-emits a suffix), enriched with the newer content
    later = engagement_row(51, cid, ts_ms=t, duration_ms=5_000, version=t + 400)
    [(_, v_again, again), _] = _enrich(env, insert, later)
    assert again["title"] == "Second"
    assert _durations(env) == {51: 5_000}  # 41 still deleted
    assert 41 not in final_rows(env)
    assert v_insert < v_again < v_delete
    env.pipeline.warehouse.optimize_recent(days=1, now_ms=t)
    assert _durations(env) == {51: 5_000}


def test_an_update_followed_by_a_re_emitted_older_insert_keeps_the_update(env: Env) -> None:
    setup_topics(env)
    cid = str(uuid.uuid4())
    t = T0_MS - 9 * 60_000
    _content(env, content_row(cid, version=t + 50))
    insert = engagement_row(42, cid, ts_ms=t, duration_ms=10_000, version=t + 100)
    _enrich(env, insert)
    _content(env, content_row(cid, title="Renamed", op="u", version=t + 300))
    update = engagement_row(42, cid, ts_ms=t, duration_ms=90_000, op="u", version=t + 200)
    [(_, v_update, _)] = _enrich(env, update)
    later = engagement_row(52, cid, ts_ms=t, duration_ms=5_000, version=t + 400)
    [(_, v_again, _), _] = _enrich(env, insert, later)  # re-emitted after a crash, with the change after it
    assert _durations(env) == {42: 90_000, 52: 5_000}
    assert v_again < v_update
    assert final_rows(env)[42][-1] == v_update


def test_a_re_delivered_event_gets_the_same_version_and_one_row(env: Env) -> None:
    setup_topics(env)
    cid = str(uuid.uuid4())
    t = T0_MS - 8 * 60_000
    _content(env, content_row(cid, version=t + 500))
    row = engagement_row(43, cid, ts_ms=t, duration_ms=15_000, version=t + 100)
    [first] = _enrich(env, row)
    [second] = _enrich(env, row)
    assert first == second
    assert env.pipeline.warehouse.query("SELECT count() FROM {db}.engagement_enriched FINAL") == [(1,)]
    assert final_rows(env)[43][-1] == first[1]


def test_an_event_re_enriched_when_its_content_arrives_wins(env: Env) -> None:
    setup_topics(env)
    cid = str(uuid.uuid4())
    t = T0_MS - 7 * 60_000
    row = engagement_row(44, cid, ts_ms=t, duration_ms=15_000, version=t + 100)
    [(_, v_unknown, value)] = _enrich(env, row)
    assert value["content_known"] is False
    # content older than the engagement change: the re-enriched row still wins
    out = env.call(
        "engagement_content_cdc",
        env.send(env.settings.topic_content, content_msgs([content_row(cid, title="Late", version=t)])),
    )
    [reenriched] = [json.loads(envelope) for envelope in out]
    version = int({h["Key"]: h["Value"] for h in reenriched["Headers"]}["event_version"])
    assert version > v_unknown
    stored = final_rows(env)[44]
    assert stored[2] is True and stored[3] == "Late" and stored[-1] == version


# ------------------------------------------------------------------ schema 3: a schema 2 table migrates

_OLD_COLUMNS = (
    "id, content_id, event_type, event_ts, duration_ms, content_known, source_topic, source_partition, "
    "source_offset, version, is_deleted"
)


def _old_row(event_id: int, *, duration_ms: int, known: bool, version: int, deleted: bool = False) -> str:
    """A schema 2 row as the earlier enrichment wrote it (its version ``max(engagement, content) * 2 + known``)."""
    return (
        f"({event_id}, '00000000-0000-4000-8000-000000000001', 'play', '2026-03-01 12:00:00.000', "
        f"{duration_ms}, {int(known)}, 't', 0, {event_id}, {version}, {int(deleted)})"
    )


def _schema_2_with_rows(env: Env) -> None:
    warehouse = env.pipeline.warehouse
    assert migrate(warehouse.client, warehouse.tables, MIGRATIONS[:2]) == 2
    e, c = 1_772_366_400_000, 1_772_366_500_000
    rows = [
        _old_row(1, duration_ms=1_000, known=False, version=e * 2),  # unknown content: exact
        _old_row(2, duration_ms=2_000, known=True, version=max(e, c) * 2 + 1),
        _old_row(3, duration_ms=3_000, known=True, version=max(e + 5, c) * 2 + 1, deleted=True),
    ]
    warehouse.client.command(
        f"INSERT INTO {warehouse.tables.enriched} ({_OLD_COLUMNS}) VALUES {', '.join(rows)}"
    )


def _version_type(env: Env, table: str = "engagement_enriched") -> str | None:
    return column_type(env.pipeline.warehouse.client, env.pipeline.warehouse.database, table, "version")


def test_a_schema_2_table_migrates_with_its_rows_re_encoded(env: Env) -> None:
    _schema_2_with_rows(env)
    warehouse = env.pipeline.warehouse
    assert _version_type(env) == "UInt64"
    assert warehouse.ensure_schema() == SCHEMA_VERSION == 3
    assert _version_type(env) == "UInt128"
    assert _version_type(env, "engagement_enriched_v2") is None  # the old table is gone
    e, c = 1_772_366_400_000, 1_772_366_500_000
    stored = warehouse.query(
        "SELECT id, duration_ms, content_known, version, is_deleted FROM {db}.engagement_enriched FINAL ORDER BY id"
    )
    assert stored == [(1, 1_000, False, e << 65, 0), (2, 2_000, True, (c << 65) | 1, 0)]
    # the sweep reads the engagement version of an unknown-content row back exactly
    [unknown] = warehouse.unknown_events(since_ms=0, limit=10)
    assert (unknown.id, unknown.engagement_version_ms) == (1, e)
    # the minute view reads the new table
    assert warehouse.query("SELECT events FROM {db}.engagement_by_minute") == [(2,)]
    assert warehouse.ensure_schema() == 3  # applied: nothing more happens
    assert warehouse.query("SELECT count() FROM {db}.engagement_enriched") == [(3,)]


def test_the_schema_3_migration_completes_from_an_interrupted_state(env: Env) -> None:
    _schema_2_with_rows(env)
    warehouse = env.pipeline.warehouse
    client, db = warehouse.client, warehouse.tables.db
    retired = f'{db}."engagement_enriched_v2"'
    # interrupted after the rename: no table under the name, the rows in the old one
    client.command(f"RENAME TABLE {warehouse.tables.enriched} TO {retired}")
    version_enriched_rows_by_engagement_first(client, warehouse.tables)
    assert _version_type(env) == "UInt128" and _version_type(env, "engagement_enriched_v2") is None
    migrated = warehouse.query("SELECT id, version FROM {db}.engagement_enriched FINAL ORDER BY id")
    # interrupted after the copy, before the drop (or a racing migration renamed the new table): the retired
    # table holds UInt128 versions, copied as they are, and a row copied twice is collapsed
    client.command(f"CREATE TABLE {retired} AS {warehouse.tables.enriched}")
    client.command(f"INSERT INTO {retired} SELECT * FROM {warehouse.tables.enriched}")
    version_enriched_rows_by_engagement_first(client, warehouse.tables)
    assert _version_type(env, "engagement_enriched_v2") is None
    assert warehouse.query("SELECT id, version FROM {db}.engagement_enriched FINAL ORDER BY id") == migrated
    assert len(migrated) == 2


def test_after_the_migration_a_re_emitted_older_insert_cannot_bring_a_deleted_row_back(env: Env) -> None:
    """Row 3 was deleted before the migration; its insert, re-emitted after it, stays below the delete."""
    _schema_2_with_rows(env)
    setup_topics(env)
    cid = "00000000-0000-4000-8000-000000000001"
    e, c = 1_772_366_400_000, 1_772_366_500_000
    _content(env, content_row(cid, version=c + 1_000))
    insert = engagement_row(3, cid, ts_ms=e - 60_000, duration_ms=3_000, version=e)
    later = engagement_row(4, cid, ts_ms=e - 60_000, duration_ms=4_000, version=c + 2_000)
    _enrich(env, insert, later)
    assert _durations(env) == {1: 1_000, 2: 2_000, 4: 4_000}
