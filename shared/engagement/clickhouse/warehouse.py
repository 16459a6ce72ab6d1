"""The engagement warehouse: one ClickHouse database, behind the one object the pipeline uses.

:class:`Warehouse` holds the client and a lock (one statement at a time per warehouse), applies the schema once,
and runs each call of :mod:`.inserts`, :mod:`.upkeep` and :mod:`.schema` inside :func:`.client.clickhouse_errors`,
so a caller sees only StreamDuck errors: ``TransientError`` to retry, ``TerminalError`` to park.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from shared.engagement.clickhouse import inserts, schema, upkeep
from shared.engagement.clickhouse.client import clickhouse_errors, client_for
from shared.engagement.clickhouse.upkeep import UnknownEvent
from shared.engagement.enrich_columns import EnrichedRows
from shared.engagement.enrich_rows import EnrichedBatch
from shared.engagement.records import ContentChange, DeadLetter
from shared.settings import Settings


class Warehouse:
    """The engagement tables in one ClickHouse database."""

    def __init__(
        self, client: Any, *, database: str, dead_letter_table: str = "engagement_dead_letters"
    ) -> None:
        self.client = client
        self.database = database
        self.dead_letter_table = dead_letter_table
        self.tables = schema.Tables(database, dead_letter_table)
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
            return schema.SCHEMA_VERSION
        with self._lock, clickhouse_errors():
            schema.migrate(self.client, self.tables)
            self._schema_ready = True
        return schema.SCHEMA_VERSION

    # ----------------------------------------------------------------------------------- writes

    def _insert_arrow(self, table: str, data: pa.Table, token: str) -> None:
        with self._lock, clickhouse_errors():
            inserts.insert_arrow(self.client, table, data, token)

    def insert_enriched(self, batch: EnrichedBatch | EnrichedRows, *, scope: str) -> None:
        """Insert enriched rows; a retry of the same rows is deduplicated by the token."""
        if len(batch):
            self._insert_arrow(self.tables.enriched, batch.to_arrow(), batch.dedup_token(scope))

    def insert_content(self, changes: Sequence[ContentChange]) -> None:
        """Insert content versions and deletes into the ``content`` dimension."""
        if changes:
            self._insert_arrow(self.tables.content, *inserts.content_columns(changes))

    def insert_dead_letters(self, dead: Sequence[DeadLetter], *, function: str) -> None:
        """Park ``dead`` with their reasons; a redelivery of the same records is deduplicated."""
        if dead:
            self._insert_arrow(self.tables.dead, *inserts.dead_letter_columns(dead, function=function))

    # ----------------------------------------------------------------------------------- reads

    def unknown_events(
        self, *, since_ms: int, limit: int, content_ids: Sequence[str] | None = None
    ) -> list[UnknownEvent]:
        """Current (``FINAL``) rows still without content (see :func:`.upkeep.unknown_events`)."""
        with self._lock, clickhouse_errors():
            return upkeep.unknown_events(
                self.client, self.tables, since_ms=since_ms, limit=limit, content_ids=content_ids
            )

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (``{db}`` is replaced by the quoted database)."""
        with self._lock, clickhouse_errors():
            result = self.client.query(sql.replace("{db}", self.tables.db), parameters=parameters or {})
            return [tuple(row) for row in result.result_rows]

    def count_dead_letters(self) -> dict[str, int]:
        """Parked records by kind (what ``streamduck`` can report)."""
        with self._lock, clickhouse_errors():
            return upkeep.count_dead_letters(self.client, self.tables)

    # ----------------------------------------------------------------------------------- upkeep

    def optimize_recent(self, *, days: int, now_ms: int) -> list[str]:
        """Bounded ``OPTIMIZE ... FINAL`` of recent data; returns what was optimized (see
        :func:`.upkeep.optimize_recent`). ``days = 0`` turns upkeep off."""
        if days <= 0:
            return []
        with self._lock, clickhouse_errors():
            return upkeep.optimize_recent(self.client, self.tables, days=days, now_ms=now_ms)

    def optimize_partition(self, partition: str) -> None:
        """``OPTIMIZE ... FINAL`` of one daily partition of the enriched table (id as :func:`.upkeep.partition_id`)."""
        with self._lock, clickhouse_errors():
            upkeep.optimize_partition(self.client, self.tables.enriched, partition)
