"""The schema's migration runner on a fresh embedded ClickHouse (chDB): the versions are applied in order, a
second run changes nothing, and every ``sql/*.sql`` file the package ships is applied.

chDB allows one engine per process, so the runs happen in a process of their own, on a path of their own; what
they did comes back as plain data.
"""

from __future__ import annotations

import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest

from shared.engagement.clickhouse import MIGRATIONS, SCHEMA_VERSION, Tables, chdb_client, migrate
from shared.engagement.clickhouse.schema import render, sql_text

SQL_FILES = sorted(
    entry.name
    for entry in resources.files("shared.engagement.clickhouse").joinpath("sql").iterdir()
    if entry.name.endswith(".sql")
)
TABLES = Tables("analytics", "engagement_dead_letters")


class _Recording:
    """The real chDB client, recording each statement and each insert (as ``insert <table> v<version>``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[str] = []

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.log.append(sql)
        return self.inner.command(sql, *args, **kwargs)

    def insert(self, table: str, data: list[list[Any]], **kwargs: Any) -> Any:
        self.log.extend(f"insert {table} v{row[0]}" for row in data)
        return self.inner.insert(table, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(frozen=True)
class Run:
    """What one :func:`migrate` did and left."""

    version: int
    log: list[str]
    tables: list[tuple[str, str, str]]  # name, partition key, CREATE statement
    versions: list[tuple[int, str]]  # rows of the versions table (no FINAL: a row written twice shows)


def _state(client: Any) -> tuple[list[tuple[str, str, str]], list[tuple[int, str]]]:
    tables = client.query(
        "SELECT name, partition_key, create_table_query FROM system.tables WHERE database = {db:String} "
        "ORDER BY name",
        parameters={"db": TABLES.database},
    ).result_rows
    versions = client.query(f"SELECT version, description FROM {TABLES.schema} ORDER BY version").result_rows
    return [tuple(row) for row in tables], [(int(v), str(d)) for v, d in versions]


def _migrate_twice(path: str) -> list[Run]:
    """Runs in its own process: :func:`migrate` twice against a fresh chDB at ``path``."""
    client = chdb_client(path)
    runs = []
    for _ in range(2):
        recording = _Recording(client)
        version = migrate(recording, TABLES)
        runs.append(Run(version, recording.log, *_state(client)))
    return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    path: Path = tmp_path_factory.mktemp("chdb_migrations")
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_migrate_twice, str(path)).result(timeout=300)


def test_the_versions_are_applied_in_order_and_recorded(runs: list[Run]) -> None:
    first = runs[0]
    assert first.version == SCHEMA_VERSION == MIGRATIONS[-1].version
    files = {render(name, TABLES): name for name in SQL_FILES}
    applied = [files.get(entry, entry) for entry in first.log if entry in files or entry.startswith("insert")]
    assert applied == [
        "schema_versions.sql",
        "v1_engagement_enriched.sql",
        "v1_content.sql",
        "v1_dead_letters.sql",
        "v1_engagement_by_minute.sql",
        f"insert {TABLES.schema} v1",
        "v2_dead_letters_by_day.sql",
        f"insert {TABLES.schema} v2",
        "v3_engagement_enriched_by_engagement_version.sql",
        f"insert {TABLES.schema} v3",
    ]
    assert first.versions == [(m.version, m.description) for m in MIGRATIONS]
    assert [name for name, _, _ in first.tables] == [
        "content",
        "engagement_by_minute",
        "engagement_dead_letters",
        "engagement_enriched",
        "streamduck_schema",
    ]
    partition_keys = {name: key for name, key, _ in first.tables}
    assert partition_keys["engagement_dead_letters"] == "toYYYYMMDD(parked_at)"
    assert partition_keys["engagement_enriched"] == "toYYYYMMDD(event_ts)"


def test_a_second_run_applies_nothing_and_leaves_the_same_tables(runs: list[Run]) -> None:
    first, second = runs
    assert second.version == first.version
    assert second.log == [
        f"CREATE DATABASE IF NOT EXISTS {TABLES.db}",
        render("schema_versions.sql", TABLES),
        f"SELECT max(version) FROM {TABLES.schema}",
    ]
    assert second.tables == first.tables
    assert second.versions == first.versions


def test_every_sql_file_is_applied(runs: list[Run]) -> None:
    assert len(SQL_FILES) >= 6, SQL_FILES
    never = [name for name in SQL_FILES if render(name, TABLES) not in runs[0].log]
    assert never == []


def test_sql_files_are_templated_by_identifiers_only() -> None:
    placeholders = set(TABLES.identifiers())
    for name in SQL_FILES:
        fields = {field for _, field, _, _ in string.Formatter().parse(sql_text(name)) if field is not None}
        assert fields and fields <= placeholders, (name, fields - placeholders)
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        Tables("analytics; DROP DATABASE analytics", "engagement_dead_letters")
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        Tables("analytics", "dead letters")
