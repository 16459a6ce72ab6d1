"""Enrichment throughput: ``python -m bench.engagement_enrich [--events N] [--batch B] [--redis-url URL]``.

Runs N simulated engagement events (Debezium flat rows, as ``func.KafkaEvent`` batches built by the library's
trigger converter) through the enrichment function, ``engagement_enrich`` as ``function_app`` registers it and
the worker invokes it (a ``func.Out`` collector stands in for the Kafka output binding), with embedded chDB and
Redis: decode, content lookup (one round trip per batch), enriched envelopes, ClickHouse insert and the
leaderboard script, with the CPU time per batch of the handler's thread and of the whole process (which includes
chDB's own threads). In the same run, the same events go through the earlier design's Redis path (one pipelined ZINCRBY + EXPIRE round
trip per event) for comparison. Prints JSON.

Redis: ``--redis-url`` or ``STREAMDUCK_TEST_REDIS_URL`` (``bash scripts/services.sh start``); chDB lives in a
temporary folder. Realistic traffic: event times within the last two minutes, 500 content items.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from typing import Any

import redis

from shared.demo.engagement import Collect, content_rows, engagement_rows, registered
from shared.engagement.batch import TriggerBatch
from shared.engagement.decode_columns import decode_engagements
from shared.engagement.enrich_columns import EnrichedRows
from shared.engagement.functions import CONTENT_FUNCTION, ENRICH_FUNCTION, Pipeline, use_pipeline
from shared.engagement.kafka_io import trigger_batch
from shared.engagement.leaderboard import PreparedScores
from shared.settings import Settings, load_settings


def _earlier_design(client: redis.Redis, prefix: str, values: list[bytes]) -> float:
    """The earlier consumer: per event, parse, then a ZINCRBY + EXPIRE pipeline (one round trip)."""
    started = time.perf_counter()
    for value in values:
        row = json.loads(value)
        ts = row["event_ts"]
        bucket = f"{prefix}zset:eng:minute:{ts[0:4]}{ts[5:7]}{ts[8:10]}{ts[11:13]}{ts[14:16]}"
        score = (row["duration_ms"] or 0) / 1000
        pipe = client.pipeline(transaction=False)
        pipe.zincrby(bucket, score, row["content_id"])
        pipe.expire(bucket, 900)
        pipe.execute()
    return time.perf_counter() - started


def _phases_alone(
    settings: Settings, run: str, content_batch: list[Any], batches: list[list[Any]]
) -> dict[str, float]:
    """Seconds each phase of the enrichment takes for ``batches`` when it runs alone (see ``main``)."""
    floor = Pipeline(
        settings.model_copy(
            update={"redis_key_prefix": f"bench:{run}:alone:", "clickhouse_database": f"bench_{run}_alone"}
        )
    )
    floor.content(content_batch)
    floor.warehouse.ensure_schema()
    prepared: list[tuple[EnrichedRows, PreparedScores]] = []
    started = time.perf_counter()
    for events in batches:
        batch = TriggerBatch.from_events(events)
        columns = decode_engagements(batch).columns
        enriched = EnrichedRows(
            columns, batch, floor.store.get_many(columns["content_id"]), settings.topic_out
        )
        prepared.append((enriched, floor.prepare_outputs(enriched, batch, columns)))
    python = time.perf_counter() - started
    started = time.perf_counter()
    for enriched, _ in prepared:
        floor.warehouse.insert_enriched(enriched, scope="enrich")
    clickhouse = time.perf_counter() - started
    started = time.perf_counter()
    for _, update in prepared:
        update.apply()
    script = time.perf_counter() - started
    return {"python": python, "clickhouse_insert": clickhouse, "redis_script": script}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("STREAMDUCK_TEST_REDIS_URL", "redis://127.0.0.1:16379/0")
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    run = uuid.uuid4().hex[:10]
    now_ms = int(time.time() * 1000)
    contents = content_rows(rng, 500, now_ms - 3_600_000)
    rows = engagement_rows(
        rng, [c["id"] for c in contents], args.events, first_id=1, now_ms=now_ms, spread_ms=120_000
    )
    values = [json.dumps(r).encode() for r in rows]
    topic = f"engagement_events.flat.bench{run}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms // 1000))
    batches = []
    for start in range(0, len(values), args.batch):
        chunk = values[start : start + args.batch]
        n = len(chunk)
        batches.append(
            trigger_batch(
                values=list(chunk),
                topics=[topic] * n,
                partitions=[0] * n,
                offsets=list(range(start, start + n)),
                keys=[None] * n,
                timestamps=[stamp] * n,
            )
        )

    # chDB may still be merging parts in the background when the run ends: what it writes after the removal
    # is left to the system's temporary-file cleanup rather than failing a finished benchmark.
    with tempfile.TemporaryDirectory(prefix="bench-chdb-", ignore_cleanup_errors=True) as chdb_dir:
        settings = load_settings(
            {
                "REDIS_URL": args.redis_url,
                "REDIS_KEY_PREFIX": f"bench:{run}:",
                "CLICKHOUSE_CHDB_PATH": chdb_dir,
                "CLICKHOUSE_DATABASE": f"bench_{run}",
                "TOPIC_ENGAGE": topic,
            }
        )
        pipeline = Pipeline(settings)
        content_batch = trigger_batch(
            values=[json.dumps(c).encode() for c in contents],
            topics=["content.flat"] * len(contents),
            partitions=[0] * len(contents),
            offsets=list(range(len(contents))),
            keys=[c["id"] for c in contents],
            timestamps=[stamp] * len(contents),
        )
        enrich = registered(ENRICH_FUNCTION)
        out = Collect()
        with use_pipeline(pipeline):
            registered(CONTENT_FUNCTION)(events=content_batch, out=Collect())
            enrich(events=batches[0], out=Collect())  # warm-up: schema, script load, first part
            started = time.perf_counter()
            cpu_started, handler_started = time.process_time(), time.thread_time()
            for batch in batches[1:]:
                enrich(events=batch, out=out)
            elapsed = time.perf_counter() - started
            process_cpu = time.process_time() - cpu_started
            handler_cpu = time.thread_time() - handler_started
        published = len(out.items)
        measured = sum(len(b) for b in batches[1:])
        rows = pipeline.warehouse.query("SELECT count() FROM {db}.engagement_enriched FINAL")[0][0]
        alone = _phases_alone(settings, run, content_batch, batches[1:])

        client = redis.Redis.from_url(args.redis_url)
        earlier_seconds = _earlier_design(client, f"bench:{run}:earlier:", values[args.batch :])
        for key in client.scan_iter(f"bench:{run}:*", count=1000):
            client.delete(key)

    ours = measured / elapsed
    per_batch = 1000 / max(1, len(batches) - 1)
    earlier = measured / earlier_seconds
    result: dict[str, Any] = {
        "events": measured,
        "batch": args.batch,
        "enrich_events_per_second": round(ours),
        "enrich_ms_per_batch": round(elapsed / max(1, len(batches) - 1) * 1000, 2),
        # CPU per batch: the handler's thread (decode, enrichment, envelopes, Arrow columns, Redis client),
        # and the whole process, which adds the ClickHouse insert thread and the embedded engine's own
        # threads (part writing and background merges, a ClickHouse server's work in production)
        "handler_thread_cpu_ms_per_batch": round(handler_cpu * per_batch, 2),
        "process_cpu_ms_per_batch": round(process_cpu * per_batch, 2),
        "includes": [
            "registered engagement_enrich function",
            "decode",
            "content lookup",
            "enriched envelopes",
            "ClickHouse insert (chDB)",
            "Redis script",
        ],
        "earlier_per_event_redis_events_per_second": round(earlier),
        "ratio": round(ours / earlier, 2),
        # The same batches once more, each phase on its own and back to back (fresh Redis keys and ClickHouse
        # database): the Python part (decode, content lookup, enrichment, envelopes, leaderboard packing), the
        # ClickHouse insert, the Redis script. The function overlaps the first two, never the last two.
        **{f"{phase}_alone_ms_per_batch": round(seconds * per_batch, 2) for phase, seconds in alone.items()},
        # The sequential floor: the three phases alone, back to back (what must precede the insert, the
        # insert, the script); the function's ratio to it (1.0: no overhead, below 1: its overlap wins).
        "sequential_floor_ms_per_batch": round(sum(alone.values()) * per_batch, 2),
        "function_to_sequential_floor": round(elapsed / sum(alone.values()), 3),
        "clickhouse_rows": int(rows),
        "published_envelopes": published,
        "cpu_count": os.cpu_count(),
    }
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
