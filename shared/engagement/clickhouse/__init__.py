"""ClickHouse warehouse of the engagement pipeline: client factory, versioned schema, idempotent writes.

Transport: HTTP(S) to a ClickHouse server when ``CLICKHOUSE_HOST`` is set, else the embedded chDB engine
(``clickhouse_connect.get_client(interface="chdb", path=CLICKHOUSE_CHDB_PATH)``). chDB allows one engine per
process, so one client per path is shared by every caller in the process. All SQL here runs on both.

Idempotence: every insert carries an ``insert_deduplication_token`` derived from its rows (ids and
versions), and the tables have a non-zero ``non_replicated_deduplication_window``, so a retried insert of the
same rows is dropped by ClickHouse. Tables are ``ReplacingMergeTree(version, is_deleted)`` keyed by the row
id, so a re-delivered event split into different batches, a re-enriched event or a delete replaces the older
row; read with ``FINAL`` (the views do).

Errors: clickhouse-connect/chDB exceptions are translated in one place, :func:`translate_clickhouse_error`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from shared.engagement.cdc import ContentChange, DeadLetter
from shared.engagement.enrich import EnrichedBatch, EnrichedRows, dedup_token
from shared.errors import ConfigError, StreamDuckError, TerminalError, TransientError
from shared.settings import Settings
from shared.sqlident import quote_ident

STORE = "clickhouse"
DEDUP_WINDOW = 10_000
ENRICHED_TABLE = "engagement_enriched"
CONTENT_TABLE = "content"
MINUTE_VIEW = "engagement_by_minute"
SCHEMA_TABLE = "streamduck_schema"

# Settings of every insert. ``optimize_on_insert = 0``: rows of one insert that share a key are not collapsed
# while the part is written (a quarter of the insert's time, measured); the ReplacingMergeTree merges and every
# ``FINAL`` read collapse them as they collapse rows of different inserts, so what readers see is unchanged.
# ``max_threads = 1``: a batch is one block, so a pipeline of worker threads only adds hand-offs (5-9% more
# events/s through the enrichment function with embedded chDB, measured in interleaved runs).
_INSERT_SETTINGS: dict[str, str | int] = {"optimize_on_insert": 0, "max_threads": 1}

# Partition ids of the daily partitioned tables (``PARTITION BY toYYYYMMDD(...)``): eight digits, a calendar date.
_PARTITION_ID = re.compile(r"[0-9]{8}")

_TRANSIENT_NAMES = (
    "TIMEOUT_EXCEEDED",
    "SOCKET_TIMEOUT",
    "NETWORK_ERROR",
    "ALL_CONNECTION_TRIES_FAILED",
    "TOO_MANY_SIMULTANEOUS_QUERIES",
    "TOO_MANY_PARTS",
    "MEMORY_LIMIT_EXCEEDED",
    "CANNOT_ALLOCATE_MEMORY",
    "TABLE_IS_READ_ONLY",
    "UNKNOWN_STATUS_OF_INSERT",
    "KEEPER_EXCEPTION",
    "QUERY_WAS_CANCELLED",
    "ABORTED",
    "SERVER_OVERLOADED",
    "CANNOT_SCHEDULE_TASK",
)


def translate_clickhouse_error(exc: BaseException) -> StreamDuckError:
    """The StreamDuck error for a clickhouse-connect or chDB exception."""
    from clickhouse_connect.driver import exceptions as ch

    if isinstance(exc, StreamDuckError):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ch.OperationalError | ch.InterfaceError | OSError | TimeoutError):
        return TransientError(message, store=STORE, cause=exc)
    text = str(exc)
    if any(name in text for name in _TRANSIENT_NAMES):
        return TransientError(message, store=STORE, cause=exc)
    if "AUTHENTICATION_FAILED" in text or "REQUIRED_PASSWORD" in text:
        return ConfigError({"CLICKHOUSE_PASSWORD": f"ClickHouse refused the credentials: {text[:200]}"})
    return TerminalError(f"clickhouse: {message}")


@contextmanager
def clickhouse_errors() -> Iterator[None]:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        yield
    except (ClickHouseError, OSError, RuntimeError) as exc:
        raise translate_clickhouse_error(exc) from exc


# --------------------------------------------------------------------------------------- clients

_CLIENTS: dict[tuple[str, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def chdb_client(path: Path | str) -> Any:
    """The process-wide chDB client for ``path`` (chDB allows one engine per process)."""
    import clickhouse_connect

    resolved = str(Path(path).resolve())
    with _CLIENTS_LOCK:
        key = ("chdb", resolved)
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        others = [k[1] for k in _CLIENTS if k[0] == "chdb"]
        if others:
            raise ConfigError(
                {
                    "CLICKHOUSE_CHDB_PATH": (
                        f"this process already runs the embedded engine at {others[0]}; chDB allows one "
                        f"engine per process, so use that path (or a separate process) instead of {resolved}"
                    )
                }
            )
        Path(resolved).mkdir(parents=True, exist_ok=True)
        with clickhouse_errors():
            client = clickhouse_connect.get_client(interface="chdb", path=resolved)
        _CLIENTS[key] = client
        return client


def client_for(settings: Settings) -> Any:
    """HTTP client when ``CLICKHOUSE_HOST`` is set, else the shared chDB client."""
    if not settings.clickhouse_host:
        return chdb_client(settings.clickhouse_chdb_path)
    import clickhouse_connect

    key = ("http", settings.clickhouse_host, str(settings.clickhouse_port), settings.clickhouse_user)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else ""
            with clickhouse_errors():
                client = clickhouse_connect.get_client(
                    host=settings.clickhouse_host,
                    port=settings.clickhouse_port,
                    username=settings.clickhouse_user,
                    password=password,
                    secure=settings.clickhouse_secure,
                    compress="lz4",
                    connect_timeout=10,
                    send_receive_timeout=120,
                )
            _CLIENTS[key] = client
        return client


# --------------------------------------------------------------------------------------- schema

SCHEMA_VERSION = 2

# The dead-letter table from schema 2 on: partitioned by the day it was parked, so upkeep touches recent days only.
_DEAD_LETTERS_BY_DAY = """CREATE TABLE IF NOT EXISTS {table} (
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    kafka_key Nullable(String),
    raw_value String,
    kind LowCardinality(String),
    reason String,
    function LowCardinality(String),
    kafka_ts Nullable(DateTime64(3, 'UTC')),
    parked_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(parked_at)
ORDER BY (source_topic, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = {window}"""
_DEAD_LETTER_COLUMNS = (
    "source_topic, source_partition, source_offset, kafka_key, raw_value, kind, reason, function, kafka_ts, "
    "parked_at"
)


def _partition_dead_letters_by_day(warehouse: Warehouse) -> None:
    """Schema 2: the dead-letter table partitioned by ``toYYYYMMDD(parked_at)``, its rows kept.

    A partition key cannot be altered, so a schema 1 table is renamed to ``<table>_v1``, the new table is
    created under the name and the rows are copied into it before ``<table>_v1`` is dropped. Every step may run
    again, after a crash or in another process migrating at the same time: the rename happens only while the
    table under the name is unpartitioned (a rename that loses the race is checked, not fatal), the create is
    ``IF NOT EXISTS``, and a copy made twice only adds rows with the same key in the same partition, which
    ``ReplacingMergeTree`` collapses (readers use ``FINAL``).
    """
    client = warehouse.client
    retired_name = f"{warehouse.dead_letter_table}_v1"
    retired = f"{warehouse._db}.{quote_ident(retired_name)}"
    if warehouse._partition_key(warehouse.dead_letter_table) == "":
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            client.command(f"RENAME TABLE {warehouse._dead} TO {retired}")
        except ClickHouseError:
            if warehouse._partition_key(retired_name) is None:
                raise  # not a concurrent migration's doing
    client.command(_DEAD_LETTERS_BY_DAY.format(table=warehouse._dead, window=DEDUP_WINDOW))
    if warehouse._partition_key(retired_name) is not None:
        client.command(
            f"INSERT INTO {warehouse._dead} ({_DEAD_LETTER_COLUMNS}) SELECT {_DEAD_LETTER_COLUMNS} FROM {retired}"
        )
        client.command(f"DROP TABLE IF EXISTS {retired}")


# A migration step is SQL (formatted with the quoted names of ``Warehouse.ensure_schema``) or a function of
# the warehouse, for a change SQL alone cannot make idempotent.
_Step = str | Callable[["Warehouse"], None]

_MIGRATIONS: tuple[tuple[int, str, tuple[_Step, ...]], ...] = (
    (
        1,
        "enriched events, content dimension, dead letters, minute aggregate view",
        (
            """CREATE TABLE IF NOT EXISTS {db}.{enriched} (
                id Int64,
                content_id UUID,
                user_id Nullable(UUID),
                event_type LowCardinality(String),
                event_ts DateTime64(3, 'UTC'),
                duration_ms Nullable(Int32),
                device Nullable(String),
                content_known Bool,
                content_type LowCardinality(Nullable(String)),
                length_seconds Nullable(Int32),
                title Nullable(String),
                engagement_seconds Nullable(Decimal(18, 2)),
                engagement_pct Nullable(Decimal(18, 2)),
                source_topic LowCardinality(String),
                source_partition Int32,
                source_offset Int64,
                version UInt64,
                is_deleted UInt8,
                ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(version, is_deleted)
            PARTITION BY toYYYYMMDD(event_ts)
            ORDER BY id
            SETTINGS non_replicated_deduplication_window = {window}""",
            """CREATE TABLE IF NOT EXISTS {db}.{content} (
                id UUID,
                slug Nullable(String),
                title Nullable(String),
                content_type LowCardinality(Nullable(String)),
                length_seconds Nullable(Int32),
                publish_ts Nullable(DateTime64(3, 'UTC')),
                version UInt64,
                is_deleted UInt8,
                source_topic LowCardinality(String),
                source_partition Int32,
                source_offset Int64,
                updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(version, is_deleted)
            ORDER BY id
            SETTINGS non_replicated_deduplication_window = {window}""",
            """CREATE TABLE IF NOT EXISTS {db}.{dead} (
                source_topic LowCardinality(String),
                source_partition Int32,
                source_offset Int64,
                kafka_key Nullable(String),
                raw_value String,
                kind LowCardinality(String),
                reason String,
                function LowCardinality(String),
                kafka_ts Nullable(DateTime64(3, 'UTC')),
                parked_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree
            ORDER BY (source_topic, source_partition, source_offset)
            SETTINGS non_replicated_deduplication_window = {window}""",
            """CREATE VIEW IF NOT EXISTS {db}.{minute_view} AS
            SELECT
                toStartOfMinute(event_ts) AS minute,
                content_id,
                count() AS events,
                countIf(NOT content_known) AS unknown_content_events,
                uniqExact(user_id) AS users,
                sum(engagement_seconds) AS engagement_seconds,
                avg(engagement_pct) AS avg_engagement_pct,
                any(title) AS title
            FROM {db}.{enriched} FINAL
            GROUP BY minute, content_id""",
        ),
    ),
    (2, "dead letters partitioned by the day they were parked", (_partition_dead_letters_by_day,)),
)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An enriched row stored without content, as needed to re-enrich it."""

    id: int
    content_id: str
    user_id: str | None
    event_type: str
    event_ts_ms: int
    duration_ms: int | None
    device: str | None
    version: int
    source_topic: str
    source_partition: int
    source_offset: int

    @property
    def engagement_version_ms(self) -> int:
        return self.version >> 1


class Warehouse:
    """The engagement tables in one ClickHouse database."""

    def __init__(
        self, client: Any, *, database: str, dead_letter_table: str = "engagement_dead_letters"
    ) -> None:
        self.client = client
        self.database = database
        self.dead_letter_table = dead_letter_table
        self._db = quote_ident(database)
        self._enriched = f"{self._db}.{quote_ident(ENRICHED_TABLE)}"
        self._content = f"{self._db}.{quote_ident(CONTENT_TABLE)}"
        self._dead = f"{self._db}.{quote_ident(dead_letter_table)}"
        self._schema_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        return cls(
            client_for(settings),
            database=settings.clickhouse_database,
            dead_letter_table=settings.engagement_dead_letter_table,
        )

    # ----------------------------------------------------------------------------------- schema

    def ensure_schema(self) -> int:
        """Create or upgrade the schema (idempotent, safe to run concurrently); returns the version."""
        if self._schema_ready:
            return SCHEMA_VERSION
        names = {
            "db": self._db,
            "enriched": quote_ident(ENRICHED_TABLE),
            "content": quote_ident(CONTENT_TABLE),
            "dead": quote_ident(self.dead_letter_table),
            "minute_view": quote_ident(MINUTE_VIEW),
            "window": DEDUP_WINDOW,
        }
        schema_table = f"{self._db}.{quote_ident(SCHEMA_TABLE)}"
        with self._lock, clickhouse_errors():
            self.client.command(f"CREATE DATABASE IF NOT EXISTS {self._db}")
            self.client.command(
                f"CREATE TABLE IF NOT EXISTS {schema_table} (version UInt32, description String, "
                "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
                "ENGINE = ReplacingMergeTree ORDER BY version"
            )
            current = int(self.client.command(f"SELECT max(version) FROM {schema_table}") or 0)
            for version, description, statements in _MIGRATIONS:
                if version <= current:
                    continue
                for step in statements:
                    if isinstance(step, str):
                        self.client.command(step.format(**names))
                    else:
                        step(self)
                self.client.insert(
                    schema_table, [[version, description]], column_names=["version", "description"]
                )
            self._schema_ready = True
        return SCHEMA_VERSION

    def _partition_key(self, table: str) -> str | None:
        """The partition key expression of ``table`` in this database ("" when unpartitioned), None if absent.

        Runs without the warehouse lock (callers hold it)."""
        rows = self.client.query(
            "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {table:String}",
            parameters={"db": self.database, "table": table},
        ).result_rows
        return str(rows[0][0]) if rows else None

    def _active_parts(self, table: str) -> dict[str, int]:
        """Active parts of ``table`` by partition id (``all`` when unpartitioned). Callers hold the lock."""
        rows = self.client.query(
            "SELECT partition_id, count() FROM system.parts "
            "WHERE database = {db:String} AND table = {table:String} AND active GROUP BY partition_id",
            parameters={"db": self.database, "table": table},
        ).result_rows
        return {str(partition): int(count) for partition, count in rows}

    # ----------------------------------------------------------------------------------- writes

    def _insert_arrow(self, table: str, data: pa.Table, token: str) -> None:
        with self._lock, clickhouse_errors():
            self.client.insert_arrow(
                table, data, settings={"insert_deduplication_token": token, **_INSERT_SETTINGS}
            )

    def insert_enriched(self, batch: EnrichedBatch | EnrichedRows, *, scope: str) -> None:
        """Insert enriched rows; a retry of the same rows is deduplicated by the token."""
        if len(batch):
            self._insert_arrow(self._enriched, batch.to_arrow(), batch.dedup_token(scope))

    def insert_content(self, changes: Sequence[ContentChange]) -> None:
        if not changes:
            return
        ids = [c.content_id for c in changes]
        versions = [c.version for c in changes]
        infos = [c.info for c in changes]
        table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "slug": pa.array([i.slug if i else None for i in infos], pa.string()),
                "title": pa.array([i.title if i else None for i in infos], pa.string()),
                "content_type": pa.array([i.content_type if i else None for i in infos], pa.string()),
                "length_seconds": pa.array([i.length_seconds if i else None for i in infos], pa.int32()),
                "publish_ts": pa.array(
                    [i.publish_ts_ms if i else None for i in infos], pa.timestamp("ms", tz="UTC")
                ),
                "version": pa.array(versions, pa.uint64()),
                "is_deleted": pa.array([0 if i else 1 for i in infos], pa.uint8()),
                "source_topic": pa.array([c.record.topic for c in changes], pa.string()),
                "source_partition": pa.array([c.record.partition for c in changes], pa.int32()),
                "source_offset": pa.array([c.record.offset for c in changes], pa.int64()),
            }
        )
        token_ids = [hash_text(i) for i in ids]
        self._insert_arrow(self._content, table, dedup_token("content", token_ids, versions))

    def insert_dead_letters(self, dead: Sequence[DeadLetter], *, function: str) -> None:
        if not dead:
            return
        records = [d.record for d in dead]
        table = pa.table(
            {
                "source_topic": pa.array([r.topic for r in records], pa.string()),
                "source_partition": pa.array([r.partition for r in records], pa.int32()),
                "source_offset": pa.array([r.offset for r in records], pa.int64()),
                "kafka_key": pa.array([r.key for r in records], pa.string()),
                "raw_value": pa.array([r.value or b"" for r in records], pa.binary()),
                "kind": pa.array([d.kind for d in dead], pa.string()),
                "reason": pa.array([d.reason[:2000] for d in dead], pa.string()),
                "function": pa.array([function] * len(dead), pa.string()),
                "kafka_ts": pa.array([r.timestamp_ms for r in records], pa.timestamp("ms", tz="UTC")),
            }
        )
        positions = [hash_text(f"{r.topic}|{r.partition}") ^ r.offset for r in records]
        self._insert_arrow(self._dead, table, dedup_token(f"dead:{function}", positions, [0] * len(records)))

    # ----------------------------------------------------------------------------------- reads

    def unknown_events(
        self, *, since_ms: int, limit: int, content_ids: Sequence[str] | None = None
    ) -> list[UnknownEvent]:
        """Current (``FINAL``) rows still without content, newest content first."""
        where = "content_known = 0 AND event_ts >= fromUnixTimestamp64Milli({since:Int64})"
        parameters: dict[str, Any] = {"since": since_ms, "limit": limit}
        if content_ids is not None:
            if not content_ids:
                return []
            where += " AND content_id IN {ids:Array(UUID)}"
            parameters["ids"] = list(content_ids)
        sql = (
            "SELECT id, toString(content_id), if(isNull(user_id), NULL, toString(user_id)), event_type, "
            "toUnixTimestamp64Milli(event_ts), duration_ms, device, version, source_topic, source_partition, "
            f"source_offset FROM {self._enriched} FINAL WHERE {where} ORDER BY id LIMIT {{limit:UInt32}}"
        )
        with self._lock, clickhouse_errors():
            rows = self.client.query(sql, parameters=parameters).result_rows
        return [
            UnknownEvent(
                id=int(r[0]),
                content_id=r[1],
                user_id=r[2],
                event_type=r[3],
                event_ts_ms=int(r[4]),
                duration_ms=r[5],
                device=r[6],
                version=int(r[7]),
                source_topic=r[8],
                source_partition=int(r[9]),
                source_offset=int(r[10]),
            )
            for r in rows
        ]

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (``{db}`` is replaced by the quoted database)."""
        with self._lock, clickhouse_errors():
            result = self.client.query(sql.replace("{db}", self._db), parameters=parameters or {})
            return [tuple(row) for row in result.result_rows]

    def count_dead_letters(self) -> dict[str, int]:
        """Parked records by kind (what ``streamduck`` can report)."""
        rows = self.query(f"SELECT kind, count() FROM {self._dead} FINAL GROUP BY kind ORDER BY kind")
        return {str(kind): int(count) for kind, count in rows}

    # ----------------------------------------------------------------------------------- upkeep

    def optimize_recent(self, *, days: int, now_ms: int) -> list[str]:
        """Bounded upkeep: ``OPTIMIZE ... FINAL`` of recent data only; returns what was optimized.

        - ``engagement_enriched``: the ``days`` most recent daily partitions (``table:YYYYMMDD``);
        - the dead-letter table (append-only, partitioned by the day a record was parked): those of the same
          days that hold more than one active part, i.e. a redelivery may have left a duplicate there;
        - ``content`` (a dimension as large as the catalogue, never growing with time): the whole table, and
          only while it holds more than one active part.

        Older partitions are left to background merges; readers use ``FINAL``, so results never depend on
        whether a merge has run. ``days = 0`` turns upkeep off.
        """
        done: list[str] = []
        if days <= 0:
            return done
        partitions = [partition_id(now_ms - back * 86_400_000) for back in range(days)]
        with self._lock, clickhouse_errors():
            for partition in partitions:
                self._optimize_partition(self._enriched, partition)
                done.append(f"{ENRICHED_TABLE}:{partition}")
            dead_parts = self._active_parts(self.dead_letter_table)
            for partition in partitions:
                if dead_parts.get(partition, 0) > 1:
                    self._optimize_partition(self._dead, partition)
                    done.append(f"{self.dead_letter_table}:{partition}")
            if sum(self._active_parts(CONTENT_TABLE).values()) > 1:
                self.client.command(f"OPTIMIZE TABLE {self._content} FINAL")
                done.append(CONTENT_TABLE)
        return done

    def optimize_partition(self, partition: str) -> None:
        """``OPTIMIZE ... FINAL`` of one daily partition of the enriched table (id as :func:`partition_id`)."""
        with self._lock, clickhouse_errors():
            self._optimize_partition(self._enriched, partition)

    def _optimize_partition(self, table: str, partition: str) -> None:
        # The id is written into the statement text, so only an id the partition key can produce gets there.
        self.client.command(f"OPTIMIZE TABLE {table} PARTITION ID '{check_partition_id(partition)}' FINAL")


def partition_id(epoch_ms: int) -> str:
    """The daily partition id of an instant: ``toYYYYMMDD`` of it in UTC."""
    return check_partition_id(time.strftime("%Y%m%d", time.gmtime(epoch_ms / 1000)))


def check_partition_id(partition: object) -> str:
    """``partition`` if it is an id ``toYYYYMMDD`` produces (eight digits, a real date); else TerminalError."""
    if isinstance(partition, str) and _PARTITION_ID.fullmatch(partition):
        try:
            time.strptime(partition, "%Y%m%d")
        except ValueError:
            pass
        else:
            return partition
    raise TerminalError(
        f"clickhouse: {partition!r} is not a partition id of a daily partitioned table (YYYYMMDD)"
    )


def hash_text(text: str) -> int:
    """A stable signed 63-bit number for a string (token material; not Python's randomized ``hash``)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1
