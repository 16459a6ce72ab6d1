"""The dev host end to end on real Kafka: ``python -m bench.devhost_kafka [--events N] [--batch B]``.

Produces N Debezium-shaped engagement events (and the content they refer to) into the local Kafka with the
simulator's Kafka target, on fresh topics; then drains them through the dev host in this process (``DevHost``
with ``engagement_content_cdc`` and ``engagement_enrich`` as ``function_app`` registers them, the host.json
batch size, real Kafka, Redis and embedded chDB). The content is drained first, as in a running system.
It reports events/s from the enrichment source's first fetch to its last offset store, with where the time
went on each of the source's two threads: the subscriber's fetch (consumer call and message conversion),
build (the ``func.KafkaEvent`` batch) and wait for room in the channel; the executor's function, output
binding (produce and flush of the enriched topic), offset store and wait for the next batch.

In the same run, the same events go through the registered enrichment function alone (batches built up
front, a ``func.Out`` collector for the output binding, fresh Redis keys and ClickHouse database): the
function-only rate, and the dev host's ratio to it.

Kafka: ``KAFKA_BROKERS`` or ``STREAMDUCK_TEST_KAFKA_BROKERS``; Redis: ``--redis-url`` or
``STREAMDUCK_TEST_REDIS_URL`` (``bash scripts/services.sh start redis kafka``). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _environment(args: argparse.Namespace, run: str, chdb_dir: str) -> dict[str, str]:
    brokers = os.environ.get("KAFKA_BROKERS") or os.environ.get("STREAMDUCK_TEST_KAFKA_BROKERS", "")
    if not brokers:
        raise SystemExit(
            "set KAFKA_BROKERS (bash scripts/services.sh start redis kafka; source .services/env)"
        )
    return {
        "KAFKA_BROKERS": brokers,
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": f"bench:{run}:",
        "CLICKHOUSE_CHDB_PATH": chdb_dir,
        "CLICKHOUSE_DATABASE": f"bench_{run}",
        "TOPIC_CONTENT": f"bench.{run}.content.flat",
        "TOPIC_ENGAGE": f"bench.{run}.engagement_events.flat",
        "TOPIC_OUT": f"bench.{run}.engagement_enriched",
        "KAFKA_CONSUMER_GROUP": f"bench-{run}",
    }


def _traffic(events: int, seed: int) -> tuple[list[Any], list[Any]]:
    from shared.simulate.model import TrafficModel

    # Event times within the last two minutes: the leaderboard's live window.
    model = TrafficModel(seed=seed, start=datetime.now(UTC) - timedelta(minutes=2), rate=events / 120)
    contents = model.content(500)
    stream = model.events([c.id for c in contents])
    return contents, [next(stream) for _ in range(events)]


def _produce(settings: Any, contents: list[Any], engagements: list[Any]) -> float:
    from shared.simulate.targets import KafkaTarget

    target = KafkaTarget(settings)
    started = time.perf_counter()
    try:
        target.send_content(contents)
        target.send_events(engagements)
    finally:
        target.close()
    return time.perf_counter() - started


def _host(
    settings: Any, environ: dict[str, str], functions: list[str], idle: float
) -> tuple[Any, Any, float]:
    from shared.cli.run import build_plan
    from shared.devhost.host import DevHost

    planned = build_plan(
        settings, environ, app_module="function_app", app_dir=ROOT, functions=functions, batch_size=None
    )
    host = DevHost(planned, settings, environ, start_from="earliest")
    started = time.perf_counter()
    host.start()
    host.wait(exit_when_idle=idle, connect_timeout=60)
    wall = time.perf_counter() - started
    if host.failures or host.unreachable:
        raise SystemExit(f"dev host failed: {host.failures} {host.unreachable}")
    return host, planned, wall


def _drain(settings: Any, environ: dict[str, str], events: int, idle: float) -> dict[str, Any]:
    # The content first, as in a running system (and as the function-only run below): otherwise the two
    # sources race, engagements arrive before their content and are enriched twice, which is other work.
    _host(settings, environ, ["engagement_content_cdc"], idle)
    host, planned, wall = _host(settings, environ, ["engagement_content_cdc", "engagement_enrich"], idle)
    phases = host.kafka_sources["engagement_enrich"].phases
    if phases.first_fetch is None or phases.last_commit is None or phases.messages < events:
        raise SystemExit(f"the dev host drained {phases.messages} of {events} events")
    return {"phases": phases, "wall": wall, "batch": next(p.batch_size for p in planned if p.runs)}


def _function_only(settings: Any, contents: list[Any], engagements: list[Any], batch: int) -> float:
    """Seconds the registered enrichment function takes for the same events in batches of ``batch``."""
    import gc

    from shared.demo.engagement import Collect, registered
    from shared.engagement.functions import CONTENT_FUNCTION, ENRICH_FUNCTION, Pipeline, use_pipeline
    from shared.engagement.kafka_io import trigger_batch
    from shared.simulate.model import debezium_content, debezium_engagement

    def batch_of(pairs: list[tuple[bytes, bytes]], topic: str, first: int) -> Any:
        n = len(pairs)
        return trigger_batch(
            values=[v for _, v in pairs],
            topics=[topic] * n,
            partitions=[0] * n,
            offsets=list(range(first, first + n)),
            keys=[k.decode() for k, _ in pairs],
            timestamps=[datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")] * n,
        )

    alone = Pipeline(
        settings.model_copy(
            update={
                "redis_key_prefix": f"{settings.redis_key_prefix}alone:",
                "clickhouse_database": f"{settings.clickhouse_database}_alone",
            }
        )
    )
    pairs = [debezium_engagement(e) for e in engagements]
    batches = [batch_of(pairs[i : i + batch], settings.topic_engage, i) for i in range(0, len(pairs), batch)]
    warm = batch_of([debezium_engagement(e) for e in engagements[:10]], settings.topic_engage, 0)
    enrich = registered(ENRICH_FUNCTION)
    with use_pipeline(alone):
        registered(CONTENT_FUNCTION)(
            events=batch_of([debezium_content(c) for c in contents], settings.topic_content, 0), out=Collect()
        )
        enrich(events=warm, out=Collect())  # schema, script load: the dev host's first batch paid them too
        gc.collect()
        started = time.perf_counter()
        for b in batches:
            enrich(events=b, out=Collect())
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("STREAMDUCK_TEST_REDIS_URL", "redis://127.0.0.1:16379/0")
    )
    parser.add_argument(
        "--idle", type=float, default=2.0, help="seconds without events before the host stops"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory(prefix="bench-devhost-") as chdb_dir:
        environ = {**os.environ, **_environment(args, run, chdb_dir)}
        os.environ.update(environ)  # function_app reads its settings at import
        from shared.settings import load_settings

        settings = load_settings(environ)
        contents, engagements = _traffic(args.events, args.seed)
        produce_seconds = _produce(settings, contents, engagements)
        drained = _drain(settings, environ, args.events, args.idle)
        phases = drained["phases"]
        function_seconds = _function_only(settings, contents, engagements, drained["batch"])
        _cleanup(settings, args.redis_url, run)

    seconds = phases.last_commit - phases.first_fetch
    host_rate = phases.messages / seconds
    function_rate = args.events / function_seconds
    per_batch = 1000 / phases.batches
    return {
        "benchmark": "devhost_kafka",
        "events": args.events,
        "produced_in_seconds": round(produce_seconds, 2),
        "batch_size": drained["batch"],
        "batches": phases.batches,
        "events_consumed": phases.messages,
        "seconds_first_fetch_to_last_offset_stored": round(seconds, 3),
        "devhost_events_per_second": round(host_rate),
        "function_only_events_per_second": round(function_rate),
        "devhost_to_function_ratio": round(host_rate / function_rate, 3),
        "ms_per_batch": {
            # The subscriber thread (fetches the next batch while the function runs) ...
            "subscriber": {
                "fetch": round(phases.fetch * per_batch, 2),
                "build_kafka_events": round(phases.build * per_batch, 2),
                "waiting_for_room_in_channel": round(phases.channel_full * per_batch, 2),
                "empty_fetches": round(phases.idle * per_batch, 2),
                "lag_reports": round(phases.lag * per_batch, 2),
            },
            # ... and the executor thread, whose busy time is the dev host's throughput bound.
            "executor": {
                "function": round(phases.function * per_batch, 2),
                "output_binding": round(phases.output * per_batch, 2),
                "store_offsets": round(phases.commit * per_batch, 2),
                "waiting_for_a_batch": round(phases.starved * per_batch, 2),
                "function_and_output_thread_cpu": round(phases.function_cpu * per_batch, 2),
            },
            "elapsed": round(seconds * per_batch, 2),
        },
        "function_only_ms_per_batch": round(function_seconds * 1000 / -(-args.events // drained["batch"]), 2),
        "host_wall_seconds_including_idle_exit": round(drained["wall"], 2),
        "cpu_count": os.cpu_count(),
    }


def _cleanup(settings: Any, redis_url: str, run: str) -> None:
    import redis
    from confluent_kafka.admin import AdminClient

    from shared.kafkaconfig import client_config

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"bench:{run}:*", count=1000):
        client.delete(key)
    admin = AdminClient(client_config(settings))
    topics = [settings.topic_content, settings.topic_engage, settings.topic_out]
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        future.result()


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
