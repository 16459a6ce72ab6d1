"""Builders shared by the Event Hubs tests: settings, host-shaped batches, table readers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import duckdb

from shared.eventhubs.hostshape import PartitionInfo, SourceEvent, to_function_batch
from shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def mapping_env(
    n: int, data_dir: Path, *, fmt: str = "json", table: str | None = None, **extra: str
) -> dict[str, str]:
    return {
        f"EVENTHUBNAME_{n}": f"hub{n}",
        f"EVENTHUBNAME_{n}_CONSUMER_GROUP": "$Default",
        f"MOTHERDUCK_{n}_DATABASE": "lake",
        f"MOTHERDUCK_{n}_SCHEMA": "raw",
        f"MOTHERDUCK_{n}_TABLE": table or f"events_{n}",
        f"MOTHERDUCK_{n}_FORMAT": fmt,
        "STREAMDUCK_DATA_DIR": str(data_dir),
        "EVENTHUB_NAMESPACE": "test.servicebus.windows.net",
        **extra,
    }


def settings_for(env: Mapping[str, str]) -> Settings:
    return load_settings(env)


def source_events(start: int, stop: int, *, body: Any = None, t0: datetime = T0) -> list[SourceEvent]:
    return [
        SourceEvent(
            body=body(i) if callable(body) else json.dumps({"n": i, "v": f"value-{i}"}).encode(),
            sequence_number=i,
            offset=str(i * 64),
            enqueued_time=t0 + timedelta(milliseconds=i),
            partition_key=f"k{i % 3}",
            properties={"app": "test", "i": i},
        )
        for i in range(start, stop)
    ]


def batch(events: Iterable[SourceEvent], partition: str = "0", hub: str = "hub1") -> list[func.EventHubEvent]:
    return to_function_batch(
        list(events), PartitionInfo(partition, hub, "$Default", "test.servicebus.windows.net")
    )


def rows(data_dir: Path, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
    """Read from the local database file in a separate, read-only connection (after the writer closed)."""
    con = duckdb.connect(str(data_dir / "lake.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def index_app(env: Mapping[str, str], code: str) -> Any:
    """Import function_app in a fresh interpreter with ``env`` (settings are read at indexing) and run ``code``,
    which must print one JSON document as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"indexing failed (exit {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
