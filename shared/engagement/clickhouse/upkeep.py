"""Upkeep and the reads of the timers, the dashboard and ``streamduck status``: bounded ``OPTIMIZE``, the rows
the re-enrichment sweep picks up, parked records by kind.

The functions here take the client and run without a lock; :class:`~shared.engagement.clickhouse.Warehouse`
calls them under its lock and translates their errors.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.engagement.clickhouse.schema import CONTENT_TABLE, ENRICHED_TABLE, Tables
from shared.engagement.enriched import engagement_version_of
from shared.errors import TerminalError

# Partition ids of the daily partitioned tables (``PARTITION BY toYYYYMMDD(...)``): eight digits, a calendar date.
_PARTITION_ID = re.compile(r"[0-9]{8}")


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


def active_parts(client: Any, database: str, table: str) -> dict[str, int]:
    """Active parts of ``table`` in ``database`` by partition id (``all`` when unpartitioned)."""
    rows = client.query(
        "SELECT partition_id, count() FROM system.parts "
        "WHERE database = {db:String} AND table = {table:String} AND active GROUP BY partition_id",
        parameters={"db": database, "table": table},
    ).result_rows
    return {str(partition): int(count) for partition, count in rows}


def optimize_partition(client: Any, table: str, partition: str) -> None:
    """``OPTIMIZE ... FINAL`` of one daily partition of ``table`` (quoted, qualified; id as :func:`partition_id`)."""
    # The id is written into the statement text, so only an id the partition key can produce gets there.
    client.command(f"OPTIMIZE TABLE {table} PARTITION ID '{check_partition_id(partition)}' FINAL")


def optimize_recent(client: Any, tables: Tables, *, days: int, now_ms: int) -> list[str]:
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
    for partition in partitions:
        optimize_partition(client, tables.enriched, partition)
        done.append(f"{ENRICHED_TABLE}:{partition}")
    dead_parts = active_parts(client, tables.database, tables.dead_letter_table)
    for partition in partitions:
        if dead_parts.get(partition, 0) > 1:
            optimize_partition(client, tables.dead, partition)
            done.append(f"{tables.dead_letter_table}:{partition}")
    if sum(active_parts(client, tables.database, CONTENT_TABLE).values()) > 1:
        client.command(f"OPTIMIZE TABLE {tables.content} FINAL")
        done.append(CONTENT_TABLE)
    return done


def count_dead_letters(client: Any, tables: Tables) -> dict[str, int]:
    """Parked records by kind (what ``streamduck`` can report), a redelivered record counted once."""
    rows = client.query(
        f"SELECT kind, count() FROM {tables.dead} FINAL GROUP BY kind ORDER BY kind"
    ).result_rows
    return {str(kind): int(count) for kind, count in rows}


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
        return engagement_version_of(self.version)


def unknown_events(
    client: Any, tables: Tables, *, since_ms: int, limit: int, content_ids: Sequence[str] | None = None
) -> list[UnknownEvent]:
    """Current (``FINAL``) rows still without content, by id; only those of ``content_ids`` when given."""
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
        f"source_offset FROM {tables.enriched} FINAL WHERE {where} ORDER BY id LIMIT {{limit:UInt32}}"
    )
    rows = client.query(sql, parameters=parameters).result_rows
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
