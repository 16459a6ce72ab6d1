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
function-only rate, and the dev host's ratio to it. The function's own timings per batch (its metrics, read
with an in-memory reader: the ClickHouse insert, the Redis script and the rest) alone and in the dev host show
which part of the difference is the engines' and which the Python's.

Kafka: ``KAFKA_BROKERS`` or ``STREAMDUCK_TEST_KAFKA_BROKERS``; Redis: ``--redis-url`` or
``STREAMDUCK_TEST_REDIS_URL`` (``bash scripts/services.sh start redis kafka``). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def _host(settings: Any, environ: dict[str, str], functions: list[str], idle: float) -> tuple[Any, float]:
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
    return host, wall


def _host_batch_size(settings: Any, environ: dict[str, str]) -> int:
    """The enrichment function's batch size as the dev host plans it (host.json)."""
    from shared.cli.run import build_plan

    planned = build_plan(
        settings,
        environ,
        app_module="function_app",
        app_dir=ROOT,
        functions=["engagement_enrich"],
        batch_size=None,
    )
    return next(p.batch_size for p in planned if p.runs)


def _drain(settings: Any, environ: dict[str, str], events: int, idle: float, parts: _Parts) -> dict[str, Any]:
    # The content first, as in a running system (and as the function-only run below): otherwise the two
    # sources race, engagements arrive before their content and are enriched twice, which is other work.
    _host(settings, environ, ["engagement_content_cdc"], idle)
    cpu, broker = time.process_time(), _broker_cpu()
    parts.start("devhost")
    host, wall = _host(settings, environ, ["engagement_content_cdc", "engagement_enrich"], idle)
    parts.stop("devhost")
    cpu, broker_after = time.process_time() - cpu, _broker_cpu()
    phases = host.kafka_sources["engagement_enrich"].phases
    if phases.first_fetch is None or phases.last_commit is None or phases.messages < events:
        raise SystemExit(f"the dev host drained {phases.messages} of {events} events")
    return {
        "phases": phases,
        "wall": wall,
        "cpu": cpu,
        "broker_cpu": None if broker is None or broker_after is None else broker_after - broker,
    }


def _broker_cpu() -> float | None:
    """CPU seconds of the local Kafka broker so far (the test services' pid file), or ``None``."""
    pid_file = ROOT / ".services" / "kafka" / "kafka.pid"
    try:
        fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _function_only(
    settings: Any,
    environ: dict[str, str],
    contents: list[Any],
    engagements: list[Any],
    batch: int,
    run: str,
    *,
    publish: bool = False,
    parts: _Parts | None = None,
) -> tuple[float, float]:
    """Seconds (wall, and this process's CPU) the registered enrichment function takes for the same events
    in batches of ``batch``, on Redis keys and a ClickHouse database of its own (``run`` names them). With
    ``parts``, the function's own timings of the timed batches are kept under the name ``run``.

    ``publish``: after each call, its output binding is produced and acknowledged as the dev host does it
    (:class:`~shared.devhost.outputs.OutputProducer`, to a topic of its own), one batch after the other: the
    sequential work of a host, without the consumer."""
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
                "redis_key_prefix": f"{settings.redis_key_prefix}alone{run}:",
                "clickhouse_database": f"{settings.clickhouse_database}_alone{run}",
            }
        )
    )
    pairs = [debezium_engagement(e) for e in engagements]
    batches = [batch_of(pairs[i : i + batch], settings.topic_engage, i) for i in range(0, len(pairs), batch)]
    warm = batch_of([debezium_engagement(e) for e in engagements[:10]], settings.topic_engage, 0)
    enrich = registered(ENRICH_FUNCTION)
    deliver = _publisher(settings, environ, run) if publish else None
    with use_pipeline(alone):
        registered(CONTENT_FUNCTION)(
            events=batch_of([debezium_content(c) for c in contents], settings.topic_content, 0), out=Collect()
        )
        enrich(events=warm, out=Collect())  # schema, script load: the dev host's first batch paid them too
        gc.collect()
        if parts is not None:
            parts.start(run)
        started, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            out = Collect()
            enrich(events=b, out=out)
            if deliver is not None:
                deliver({"out": out.get()})
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        if parts is not None:
            parts.stop(run)
        return seconds, cpu_seconds


class _Parts:
    """The enrichment function's own timings of its batches, as its metrics record them (the project's
    OpenTelemetry instruments, read from an in-memory reader): the whole batch, the ClickHouse insert and the
    Redis script, per batch between :meth:`start` and :meth:`stop` of a named phase. The engines' parts and,
    as the rest, the function's own Python outside them (which also runs beside the insert)."""

    def __init__(self, topic: str) -> None:
        from shared.telemetry.local import LocalMetrics

        self.topic = topic
        self.local = LocalMetrics({})  # an in-memory reader only: this process exports nothing
        self.local.install()
        self._started: dict[str, dict[str, tuple[int, float]]] = {}
        self.phases: dict[str, dict[str, float]] = {}

    def _read(self) -> dict[str, tuple[int, float]]:
        from shared.telemetry import catalog

        names = {
            catalog.KAFKA_BATCH_DURATION.name: "function",
            catalog.KAFKA_CLICKHOUSE_DURATION.name: "clickhouse_insert",
            catalog.KAFKA_REDIS_DURATION.name: "redis_script",
        }
        return {
            names[p.name]: (p.count, p.sum)
            for p in self.local.points()
            if p.name in names and p.attributes.get(catalog.TOPIC) == self.topic
        }

    def start(self, phase: str) -> None:
        self._started[phase] = self._read()

    def stop(self, phase: str) -> None:
        before, after = self._started.pop(phase), self._read()
        per_batch: dict[str, float] = {}
        for part, (count, total) in after.items():
            count_before, total_before = before.get(part, (0, 0.0))
            if count > count_before:
                per_batch[part] = round((total - total_before) * 1000 / (count - count_before), 2)
        if {"function", "clickhouse_insert", "redis_script"} <= set(per_batch):
            per_batch["outside_clickhouse_and_redis"] = round(
                per_batch["function"] - per_batch["clickhouse_insert"] - per_batch["redis_script"], 2
            )
        self.phases[phase] = per_batch


def _mean_parts(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {part: round((a[part] + b[part]) / 2, 2) for part in a if part in b}


def _publisher(settings: Any, environ: dict[str, str], run: str) -> Any:
    """The dev host's output binding of ``engagement_enrich``, producing to a topic of its own."""
    import dataclasses

    from shared.devhost.functions import discover, import_app
    from shared.devhost.outputs import OutputProducer

    fn = next(f for f in discover(import_app("function_app", ROOT), environ) if f.name == "engagement_enrich")
    topic = f"{settings.topic_out}.alone{run}"
    outputs = tuple(dataclasses.replace(o, topic=topic) for o in fn.outputs)
    return OutputProducer(dataclasses.replace(fn, outputs=outputs), settings).deliver


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
    # chDB may still be merging parts in the background when the run ends (see bench.engagement_enrich).
    with tempfile.TemporaryDirectory(prefix="bench-devhost-", ignore_cleanup_errors=True) as chdb_dir:
        environ = {**os.environ, **_environment(args, run, chdb_dir)}
        os.environ.update(environ)  # function_app reads its settings at import
        from shared.settings import load_settings

        settings = load_settings(environ)
        parts = _Parts(settings.topic_engage)  # before the function app is imported
        contents, engagements = _traffic(args.events, args.seed)
        produce_seconds = _produce(settings, contents, engagements)
        # The function alone just before and just after the dev host (the machine's speed drifts): the
        # ratio is to their mean.
        batch = _host_batch_size(settings, environ)
        before, cpu_before = _function_only(settings, environ, contents, engagements, batch, "1", parts=parts)
        with_output_before, _ = _function_only(
            settings, environ, contents, engagements, batch, "2", publish=True, parts=parts
        )
        drained = _drain(settings, environ, args.events, args.idle, parts)
        phases = drained["phases"]
        with_output_after, _ = _function_only(
            settings, environ, contents, engagements, batch, "3", publish=True, parts=parts
        )
        after, cpu_after = _function_only(settings, environ, contents, engagements, batch, "4", parts=parts)
        function_seconds, function_cpu = (before + after) / 2, (cpu_before + cpu_after) / 2
        with_output_seconds = (with_output_before + with_output_after) / 2
        _cleanup(settings, args.redis_url, run)

    seconds = phases.last_commit - phases.first_fetch
    host_rate = phases.messages / seconds
    function_rate = args.events / function_seconds
    per_batch = 1000 / phases.batches
    batches = -(-args.events // batch)
    return {
        "benchmark": "devhost_kafka",
        "events": args.events,
        "produced_in_seconds": round(produce_seconds, 2),
        "batch_size": batch,
        "batches": phases.batches,
        "events_consumed": phases.messages,
        "seconds_first_fetch_to_last_offset_stored": round(seconds, 3),
        "devhost_events_per_second": round(host_rate),
        "function_only_events_per_second": round(function_rate),
        "devhost_to_function_ratio": round(host_rate / function_rate, 3),
        # The function and then its output binding (produce, wait for the acknowledgements), batch after
        # batch, without the dev host: the sequential work any host does before it may commit.
        "function_and_output_binding_events_per_second": round(args.events / with_output_seconds),
        "devhost_to_function_and_output_binding_ratio": round(
            host_rate / (args.events / with_output_seconds), 3
        ),
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
                "output_binding_waiting_for_acks": round(phases.output_flush * per_batch, 2),
                "store_offsets": round(phases.commit * per_batch, 2),
                "waiting_for_a_batch": round(phases.starved * per_batch, 2),
                "function_and_output_thread_cpu": round(phases.function_cpu * per_batch, 2),
            },
            "elapsed": round(seconds * per_batch, 2),
        },
        # Medians: the means above include the first batch's connections and any stall.
        "median_ms_per_batch": {
            "function": round(statistics.median(phases.function_each) * 1000, 2),
            "output_binding": round(statistics.median(phases.output_each) * 1000, 2),
        },
        "function_only_ms_per_batch": round(function_seconds * 1000 / batches, 2),
        # The function's own timings (its metrics), per batch: alone (before and after the dev host), then
        # followed by its output binding, then in the dev host. The ClickHouse insert and the Redis script are
        # the engines' parts; the rest is the function's Python (and the wait for its helper thread), which in
        # the dev host shares the interpreter lock with the subscriber thread and the output binding.
        "function_parts_ms_per_batch": {
            "alone": _mean_parts(parts.phases["1"], parts.phases["4"]),
            "before_its_output_binding": _mean_parts(parts.phases["2"], parts.phases["3"]),
            "in_devhost": parts.phases["devhost"],
        },
        "function_and_output_binding_ms_per_batch_before_and_after": [
            round(with_output_before * 1000 / batches, 2),
            round(with_output_after * 1000 / batches, 2),
        ],
        "function_only_ms_per_batch_before_and_after": [
            round(before * 1000 / batches, 2),
            round(after * 1000 / batches, 2),
        ],
        # CPU per batch: this process (every thread: Python, librdkafka, chDB) and the local broker.
        "cpu_ms_per_batch": {
            "devhost_process": round(drained["cpu"] * 1000 / phases.batches, 2),
            "broker": None
            if drained["broker_cpu"] is None
            else round(drained["broker_cpu"] * 1000 / phases.batches, 2),
            "function_only_process": round(function_cpu * 1000 / batches, 2),
        },
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
    topics += [f"{settings.topic_out}.alone{run}" for run in ("2", "3")]
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        future.result()


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
