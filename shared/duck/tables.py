"""Table layout of a mapping's schema: the target table and StreamDuck's control tables.

All names come from validated configuration and are quoted by :mod:`shared.sqlident`.
"""

from __future__ import annotations

import threading

import duckdb

from shared.duck.connection import fetch_one
from shared.errors import ConfigError
from shared.settings import BodyFormat, EventHubMapping
from shared.sqlident import qualified, quote_ident

WATERMARKS = "_streamduck_watermarks"
DEAD_LETTERS = "_streamduck_dead_letters"
MAINTENANCE = "_streamduck_maintenance"

BODY_TYPE = {BodyFormat.JSON: "JSON", BodyFormat.TEXT: "VARCHAR", BodyFormat.BINARY: "BLOB"}


def target(m: EventHubMapping) -> str:
    return qualified(m.database, m.schema_name, m.table)


def control(m: EventHubMapping, name: str) -> str:
    return qualified(m.database, m.schema_name, name)


def ddl(m: EventHubMapping) -> list[str]:
    """Idempotent DDL for the mapping's schema."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {quote_ident(m.database)}.{quote_ident(m.schema_name)}",
        f"""CREATE TABLE IF NOT EXISTS {target(m)} (
            body {BODY_TYPE[m.body_format]},
            event_hub VARCHAR NOT NULL,
            consumer_group VARCHAR NOT NULL,
            partition_id VARCHAR NOT NULL,
            sequence_number BIGINT NOT NULL,
            event_offset VARCHAR,
            enqueued_time TIMESTAMPTZ,
            partition_key VARCHAR,
            properties JSON,
            system_properties JSON,
            ingested_at TIMESTAMPTZ NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {control(m, WATERMARKS)} (
            namespace VARCHAR NOT NULL,
            event_hub VARCHAR NOT NULL,
            consumer_group VARCHAR NOT NULL,
            partition_id VARCHAR NOT NULL,
            target_table VARCHAR NOT NULL,
            sequence_number BIGINT NOT NULL,
            event_offset VARCHAR,
            enqueued_time TIMESTAMPTZ,
            epoch INTEGER NOT NULL DEFAULT 0,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (namespace, event_hub, consumer_group, partition_id, target_table)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {control(m, DEAD_LETTERS)} (
            target_table VARCHAR NOT NULL,
            namespace VARCHAR NOT NULL,
            event_hub VARCHAR NOT NULL,
            consumer_group VARCHAR NOT NULL,
            partition_id VARCHAR NOT NULL,
            sequence_number BIGINT,
            event_offset VARCHAR,
            enqueued_time TIMESTAMPTZ,
            partition_key VARCHAR,
            kind VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            body_bytes BIGINT NOT NULL,
            raw BLOB,
            properties JSON,
            parked_at TIMESTAMPTZ NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {control(m, MAINTENANCE)} (
            target_table VARCHAR NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ NOT NULL,
            rows_before BIGINT NOT NULL,
            rows_after BIGINT NOT NULL,
            rows_expired BIGINT NOT NULL,
            dead_letters_expired BIGINT NOT NULL,
            checkpointed BOOLEAN NOT NULL,
            note VARCHAR
        )""",
    ]


_ensured: set[tuple[str, str, str, str]] = set()
_ensure_lock = threading.Lock()


def ensure(cur: duckdb.DuckDBPyConnection, m: EventHubMapping, location: str) -> None:
    """Create the mapping's tables once per process and check the body column matches the format."""
    key = (location, m.database, m.schema_name, m.table)
    if key in _ensured:
        return
    with _ensure_lock:
        if key in _ensured:
            return
        for statement in ddl(m):
            cur.execute(statement)
        row = fetch_one(
            cur,
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? AND column_name = 'body'",
            [m.database, m.schema_name, m.table],
        )
        expected = BODY_TYPE[m.body_format]
        if row is None or str(row[0]).upper() != expected:
            found = "no body column" if row is None else f"body {row[0]}"
            raise ConfigError(
                {
                    f"MOTHERDUCK_{m.index}_FORMAT": (
                        f"table {m.target} exists with {found}, but format {m.body_format.value} needs body {expected}; "
                        "use another table or the matching format"
                    )
                }
            )
        _ensured.add(key)


def forget_ensured() -> None:
    """Forget which tables were created (after a database file was replaced, e.g. in tests)."""
    with _ensure_lock:
        _ensured.clear()


def quote_db(database: str) -> str:
    return quote_ident(database)
