"""ClickHouse upkeep on real chDB: partition ids are validated before they reach SQL; upkeep optimizes recent
partitions only, and only tables with parts to merge; the dead-letter table's move to daily partitions."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.engagement.clickhouse import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Warehouse,
    check_partition_id,
    migrate,
    partition_id,
)
from shared.engagement.clickhouse.schema import partition_dead_letters_by_day, partition_key
from shared.engagement.clickhouse.upkeep import active_parts
from shared.errors import TerminalError
from shared.sqlident import quote_ident

from .support import T0_MS, Env


class _Recording:
    """The real chDB client, recording every statement it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.commands: list[str] = []

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.commands.append(sql)
        return self.inner.command(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


MALICIOUS = [
    "20260301' FINAL; DROP TABLE engagement_enriched; --",
    "2026030'",
    "20260301\n",
    "2026-03-01",
    "202603011",
    "20261301",  # no month 13
    "20260230",  # no 30 February
    "\uff12\uff10\uff12\uff16\uff10\uff13\uff10\uff11",  # fullwidth digits: digits, but not ASCII ones
    "",
]


@pytest.mark.parametrize("partition", MALICIOUS)
def test_a_malicious_or_impossible_partition_id_never_reaches_sql(env: Env, partition: str) -> None:
    env.pipeline.warehouse.ensure_schema()
    recording = _Recording(env.pipeline.warehouse.client)
    warehouse = Warehouse(recording, database=env.settings.clickhouse_database)
    with pytest.raises(TerminalError, match="not a partition id"):
        warehouse.optimize_partition(partition)
    assert recording.commands == []
    with pytest.raises(TerminalError):
        check_partition_id(partition)


def test_partition_ids_of_instants_and_the_upkeep_statements(env: Env) -> None:
    assert partition_id(T0_MS) == "20260301"
    assert partition_id(T0_MS + 120_000) == "20260302"  # 2026-03-01 23:58 + 2 min, UTC
    with pytest.raises(TerminalError):
        partition_id(253_402_300_800_000)  # year 10000: nine digits
    env.pipeline.warehouse.ensure_schema()
    recording = _Recording(env.pipeline.warehouse.client)
    warehouse = Warehouse(recording, database=env.settings.clickhouse_database)
    done = warehouse.optimize_recent(days=2, now_ms=T0_MS + 120_000)
    assert done[:2] == ["engagement_enriched:20260302", "engagement_enriched:20260301"]
    assert [c.split("PARTITION ID ")[1] for c in recording.commands[:2]] == [
        "'20260302' FINAL",
        "'20260301' FINAL",
    ]
    warehouse.optimize_partition("20260301")
    assert recording.commands[-1].endswith("PARTITION ID '20260301' FINAL")


# --------------------------------------------------------------------------------------- bounded upkeep

_DEAD_COLUMNS = [
    "source_topic",
    "source_partition",
    "source_offset",
    "raw_value",
    "kind",
    "reason",
    "function",
]


def _park(warehouse: Warehouse, offset: int, parked_at: str | None = None, *, attempt: int = 1) -> None:
    """One insert (one part) of one dead letter, parked now or at ``parked_at``; ``attempt`` tells redeliveries
    apart (identical blocks would be dropped by the insert deduplication)."""
    table = f"{quote_ident(warehouse.database)}.{quote_ident(warehouse.dead_letter_table)}"
    when = f"toDateTime64('{parked_at}', 3, 'UTC')" if parked_at else "now64(3)"
    warehouse.client.command(
        f"INSERT INTO {table} ({', '.join(_DEAD_COLUMNS)}, parked_at) "
        f"VALUES ('t', 0, {offset}, 'x', 'invalid_json', 'attempt {attempt}', 'f', {when})"
    )


def _content_version(warehouse: Warehouse, version: int) -> None:
    """One insert (one part) of a new version of the same content row."""
    warehouse.client.command(
        f"INSERT INTO {quote_ident(warehouse.database)}.content "
        "(id, title, version, is_deleted, source_topic, source_partition, source_offset) "
        f"VALUES ('00000000-0000-4000-8000-000000000001', 'v{version}', {version}, 0, 't', 0, {version})"
    )


def _optimizes(commands: list[str]) -> list[str]:
    return [c for c in commands if c.startswith("OPTIMIZE")]


def test_upkeep_optimizes_only_recent_partitions_and_only_tables_with_parts_to_merge(env: Env) -> None:
    env.pipeline.warehouse.ensure_schema()
    recording = _Recording(env.pipeline.warehouse.client)
    warehouse = Warehouse(recording, database=env.settings.clickhouse_database)
    dead = warehouse.dead_letter_table
    now_ms = int(time.time() * 1000)
    today, yesterday = partition_id(now_ms), partition_id(now_ms - 86_400_000)

    # nothing parked, no content: only the enriched table's recent partitions
    assert warehouse.optimize_recent(days=2, now_ms=now_ms) == [
        f"engagement_enriched:{today}",
        f"engagement_enriched:{yesterday}",
    ]
    assert all("PARTITION ID" in c for c in _optimizes(recording.commands))

    # two parts each: today's dead letters (a redelivery), an old day's dead letters, the content dimension
    for attempt in (1, 2):
        _park(warehouse, 1, attempt=attempt)
        _park(warehouse, 2, parked_at="2020-01-01 00:00:00", attempt=attempt)
    for version in (1, 2):
        _content_version(warehouse, version)
    assert warehouse.count_dead_letters() == {"invalid_json": 2}  # FINAL: the redelivered rows count once
    recording.commands.clear()
    now_ms = int(time.time() * 1000)
    done = warehouse.optimize_recent(days=2, now_ms=now_ms)
    assert done[2:] == [f"{dead}:{partition_id(now_ms)}", "content"]
    optimizes = _optimizes(recording.commands)
    assert [c for c in optimizes if dead in c] == [
        f"OPTIMIZE TABLE {quote_ident(warehouse.database)}.{quote_ident(dead)} "
        f"PARTITION ID '{partition_id(now_ms)}' FINAL"
    ]
    assert not any("20200101" in c for c in optimizes)  # old partitions are left to background merges
    assert active_parts(warehouse.client, warehouse.database, dead) == {
        partition_id(now_ms): 1,
        "20200101": 2,
    }
    assert active_parts(warehouse.client, warehouse.database, "content") == {"all": 1}
    assert warehouse.count_dead_letters() == {"invalid_json": 2}
    content = warehouse.query("SELECT title, version FROM {db}.content FINAL")
    assert content == [("v2", 2)]

    # merged: the next run leaves both alone
    assert warehouse.optimize_recent(days=2, now_ms=now_ms)[2:] == []
    assert warehouse.optimize_recent(days=0, now_ms=now_ms) == []


def test_a_schema_1_dead_letter_table_is_partitioned_by_day_with_its_rows(env: Env) -> None:
    client = env.pipeline.warehouse.client
    database = env.settings.clickhouse_database
    old = Warehouse(client, database=database)
    assert migrate(client, old.tables, MIGRATIONS[:1]) == 1  # a database schema 1 made
    assert partition_key(client, database, old.dead_letter_table) == ""
    for offset in (1, 2, 3):
        _park(old, offset, parked_at=f"2026-03-0{offset} 12:00:00")

    new = Warehouse(client, database=database)
    assert new.ensure_schema() == SCHEMA_VERSION
    dead = new.dead_letter_table
    assert partition_key(client, database, dead) == "toYYYYMMDD(parked_at)"
    assert partition_key(client, database, f"{dead}_v1") is None  # the old table is gone
    assert active_parts(client, database, dead).keys() == {"20260301", "20260302", "20260303"}
    assert new.count_dead_letters() == {"invalid_json": 3}
    assert new.query("SELECT max(version) FROM {db}.streamduck_schema") == [(SCHEMA_VERSION,)]
    Warehouse(client, database=database).ensure_schema()  # applied: nothing more happens
    assert new.count_dead_letters() == {"invalid_json": 3}


def test_the_dead_letter_migration_completes_from_an_interrupted_state(env: Env) -> None:
    warehouse = env.pipeline.warehouse
    warehouse.ensure_schema()
    for offset in (1, 2):
        _park(warehouse, offset, parked_at="2026-03-01 12:00:00")
    db, dead = quote_ident(warehouse.database), quote_ident(warehouse.dead_letter_table)
    retired = quote_ident(f"{warehouse.dead_letter_table}_v1")
    # interrupted after the copy, before the drop: the old table still holds the same rows
    warehouse.client.command(f"CREATE TABLE {db}.{retired} AS {db}.{dead}")
    warehouse.client.command(f"INSERT INTO {db}.{retired} SELECT * FROM {db}.{dead}")
    partition_dead_letters_by_day(warehouse.client, warehouse.tables)  # what a rerun of schema 2 does
    assert partition_key(warehouse.client, warehouse.database, f"{warehouse.dead_letter_table}_v1") is None
    assert warehouse.count_dead_letters() == {"invalid_json": 2}  # copied twice, counted once
    # interrupted after the rename: no table under the name, the rows in the old one
    warehouse.client.command(f"RENAME TABLE {db}.{dead} TO {db}.{retired}")
    partition_dead_letters_by_day(warehouse.client, warehouse.tables)
    assert partition_key(warehouse.client, warehouse.database, warehouse.dead_letter_table) == (
        "toYYYYMMDD(parked_at)"
    )
    assert warehouse.count_dead_letters() == {"invalid_json": 2}
