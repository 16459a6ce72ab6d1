"""ClickHouse upkeep: the partition id written into ``OPTIMIZE`` is validated before it reaches SQL (real chDB)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.engagement.clickhouse import Warehouse, check_partition_id, partition_id
from shared.errors import TerminalError

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
