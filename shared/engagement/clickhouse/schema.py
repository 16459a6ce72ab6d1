"""The warehouse's schema: the DDL in ``sql/*.sql`` and the runner that applies the missing versions in order.

Each ``.sql`` file holds one statement, templated only by identifiers (``{db}``, ``{enriched}``, ``{content}``,
``{dead}``, ``{minute_view}``, ``{schema}``), each validated and quoted by :mod:`shared.sqlident` before it is
written in. The same SQL runs on a ClickHouse server and on embedded chDB.

Versions: table ``streamduck_schema`` (``schema_versions.sql``) records the applied versions; :func:`migrate`
applies each newer one, step by step, then records it. Every step is idempotent (``IF NOT EXISTS``, or a
function that checks what is there), so a runner that crashed half way, or two processes migrating at once,
leave the same schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from shared.sqlident import quote_ident

ENRICHED_TABLE = "engagement_enriched"
CONTENT_TABLE = "content"
MINUTE_VIEW = "engagement_by_minute"
SCHEMA_TABLE = "streamduck_schema"

_DEAD_LETTER_COLUMNS = (
    "source_topic, source_partition, source_offset, kafka_key, raw_value, kind, reason, function, kafka_ts, "
    "parked_at"
)


@dataclass(frozen=True, slots=True)
class Tables:
    """The warehouse's objects in one database: the names as given (bound as values in queries of ``system``
    tables) and, validated and quoted once, as they are written into SQL (``"db"."table"``)."""

    database: str
    dead_letter_table: str
    db: str = field(init=False)
    enriched: str = field(init=False)
    content: str = field(init=False)
    dead: str = field(init=False)
    schema: str = field(init=False)

    def __post_init__(self) -> None:
        db = quote_ident(self.database)
        object.__setattr__(self, "db", db)
        object.__setattr__(self, "enriched", f"{db}.{quote_ident(ENRICHED_TABLE)}")
        object.__setattr__(self, "content", f"{db}.{quote_ident(CONTENT_TABLE)}")
        object.__setattr__(self, "dead", f"{db}.{quote_ident(self.dead_letter_table)}")
        object.__setattr__(self, "schema", f"{db}.{quote_ident(SCHEMA_TABLE)}")

    def identifiers(self) -> dict[str, str]:
        """What the ``.sql`` files are templated with: each placeholder's quoted identifier."""
        return {
            "db": self.db,
            "enriched": quote_ident(ENRICHED_TABLE),
            "content": quote_ident(CONTENT_TABLE),
            "dead": quote_ident(self.dead_letter_table),
            "minute_view": quote_ident(MINUTE_VIEW),
            "schema": quote_ident(SCHEMA_TABLE),
        }


@cache
def sql_text(name: str) -> str:
    """The statement of ``sql/<name>`` as shipped with the package, placeholders unfilled."""
    return (
        resources.files("shared.engagement.clickhouse")
        .joinpath("sql", name)
        .read_text(encoding="utf-8")
        .strip()
    )


def render(name: str, tables: Tables) -> str:
    """The statement of ``sql/<name>`` for ``tables`` (a placeholder the file names but ``tables`` lacks is a
    KeyError: only identifiers are written in)."""
    return sql_text(name).format_map(tables.identifiers())


def partition_key(client: Any, database: str, table: str) -> str | None:
    """The partition key expression of ``table`` in ``database`` ("" when unpartitioned), None if absent."""
    rows = client.query(
        "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        parameters={"db": database, "table": table},
    ).result_rows
    return str(rows[0][0]) if rows else None


def partition_dead_letters_by_day(client: Any, tables: Tables) -> None:
    """Schema 2: the dead-letter table partitioned by ``toYYYYMMDD(parked_at)``, its rows kept.

    A partition key cannot be altered, so a schema 1 table is renamed to ``<table>_v1``, the new table is
    created under the name and the rows are copied into it before ``<table>_v1`` is dropped. Every step may run
    again, after a crash or in another process migrating at the same time: the rename happens only while the
    table under the name is unpartitioned (a rename that loses the race is checked, not fatal), the create is
    ``IF NOT EXISTS``, and a copy made twice only adds rows with the same key in the same partition, which
    ``ReplacingMergeTree`` collapses (readers use ``FINAL``).
    """
    retired_name = f"{tables.dead_letter_table}_v1"
    retired = f"{tables.db}.{quote_ident(retired_name)}"
    if partition_key(client, tables.database, tables.dead_letter_table) == "":
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            client.command(f"RENAME TABLE {tables.dead} TO {retired}")
        except ClickHouseError:
            if partition_key(client, tables.database, retired_name) is None:
                raise  # not a concurrent migration's doing
    client.command(render("v2_dead_letters_by_day.sql", tables))
    if partition_key(client, tables.database, retired_name) is not None:
        client.command(
            f"INSERT INTO {tables.dead} ({_DEAD_LETTER_COLUMNS}) SELECT {_DEAD_LETTER_COLUMNS} FROM {retired}"
        )
        client.command(f"DROP TABLE IF EXISTS {retired}")


def column_type(client: Any, database: str, table: str, column: str) -> str | None:
    """The type of ``column`` of ``table`` in ``database``, None if either is absent."""
    rows = client.query(
        "SELECT type FROM system.columns WHERE database = {db:String} AND table = {table:String} "
        "AND name = {column:String}",
        parameters={"db": database, "table": table, "column": column},
    ).result_rows
    return str(rows[0][0]) if rows else None


# The columns of ``engagement_enriched`` at schema 2, as schema 3 copies them.
_ENRICHED_V2_COLUMNS = (
    "id",
    "content_id",
    "user_id",
    "event_type",
    "event_ts",
    "duration_ms",
    "device",
    "content_known",
    "content_type",
    "length_seconds",
    "title",
    "engagement_seconds",
    "engagement_pct",
    "source_topic",
    "source_partition",
    "source_offset",
    "version",
    "is_deleted",
    "ingested_at",
)
# A schema 2 version, ``max(engagement ms, content ms) * 2 + content_known``, in schema 3's layout
# (``engagement ms << 65 | (content ms + 2**63) << 1 | content_known``, see shared/engagement/enriched.py): the
# max becomes the engagement version, the content part its lowest value, the known bit stays. Exact for rows
# of unknown content (the sweep reads their engagement version back) and for rows whose engagement version
# was the newer; otherwise an upper bound of it.
V2_VERSION_AS_V3 = (
    "bitOr(bitShiftLeft(toUInt128(bitShiftRight(version, 1)), 65), toUInt128(bitAnd(version, 1)))"
)


def version_enriched_rows_by_engagement_first(client: Any, tables: Tables) -> None:
    """Schema 3: ``engagement_enriched.version`` becomes a ``UInt128`` ordered by the engagement version first,
    its rows kept with their versions re-encoded (:data:`V2_VERSION_AS_V3`).

    ClickHouse refuses to ``UPDATE`` a version column of ``ReplacingMergeTree`` (a key column), so, as in
    schema 2, a schema 2 table is renamed to ``engagement_enriched_v2``, the new table is created under the name
    and the rows are copied into it before ``engagement_enriched_v2`` is dropped. Every step may run again,
    after a crash or in another process migrating at the same time: the rename happens only while the table
    under the name has a ``UInt64`` version (a rename that loses the race is checked, not fatal), the create is
    ``IF NOT EXISTS``, and the copy re-encodes by the retired table's own version type (a ``UInt128`` one, a
    new table a racing process renamed, is copied as it is), so a row copied twice has the same id and version
    and ``ReplacingMergeTree`` collapses it (readers use ``FINAL``).
    """
    retired_name = f"{ENRICHED_TABLE}_v2"
    retired = f"{tables.db}.{quote_ident(retired_name)}"
    if column_type(client, tables.database, ENRICHED_TABLE, "version") == "UInt64":
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            client.command(f"RENAME TABLE {tables.enriched} TO {retired}")
        except ClickHouseError:
            if column_type(client, tables.database, retired_name, "version") is None:
                raise  # not a concurrent migration's doing
    client.command(render("v3_engagement_enriched_by_engagement_version.sql", tables))
    retired_version = column_type(client, tables.database, retired_name, "version")
    if retired_version is not None:
        version = V2_VERSION_AS_V3 if retired_version == "UInt64" else "version"
        columns = ", ".join(_ENRICHED_V2_COLUMNS)
        selected = ", ".join(version if name == "version" else name for name in _ENRICHED_V2_COLUMNS)
        client.command(f"INSERT INTO {tables.enriched} ({columns}) SELECT {selected} FROM {retired}")
        client.command(f"DROP TABLE IF EXISTS {retired}")


# A step is a file of ``sql/`` or, for a change SQL alone cannot make idempotent, a function of the client.
Step = str | Callable[[Any, Tables], None]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its steps, applied in order, then the version recorded."""

    version: int
    description: str
    steps: tuple[Step, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "enriched events, content dimension, dead letters, minute aggregate view",
        (
            "v1_engagement_enriched.sql",
            "v1_content.sql",
            "v1_dead_letters.sql",
            "v1_engagement_by_minute.sql",
        ),
    ),
    Migration(2, "dead letters partitioned by the day they were parked", (partition_dead_letters_by_day,)),
    Migration(
        3,
        "enriched row versions ordered by the engagement version first (UInt128)",
        (version_enriched_rows_by_engagement_first,),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(client: Any, tables: Tables, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Create the database and apply the ``migrations`` newer than the recorded version, in order; returns the
    version recorded now. Driver errors propagate untranslated (the caller translates them)."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {tables.db}")
    client.command(render("schema_versions.sql", tables))
    current = int(client.command(f"SELECT max(version) FROM {tables.schema}") or 0)
    recorded = current
    for migration in migrations:
        if migration.version <= current:
            continue
        for step in migration.steps:
            if isinstance(step, str):
                client.command(render(step, tables))
            else:
                step(client, tables)
        client.insert(
            tables.schema,
            [[migration.version, migration.description]],
            column_names=["version", "description"],
        )
        recorded = max(recorded, migration.version)
    return recorded
