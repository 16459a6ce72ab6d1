"""End to end with the dev host and the real function app: exact counts after a kill -9 mid-stream.

Kafka path: ``simulate`` puts Debezium-shaped traffic on real topics; ``streamduck run`` consumes it with the
registered engagement functions into chDB (ClickHouse) and Redis; the host is killed with SIGKILL mid-stream and
restarted; ClickHouse rows and the Redis leaderboard scores are then exactly what the simulated traffic implies.

Event Hubs path: the same, into local DuckDB, with the Event Hubs service replaced by a feeder that drives the
dev host's Event Hubs source and its blob checkpoints on Azurite (tests/support/ehfeeder.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb

from shared.simulate.model import TrafficModel
from tests.support.cli import ROOT, base_env, run_cli, start_cli, wait_for

EVENTS = 6000
FIRST_ID = 7_000_000


def committed(brokers: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=5)
        parts = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=5))
    finally:
        consumer.close()


def query_stores(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """ClickHouse and Redis totals, read in a separate process (chDB allows one engine per process)."""
    script = """
import json, redis
from shared.settings import load_settings
from shared.engagement.clickhouse import Warehouse
s = load_settings()
rows, ids = Warehouse.from_settings(s).query(
    "SELECT count(), uniqExact(id) FROM {db}.engagement_enriched FINAL")[0]
r = redis.Redis.from_url(s.redis_url.get_secret_value())
centis = sum(round(score * 100) for key in r.scan_iter(s.redis_key_prefix + "zset:eng:minute:*")
             for _, score in r.zrange(key, 0, -1, withscores=True))
print(json.dumps({"rows": rows, "ids": ids, "centis": centis}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def expected_centis(seed: int, start: datetime) -> int:
    model = TrafficModel(seed=seed, start=start, rate=0, first_id=FIRST_ID)
    content = model.content(10)
    events = model.events([c.id for c in content])
    total = 0
    for _ in range(EVENTS):
        e = next(events)
        if e.duration_ms is not None:
            total += int((Decimal(e.duration_ms) / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return total


def test_kafka_pipeline_exact_after_kill_9(
    tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str
) -> None:
    group = f"{unique_name}-group"
    env = base_env(
        tmp_path,
        KAFKA_BROKERS=kafka_brokers,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"{unique_name}:",
        TOPIC_CONTENT=f"{unique_name}-content",
        TOPIC_ENGAGE=f"{unique_name}-engage",
        TOPIC_OUT=f"{unique_name}-out",
        KAFKA_CONSUMER_GROUP=group,
    )
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(minutes=2)
    simulated = run_cli(
        "simulate", "--target", "kafka", "--count", str(EVENTS), "--rate", "0", "--burst", "2000", "--seed", "21",
        "--start-time", start.isoformat(), "--first-id", str(FIRST_ID), "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert simulated.code == 0, simulated.stderr

    run = ["run", "--app-dir", str(ROOT), "-f", "engagement_content_cdc", "-f", "engagement_enrich", "--json"]
    first = start_cli(*run, "--batch-size", "50", env=env, cwd=tmp_path, log=tmp_path / "host1.log")
    wait_for(
        lambda: committed(kafka_brokers, group, env["TOPIC_ENGAGE"]) >= EVENTS // 4,
        timeout=240,
        what="a quarter of the events committed",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert committed(kafka_brokers, group, env["TOPIC_ENGAGE"]) < EVENTS, "killed too late to prove anything"

    second = run_cli(*run, "--batch-size", "50", "--exit-when-idle", "3", env=env, cwd=tmp_path, timeout=400)
    assert second.code == 0, second.stderr[-3000:]
    assert committed(kafka_brokers, group, env["TOPIC_ENGAGE"]) == EVENTS

    totals = query_stores(env, tmp_path)
    assert totals["rows"] == EVENTS
    assert totals["ids"] == EVENTS
    assert totals["centis"] == expected_centis(21, start)

    status = run_cli("status", "--json", "--top", "3", "--window", "60", env=env, cwd=tmp_path)
    assert status.code == 0, status.stderr
    report = status.json()
    assert report["kafka"]["consumer_group"] == group
    lags = {t["topic"]: [p["lag"] for p in t["partitions"]] for t in report["kafka"]["topics"]}
    assert sum(lags[env["TOPIC_ENGAGE"]]) == 0
    assert sum(lags[env["TOPIC_CONTENT"]]) == 0
    assert set(lags[env["TOPIC_OUT"]]) == {None}  # produced by the app, not consumed
    board = report["leaderboard"]
    assert board["error"] is None and len(board["entries"]) == 3
    assert all(e["title"] for e in board["entries"])


def test_eventhubs_pipeline_exact_after_kill_9(
    tmp_path: Path, azurite_connection_string: str, unique_name: str, redis_url: str, kafka_brokers: str
) -> None:
    per_partition, batch, partitions = 1500, 100, 4
    env = base_env(
        tmp_path,
        EVENTHUB_NAMESPACE="streamduck-test.servicebus.windows.net",
        AzureWebJobsStorage=azurite_connection_string,
        EVENTHUBNAME_1=f"hub-{unique_name}",
        EVENTHUBNAME_1_CONSUMER_GROUP="$Default",
        MOTHERDUCK_1_DATABASE="analytics",
        MOTHERDUCK_1_SCHEMA="raw",
        MOTHERDUCK_1_TABLE="telemetry",
        FEEDER_PAUSE="0.05",
    )
    feeder = [sys.executable, "-m", "tests.support.ehfeeder", str(per_partition), str(batch), str(partitions)]
    log = (tmp_path / "feeder1.log").open("wb")
    first = subprocess.Popen(
        feeder, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    database = tmp_path / "data" / "analytics.duckdb"

    def checkpointed() -> int:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(azurite_connection_string) as service:
            container = service.get_container_client("azure-webjobs-eventhub")
            if not container.exists():
                return 0
            prefix = f"{env['EVENTHUB_NAMESPACE']}/{env['EVENTHUBNAME_1']}/"
            return sum(
                int(b.metadata.get("sequencenumber", -1)) + 1
                for b in container.list_blobs(name_starts_with=prefix, include=["metadata"])
            )

    wait_for(lambda: checkpointed() >= per_partition, timeout=240, what="a quarter checkpointed")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert checkpointed() < per_partition * partitions, "killed too late to prove anything"

    second = subprocess.run(
        feeder,
        env={**env, "FEEDER_PAUSE": "0"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert checkpointed() == per_partition * partitions

    with duckdb.connect(str(database), read_only=True) as con:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (partition_id, sequence_number)) FROM analytics.raw.telemetry"
        ).fetchall()[0]
        per_part = dict(
            con.execute(
                "SELECT partition_id, max(sequence_number) FROM analytics.raw.telemetry GROUP BY ALL"
            ).fetchall()
        )
    assert rows == distinct == per_partition * partitions
    assert per_part == {str(p): per_partition - 1 for p in range(partitions)}

    # No hub to ask for lag; the local Kafka and Redis, so that status can read every store it reports on
    # (an unreachable store makes it exit 4).
    status_env = {k: v for k, v in env.items() if k != "EVENTHUB_NAMESPACE"}
    status_env.update(REDIS_URL=redis_url, KAFKA_BROKERS=kafka_brokers)
    status = run_cli("status", "--json", env=status_env, cwd=tmp_path)
    assert status.code == 0, status.stderr
    (mapping,) = status.json()["mappings"]
    assert mapping["target"] == "analytics.raw.telemetry"
    assert mapping["rows"] == per_partition * partitions
    assert mapping["dead_letters"] == {}
    assert {p["partition"]: p["sequence_number"] for p in mapping["partitions"]} == {
        str(p): per_partition - 1 for p in range(partitions)
    }
    assert "not configured" in mapping["lag_error"]
