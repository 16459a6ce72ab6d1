"""The Event Hubs path on embedded defaults: generated traffic through the real functions into local DuckDB.

For each mapping (or one demo mapping when none is configured) the demo generates JSON events on four
partitions, a few of them bad (invalid JSON, not UTF-8, oversized), and hands them to the registered
``eventhub_to_motherduck_N`` function in host-shaped batches, the way the Functions host would. It also
behaves like a host that crashed: some batches are delivered twice and one partition is replayed in a
different split. The summary shows what landed: rows (each event once), watermarks and dead letters, read
through connections of its own (DuckDB shares one database instance per file within a process).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import duckdb

from shared.demo.app import registered_functions
from shared.demo.stopping import check
from shared.devhost.functions import HostedFunction
from shared.duck import tables
from shared.duck.connection import DuckConnections
from shared.eventhubs.hostshape import PartitionInfo, SourceEvent, to_function_batch
from shared.settings import EventHubMapping, Settings, load_settings

DEMO_MAPPING = {
    "EVENTHUBNAME_1": "telemetry",
    "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
    "MOTHERDUCK_1_DATABASE": "streamduck_demo",
    "MOTHERDUCK_1_SCHEMA": "raw",
    "MOTHERDUCK_1_TABLE": "telemetry",
    "MOTHERDUCK_1_FORMAT": "json",
}
PARTITIONS = ("0", "1", "2", "3")


def _events(
    rng: random.Random, count: int, start: datetime, max_bytes: int, first_seq: dict[str, int]
) -> dict[str, list[SourceEvent]]:
    """Events continuing each partition after ``first_seq`` (an earlier demo run's watermark + 1)."""
    devices = ("ios", "android", "web-chrome", "web-safari", "roku")
    per_partition: dict[str, list[SourceEvent]] = {p: [] for p in PARTITIONS}
    for i in range(count):
        partition = PARTITIONS[i % len(PARTITIONS)]
        seq = first_seq.get(partition, 0) + len(per_partition[partition])
        roll = rng.random()
        if roll < 0.004:
            body = b'{"device": "ios", "temperature": '  # truncated JSON
        elif roll < 0.007:
            body = b"\xff\xfe binary garbage \x00\x01"
        elif i in (count // 3, 2 * count // 3):
            body = b'{"blob": "' + b"x" * (max_bytes + 1) + b'"}'
        else:
            body = json.dumps(
                {
                    "device_id": f"dev-{rng.randrange(500):03d}",
                    "device": rng.choice(devices),
                    "temperature": round(rng.uniform(-10, 40), 2),
                    "humidity": round(rng.uniform(10, 90), 1),
                    "seq": i,
                },
                separators=(",", ":"),
            ).encode()
        per_partition[partition].append(
            SourceEvent(
                body=body,
                sequence_number=seq,
                offset=str(seq * 256),
                enqueued_time=start + timedelta(milliseconds=i),
                partition_key=f"dev-{i % 97}",
                properties={"source": "streamduck-demo"},
            )
        )
    return per_partition


def _deliver(
    fn: Callable[..., Any],
    m: EventHubMapping,
    settings: Settings,
    per_partition: dict[str, list[SourceEvent]],
) -> int:
    """Call the function like the host: batches of ``MOTHERDUCK_N_BATCH``, with crash replays. Returns deliveries."""
    namespace = settings.eventhub_namespace or "demo.servicebus.windows.net"
    deliveries = 0
    for partition, events in per_partition.items():
        info = PartitionInfo(partition, m.event_hub, m.consumer_group, namespace)
        for n, start in enumerate(range(0, len(events), m.batch)):
            check()
            chunk = events[start : start + m.batch]
            fn(to_function_batch(chunk, info))
            deliveries += 1
            if n % 3 == 1:  # the instance "crashed" before checkpointing: the host replays the batch
                fn(to_function_batch(chunk, info))
                deliveries += 1
        if partition == PARTITIONS[0] and events:  # a rebalance replays the partition in another split
            half = max(1, len(events) // 2)
            fn(to_function_batch(events[half // 2 : half + half // 2], info))
            deliveries += 1
    return deliveries


@contextmanager
def _cursor(connections: DuckConnections, m: EventHubMapping) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on the mapping's database (its tables created if needed, as the function creates them)."""
    cur = connections.cursor(m.database, m.token)
    try:
        tables.ensure(cur, m, connections.location(m.database, m.token))
        yield cur
    finally:
        cur.close()


def _first_sequence(connections: DuckConnections, m: EventHubMapping) -> dict[str, int]:
    """Where each partition continues: after what an earlier run left (sequence numbers keep growing)."""
    with _cursor(connections, m) as cur:
        marks = cur.execute(
            f"SELECT partition_id, max(sequence_number) FROM {tables.control(m, tables.WATERMARKS)} "
            "WHERE target_table = ? GROUP BY partition_id",
            [m.table],
        ).fetchall()
    return {str(p): int(s) + 1 for p, s in marks}


def _landed(
    connections: DuckConnections, m: EventHubMapping, events: int, first_seq: dict[str, int]
) -> dict[str, Any]:
    this_run = "(SELECT unnest(?::VARCHAR[]) AS p, unnest(?::BIGINT[]) AS s) AS run"
    bounds = [list(PARTITIONS), [first_seq.get(p, 0) for p in PARTITIONS]]
    with _cursor(connections, m) as cur:
        target = tables.target(m)
        count, distinct = cur.execute(
            f"SELECT count(*), count(DISTINCT (partition_id, sequence_number)) FROM {target} t "
            f"JOIN {this_run} ON t.partition_id = run.p AND t.sequence_number >= run.s",
            bounds,
        ).fetchall()[0]
        letters = cur.execute(
            f"SELECT kind, count(*) FROM {tables.control(m, tables.DEAD_LETTERS)} d "
            f"JOIN {this_run} ON d.partition_id = run.p AND d.sequence_number >= run.s "
            "WHERE target_table = ? GROUP BY kind ORDER BY kind",
            [*bounds, m.table],
        ).fetchall()
        marks = cur.execute(
            f"SELECT partition_id, sequence_number, epoch FROM {tables.control(m, tables.WATERMARKS)} "
            "WHERE target_table = ? ORDER BY partition_id",
            [m.table],
        ).fetchall()
    dead = {str(kind): int(n) for kind, n in letters}
    return {
        "target": m.target,
        "location": connections.location(m.database, m.token),
        "events_generated": events,
        "rows": int(count),
        "distinct_rows": int(distinct),
        "dead_letters": dead,
        "accounted_for": int(count) + sum(dead.values()) == events,
        "watermarks": {str(p): {"sequence_number": int(s), "epoch": int(e)} for p, s, e in marks},
    }


def run_demo(settings: Settings, *, events: int = 20_000, seed: int = 7) -> dict[str, Any]:
    """Run ``events`` generated events per mapping through the Event Hub functions; return what landed."""
    if not settings.mappings:
        os.environ.update(DEMO_MAPPING)
        settings = load_settings()
    functions = registered_functions(eventhub_functions=[m.function_name for m in settings.mappings])
    connections = DuckConnections(data_dir=settings.data_dir, default_token=settings.motherduck_token)
    try:
        return _run(settings, functions, connections, events=events, seed=seed)
    finally:
        connections.close()


def _run(
    settings: Settings,
    functions: dict[str, HostedFunction],
    connections: DuckConnections,
    *,
    events: int,
    seed: int,
) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible demo traffic, not security
    start = datetime.now(UTC).replace(microsecond=0)
    results: list[dict[str, Any]] = []
    for m in settings.mappings:
        first_seq = _first_sequence(connections, m)
        per_partition = _events(rng, events, start, settings.max_event_bytes, first_seq)
        fn = functions[m.function_name].user_function
        t0 = time.perf_counter()
        deliveries = _deliver(fn, m, settings, per_partition)
        seconds = time.perf_counter() - t0
        landed = _landed(connections, m, events, first_seq)
        landed |= {"deliveries": deliveries, "seconds": round(seconds, 3)}
        results.append(landed)
    if settings.mappings:  # the compaction timer, once, as the host would fire it
        functions["compact_motherduck"].user_function(func.TimerRequest(past_due=False))
        for m, landed in zip(settings.mappings, results, strict=True):
            landed["last_compaction"] = _last_compaction(connections, m)
    return {"mappings": results}


def _last_compaction(connections: DuckConnections, m: EventHubMapping) -> dict[str, Any] | None:
    with _cursor(connections, m) as cur:
        rows = cur.execute(
            f"SELECT rows_before, rows_after, rows_expired, checkpointed FROM {tables.control(m, tables.MAINTENANCE)} "
            "WHERE target_table = ? ORDER BY finished_at DESC LIMIT 1",
            [m.table],
        ).fetchall()
    if not rows:
        return None
    before, after, expired, checkpointed = rows[0]
    return {"rows_before": before, "rows_after": after, "rows_expired": expired, "checkpointed": checkpointed}
