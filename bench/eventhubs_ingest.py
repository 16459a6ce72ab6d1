"""Benchmark: Event Hubs batches through the real function entry point into a local DuckDB file.

    python -m bench.eventhubs_ingest [--events 200000] [--batches 100,1000,10000] [--baseline-events N]

Prints one JSON document: events/s per batch size through ``eventhub_to_motherduck_1`` (decode + Arrow +
one transaction with the watermark), the same including the CHECKPOINT that then folds the commits' log
into the file (the compaction timer's work on a local file; MotherDuck does it on its side), and, for the
same events, the earlier system's method (one multi-row ``INSERT ... VALUES (?, ...), (...)`` per batch)
with the ratio. Building the host's
``func.EventHubEvent`` objects is not timed (the host does that before the function runs).

Each run also times, for the same events, the two parts no exactly-once function can skip: decoding the
batches, and a bare ``BEGIN; INSERT ... SELECT; COMMIT`` of the decoded columns (no watermark) into a table made
by the same DDL, in a database file of its own. Their sum is the floor this engine and machine set; the function
adds the watermark and its checks to it. The function and the floor run interleaved, batch by batch (in
alternating order), so both are timed on the same machine at the same moment; the ratio is given from the totals
and from the medians per batch, with the medians of each part of both (decoding, each call into the engine, and
the function's own Python).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

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
    from shared.eventhubs import default_ingestor

    fn = user_function(function_app.app, "eventhub_to_motherduck_1")
    settings = function_app.settings
    # The same events twice, as separate objects: one copy for the function, one for the floor, so neither
    # reads what the other's decoding left in the host's objects.
    batches = _batches(bodies, 0, events, batch)
    floor_batches = _batches(bodies, 0, events, batch)
    # Warm-up of both on a full batch of another partition (tables, connections, the engine's first scans of
    # a batch this size); the counts below are of the timed partition.
    warm_up = _batches(bodies, 0, batch, batch, partition_id="1")[0]
    fn(warm_up)
    cur = default_ingestor(settings).connections.cursor("bench")
    floor = _Floor(data_dir, settings)
    floor.run(_batches(bodies, 0, batch, batch, partition_id="1")[0])
    floor.reset()
    # The host builds each batch just before the call; here all of them exist up front. Keep the garbage
    # collector from re-scanning those prebuilt inputs on every collection (it would bill the function for
    # a heap the host never has).
    gc.collect()
    gc.freeze()
    # Interleaved: batch by batch, the function then the floor, then the other way round for the next batch,
    # so both see the same machine (other work on it, caches, the log files' growth) at the same moment.
    function_s: list[float] = []
    for i, (b, fb) in enumerate(zip(batches, floor_batches, strict=True)):
        if i % 2:
            floor.run(fb)
        started = time.perf_counter()
        fn(b)
        function_s.append(time.perf_counter() - started)
        if not i % 2:
            floor.run(fb)
    elapsed = sum(function_s)
    floor_s = [sum(parts) for parts in zip(*floor.parts.values(), strict=True)]

    # The log the commits wrote is folded into the file by a CHECKPOINT (the compaction timer's, or DuckDB's
    # own at 256 MB of log): time it too, so the figure with it counts every byte the events cost locally.
    # The floor's table is in a database file of its own, so this folds the function's log only.
    checkpoint_started = time.perf_counter()
    cur.execute("CHECKPOINT bench")
    checkpoint = time.perf_counter() - checkpoint_started
    rows = cur.execute("SELECT count(*) FROM bench.raw.events WHERE partition_id = ?", ["0"]).fetchall()[0][0]
    cur.close()
    floor_rows = floor.cur.execute(
        f"SELECT count(*) FROM {floor.table} WHERE partition_id = ?", ["0"]
    ).fetchall()

    floor.close()
    timed_end = events + min(len(batches), 20) * batch
    calls = _calls_per_batch(
        fn,
        _batches(bodies, events, timed_end, batch),
        _batches(bodies, timed_end, timed_end + 5 * batch, batch),
    )
    per_batch = 1000 / len(batches)
    floor_total = sum(floor_s)
    return {
        "batch": batch,
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "checkpoint_seconds": round(checkpoint, 3),
        "events_per_s_including_checkpoint": round(events / (elapsed + checkpoint)),
        "rows_in_table": rows,
        "rows_in_floor_table": floor_rows[0][0],
        "function_ms_per_batch": round(elapsed * per_batch, 2),
        "decode_alone_ms_per_batch": round(sum(floor.parts["decode"]) * per_batch, 2),
        "insert_commit_alone_ms_per_batch": round((floor_total - sum(floor.parts["decode"])) * per_batch, 2),
        "events_per_s_decode_and_insert_alone": round(events / floor_total),
        # Floor time over function time: the share of the floor's rate the function reaches. From the totals,
        # and from the medians per batch (less moved by a pause of the machine in one of them).
        "function_to_floor": round(floor_total / elapsed, 3),
        "function_median_ms": _ms(statistics.median(function_s)),
        "floor_median_ms": _ms(statistics.median(floor_s)),
        "function_to_floor_median": round(statistics.median(floor_s) / statistics.median(function_s), 3),
        # Medians per batch of each part of the floor (timed around each call), and of the function's,
        # from a separate pass of further batches through a cursor that times each call into the engine:
        # "ours" is the function's time outside decoding and outside the engine.
        "floor_parts_median_ms": {k: _ms(statistics.median(v)) for k, v in floor.parts.items()},
        "function_parts_median_ms": calls["parts"],
        # Per batch: the statements as DuckDB logs them (with MotherDuck, each is a network round trip), and
        # the calls into the engine (the client runs a call's statements one by one); the floor's bare
        # transaction is 3 statements in 3 calls.
        "statements_per_batch": calls["statements"],
        "round_trips_per_batch": calls["round_trips"],
        "floor_statements_per_batch": 3,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class _Floor:
    """What the function's two unavoidable parts cost on their own, for the same batches: decoding them, and a
    bare ``BEGIN; INSERT ... SELECT; COMMIT`` of the decoded columns (no watermark, no dead-letter check) into a
    table made by the same DDL as the function's (constraints included), in a database file of its own in the
    same folder and engine: the floor any exactly-once function over this engine starts from."""

    def __init__(self, data_dir: Path, settings: Any) -> None:
        from shared.duck import tables
        from shared.duck.connection import DuckConnections

        self.mapping = settings.mappings[0]
        self.settings = settings
        # The same connection settings as the function's (the project's own), on a file of its own.
        self.connections = DuckConnections(data_dir=data_dir / "floor", default_token=None)
        self.cur = self.connections.cursor(self.mapping.database)
        for statement in tables.ddl(self.mapping)[:2]:  # the schema and the target table
            self.cur.execute(statement)
        self.table = tables.target(self.mapping)
        self.now = datetime.now(UTC)
        self.parts: dict[str, list[float]] = {}
        self.reset()

    def reset(self) -> None:
        self.parts = {"decode": [], "begin": [], "insert": [], "commit": []}

    def close(self) -> None:
        self.cur.close()
        self.connections.close()

    def run(self, batch: Any) -> None:
        from shared.eventhubs.decode import decode_batch
        from shared.eventhubs.sink import rows_insert_sql

        cur, settings = self.cur, self.settings
        started = time.perf_counter()
        decoded = decode_batch(
            batch, self.mapping, namespace="bench", max_event_bytes=settings.max_event_bytes
        )
        _streamduck_batch = decoded.table
        p = decoded.partition
        decoded_at = time.perf_counter()
        cur.execute("BEGIN TRANSACTION")
        begun = time.perf_counter()
        cur.execute(  # the sink's statement, which reads the table above by name
            rows_insert_sql(self.table, self.mapping.body_format),
            [p.event_hub, p.consumer_group, p.partition_id, self.now],
        ).fetchall()
        inserted = time.perf_counter()
        cur.execute("COMMIT")
        committed = time.perf_counter()
        for part, seconds in zip(
            ("decode", "begin", "insert", "commit"),
            (decoded_at - started, begun - decoded_at, inserted - begun, committed - inserted),
            strict=True,
        ):
            self.parts[part].append(seconds)


def _batches(bodies: list[bytes], first: int, end: int, batch: int, partition_id: str = "0") -> list[Any]:
    """``func.EventHubEvent`` batches of events ``first`` to ``end`` (sequence numbers) of partition
    ``partition_id``, as the host builds them."""
    from shared.eventhubs.hostshape import PartitionInfo, SourceEvent, to_function_batch

    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    partition = PartitionInfo(partition_id, "bench", "$Default", "bench.servicebus.windows.net")
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
    """A DuckDB cursor that counts and times the calls that reach the engine (DuckDB's client runs a call's
    statements one by one), by the statements' first words (``BEGIN; UPDATE``, ``INSERT``, ``COMMIT``)."""

    calls: ClassVar[int] = 0
    seconds: ClassVar[dict[str, float]] = {}

    def __init__(self, inner: duckdb.DuckDBPyConnection) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in {"execute", "executemany", "sql", "query"}:

            def counted(*args: Any, **kwargs: Any) -> Any:
                _CountingCursor.calls += 1
                label = "; ".join(s.split()[0].upper() for s in str(args[0]).split(";") if s.strip())
                started = time.perf_counter()
                result = attr(*args, **kwargs)
                spent = time.perf_counter() - started
                _CountingCursor.seconds[label] = _CountingCursor.seconds.get(label, 0.0) + spent
                return self if result is self._inner else result

            return counted
        return attr


def _calls_per_batch(fn: Any, timed: list[Any], counted: list[Any]) -> dict[str, Any]:
    """After the timed run: the medians per batch of the function's parts over ``timed`` (decoding, each call
    into the engine, and the rest: "ours"), then, over ``counted``, the statements per batch (DuckDB's query
    log, which is off while the parts are timed) and the calls into the engine. The timing cursor adds a little
    to each call, and DuckDB then looks for the sink's Arrow tables one frame further up, so the parts add up
    to a bit more than the timed run's batches."""
    from shared.duck.connection import DuckConnections
    from shared.eventhubs import ingest

    original = DuckConnections.cursor
    original_thread_cursor = DuckConnections.thread_cursor
    # The name the ingestor calls (it imports decode_batch into its own module).
    original_decode = vars(ingest)["decode_batch"]
    decode_s = [0.0]

    def cursor(self: DuckConnections, *args: Any, **kwargs: Any) -> Any:
        return _CountingCursor(original(self, *args, **kwargs))

    @contextmanager
    def thread_cursor(self: DuckConnections, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with original_thread_cursor(self, *args, **kwargs) as inner:
            yield _CountingCursor(inner)

    def decode_batch(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_decode(*args, **kwargs)
        finally:
            decode_s[0] += time.perf_counter() - started

    DuckConnections.cursor = cursor  # type: ignore[method-assign]
    DuckConnections.thread_cursor = thread_cursor  # type: ignore[method-assign]
    vars(ingest)["decode_batch"] = decode_batch
    parts: dict[str, list[float]] = {}
    try:
        probe = cursor.__get__(_connections())("bench")
        probe.execute(
            "SET GLOBAL python_scan_all_frames = true"
        )  # the sink names its Arrow table in its frame
        for b in timed:
            _CountingCursor.seconds = {}
            decode_s[0] = 0.0
            started = time.perf_counter()
            fn(b)
            total = time.perf_counter() - started
            engine = sum(_CountingCursor.seconds.values())
            for label, seconds in {
                "decode": decode_s[0],
                **_CountingCursor.seconds,
                "ours": total - decode_s[0] - engine,
                "total": total,
            }.items():
                parts.setdefault(label, []).append(seconds)
        probe.execute("CALL enable_logging('QueryLog')")
        probe.execute("CALL truncate_duckdb_logs()")
        _CountingCursor.calls = 0
        for b in counted:
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
        DuckConnections.thread_cursor = original_thread_cursor  # type: ignore[method-assign]
        vars(ingest)["decode_batch"] = original_decode
    return {
        "statements": round(statements / len(counted), 1),
        "round_trips": round(calls / len(counted), 1),
        # A part missing from some batches (a rare statement) counts as 0 in those.
        "parts": {
            label: _ms(statistics.median(v + [0.0] * (len(timed) - len(v)))) for label, v in parts.items()
        },
    }


def _connections() -> Any:
    import function_app
    from shared.eventhubs import default_ingestor

    return default_ingestor(function_app.settings).connections


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
