"""Benchmark: Event Hubs batches through the real function entry point into a local DuckDB file.

    python -m bench.eventhubs_ingest [--events 200000] [--batches 100,1000,10000] [--baseline-events N]

Prints one JSON document: events/s per batch size through ``eventhub_to_motherduck_1`` (decode + Arrow +
one transaction with the watermark), the same including the CHECKPOINT that then folds the commits' log
into the file (the compaction timer's work on a local file; MotherDuck does it on its side), and, for the
same events, the earlier system's method (one multi-row ``INSERT ... VALUES (?, ...), (...)`` per batch)
with the ratio. Building the host's
``func.EventHubEvent`` objects is not timed (the host does that before the function runs).

Each run also times, for the same batches, the two parts no exactly-once function can skip, each on its own:
decoding the batches, and a bare ``BEGIN; INSERT ... SELECT; COMMIT`` of the decoded columns (no watermark).
Their sum is the floor this engine and machine set; the function adds the watermark and its checks to it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb


def make_bodies(n: int, seed: int = 7) -> list[bytes]:
    """~300-byte JSON telemetry events."""
    rnd = random.Random(seed)
    devices = ["ios", "android", "web-chrome", "web-safari", "roku"]
    out = []
    for i in range(n):
        doc = {
            "event_id": f"{rnd.getrandbits(128):032x}",
            "device": rnd.choice(devices),
            "user_id": f"{rnd.getrandbits(64):016x}",
            "ts": f"2026-11-22T10:{i % 60:02d}:{rnd.randrange(60):02d}.{rnd.randrange(1000):03d}Z",
            "temperature": round(rnd.uniform(-20, 45), 3),
            "humidity": round(rnd.uniform(0, 100), 2),
            "firmware": f"{rnd.randrange(10)}.{rnd.randrange(20)}.{rnd.randrange(100)}",
            "tags": ["bench", f"site-{rnd.randrange(50)}", f"rack-{rnd.randrange(200)}"],
            "status": rnd.choice(["ok", "warn", "degraded"]),
            "payload": "x" * rnd.randrange(40, 60),
        }
        out.append(json.dumps(doc, separators=(",", ":")).encode())
    return out


def _run_function(events: int, batch: int, bodies: list[bytes], data_dir: Path) -> dict[str, Any]:
    import function_app
    from shared.appindex import user_function

    fn = user_function(function_app.app, "eventhub_to_motherduck_1")
    batches = _batches(bodies, 0, events, batch)
    fn(batches[0][:1])  # warm-up: tables, connection
    # The host builds each batch just before the call; here all of them exist up front. Keep the garbage
    # collector from re-scanning those prebuilt inputs on every collection (it would bill the function for
    # a heap the host never has).
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for b in batches:
        fn(b)
    elapsed = time.perf_counter() - started
    from shared.eventhubs import default_ingestor

    # The log the commits wrote is folded into the file by a CHECKPOINT (the compaction timer's, or DuckDB's
    # own at 256 MB of log): time it too, so the figure with it counts every byte the events cost locally.
    cur = default_ingestor(function_app.settings).connections.cursor("bench")
    checkpoint_started = time.perf_counter()
    cur.execute("CHECKPOINT bench")
    checkpoint = time.perf_counter() - checkpoint_started
    rows = cur.execute("SELECT count(*) FROM bench.raw.events").fetchall()[0][0]
    floor = _floor(cur, batches, function_app.settings)
    cur.close()
    calls = _calls_per_batch(fn, _batches(bodies, events, events + 5 * batch, batch))
    per_batch = 1000 / len(batches)
    return {
        "batch": batch,
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "checkpoint_seconds": round(checkpoint, 3),
        "events_per_s_including_checkpoint": round(events / (elapsed + checkpoint)),
        "rows_in_table": rows,
        "function_ms_per_batch": round(elapsed * per_batch, 2),
        "decode_alone_ms_per_batch": round(floor["decode"] * per_batch, 2),
        "insert_commit_alone_ms_per_batch": round(floor["insert"] * per_batch, 2),
        "events_per_s_decode_and_insert_alone": round(events / (floor["decode"] + floor["insert"])),
        # Per batch, as DuckDB logs them, and the calls into the engine (with MotherDuck, network round
        # trips); the floor's bare transaction is 3 statements in 3 calls.
        "statements_per_batch": calls["statements"],
        "round_trips_per_batch": calls["round_trips"],
        "floor_statements_per_batch": 3,
    }


def _batches(bodies: list[bytes], first: int, end: int, batch: int) -> list[Any]:
    """``func.EventHubEvent`` batches of events ``first`` to ``end`` (sequence numbers), as the host builds them."""
    from shared.eventhubs.hostshape import PartitionInfo, SourceEvent, to_function_batch

    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    partition = PartitionInfo("0", "bench", "$Default", "bench.servicebus.windows.net")
    batches = []
    for start in range(first, end, batch):
        chunk = [
            SourceEvent(
                body=bodies[i % len(bodies)],
                sequence_number=i,
                offset=str(i * 512),
                enqueued_time=t0 + timedelta(milliseconds=i),
                partition_key=None,
                properties={"source": "bench"},
            )
            for i in range(start, min(start + batch, end))
        ]
        batches.append(to_function_batch(chunk, partition))
    return batches


class _CountingCursor:
    """A DuckDB cursor that counts the calls that reach the engine (each a round trip with MotherDuck)."""

    calls = 0

    def __init__(self, inner: duckdb.DuckDBPyConnection) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in {"execute", "executemany", "sql", "query"}:

            def counted(*args: Any, **kwargs: Any) -> Any:
                _CountingCursor.calls += 1
                result = attr(*args, **kwargs)
                return self if result is self._inner else result

            return counted
        return attr


def _calls_per_batch(fn: Any, batches: list[Any]) -> dict[str, float]:
    """Statements (DuckDB's query log) and engine calls per batch for ``batches``, after the timed run."""
    from shared.duck.connection import DuckConnections

    original = DuckConnections.cursor

    def cursor(self: DuckConnections, *args: Any, **kwargs: Any) -> Any:
        return _CountingCursor(original(self, *args, **kwargs))

    DuckConnections.cursor = cursor  # type: ignore[method-assign]
    try:
        probe = cursor.__get__(_connections())("bench")
        probe.execute(
            "SET GLOBAL python_scan_all_frames = true"
        )  # the sink names its Arrow table in its frame
        probe.execute("CALL enable_logging('QueryLog')")
        probe.execute("CALL truncate_duckdb_logs()")
        _CountingCursor.calls = 0
        for b in batches:
            fn(b)
        calls = _CountingCursor.calls
        statements = probe.execute("SELECT count(*) FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()[0][
            0
        ]
        probe.execute("CALL disable_logging()")
        probe.execute("SET GLOBAL python_scan_all_frames = false")
        probe.close()
    finally:
        DuckConnections.cursor = original  # type: ignore[method-assign]
    return {"statements": round(statements / len(batches), 1), "round_trips": round(calls / len(batches), 1)}


def _connections() -> Any:
    import function_app
    from shared.eventhubs import default_ingestor

    return default_ingestor(function_app.settings).connections


def _floor(cur: duckdb.DuckDBPyConnection, batches: list[Any], settings: Any) -> dict[str, float]:
    """What the function's two unavoidable parts cost on their own, for the same batches: decoding them, and a
    bare ``BEGIN; INSERT ... SELECT; COMMIT`` of the decoded columns into a copy of the table (no watermark,
    no dead-letter check): the floor any exactly-once function over this engine starts from."""
    from shared.eventhubs.decode import decode_batch
    from shared.eventhubs.sink import rows_insert_sql

    mapping = settings.mappings[0]
    cur.execute("CREATE TABLE bench.raw.floor AS SELECT * FROM bench.raw.events LIMIT 0")
    now = datetime.now(UTC)
    decode = insert = 0.0
    gc.collect()
    for b in batches:
        started = time.perf_counter()
        _streamduck_batch = decode_batch(
            b, mapping, namespace="bench", max_event_bytes=settings.max_event_bytes
        ).table
        decoded = time.perf_counter()
        cur.execute("BEGIN TRANSACTION")
        cur.execute(  # the sink's statement, which reads the table above by name
            rows_insert_sql("bench.raw.floor", mapping.body_format), ["bench", "$Default", "0", now]
        ).fetchall()
        cur.execute("COMMIT")
        decode += decoded - started
        insert += time.perf_counter() - decoded
    return {"decode": decode, "insert": insert}


def _run_values_baseline(events: int, batch: int, bodies: list[bytes], path: Path) -> dict[str, Any]:
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE t (event_body VARCHAR, partition_id VARCHAR, sequence_number BIGINT, enqueued_time TIMESTAMP, "
        "properties JSON, system_properties JSON, ingestion_timestamp TIMESTAMP)"
    )
    t0 = datetime(2026, 11, 22)  # noqa: DTZ001 - the earlier system's naive TIMESTAMP columns
    rows = [
        (
            bodies[i % len(bodies)].decode(),
            "0",
            i,
            t0 + timedelta(milliseconds=i),
            '{"source":"bench"}',
            "{}",
            t0,
        )
        for i in range(events)
    ]
    started = time.perf_counter()
    for start in range(0, events, batch):
        chunk = rows[start : start + batch]
        placeholders = ",".join(["(?,?,?,?,?,?,?)"] * len(chunk))
        con.execute(f"INSERT INTO t VALUES {placeholders}", [v for r in chunk for v in r])
    elapsed = time.perf_counter() - started
    con.close()
    return {
        "batch": batch,
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batches", default="100,1000,10000")
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=None,
        help="events for the multi-row VALUES baseline (default: the same events as the function run)",
    )
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.batches.split(",")]
    bodies = make_bodies(5_000)
    results: dict[str, Any] = {
        "benchmark": "eventhubs_to_duckdb",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "avg_event_bytes": round(sum(map(len, bodies)) / len(bodies)),
        "runs": [],
    }
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="streamduck-bench-") as tmp:
            data_dir = Path(tmp)
            run = _subprocess_run(args.events, size, data_dir)
            base = _run_values_baseline(
                args.events if args.baseline_events is None else min(args.baseline_events, args.events),
                size,
                bodies,
                data_dir / "base.duckdb",
            )
            run["baseline_multirow_values_events_per_s"] = base["events_per_s"]
            run["speedup_vs_multirow_values"] = round(run["events_per_s"] / base["events_per_s"], 1)
            run["speedup_including_checkpoint"] = round(
                run["events_per_s_including_checkpoint"] / base["events_per_s"], 1
            )
            results["runs"].append(run)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _subprocess_run(events: int, batch: int, data_dir: Path) -> dict[str, Any]:
    """Each batch size in a fresh process: function_app reads its settings at import."""
    import subprocess

    env = {
        **os.environ,
        "EVENTHUBNAME_1": "bench",
        "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
        "MOTHERDUCK_1_DATABASE": "bench",
        "MOTHERDUCK_1_SCHEMA": "raw",
        "MOTHERDUCK_1_TABLE": "events",
        "STREAMDUCK_DATA_DIR": str(data_dir),
    }
    env.pop("MOTHERDUCK_TOKEN", None)
    env.pop("motherduck_token", None)
    code = (
        "import json,sys; from pathlib import Path; from bench.eventhubs_ingest import _run_function, make_bodies; "
        f"print(json.dumps(_run_function({events}, {batch}, make_bodies(5000), Path(sys.argv[1]))))"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
