"""The dev host's Kafka source against a real broker: batches, retries, commits, SIGTERM and kill -9.

A small function app (written per test) appends every event it receives to a file, so duplicates and
losses are visible exactly; the real pipeline's exactly-once behaviour is covered in
tests/end_to_end/test_killed_host.py.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import base_env, run_cli, start_cli, stop, wait_for, write_app

APP = """
import json, os, time
import azure.functions as func

app = func.FunctionApp()
OUT = os.environ["TEST_OUT"]
MODE = os.environ.get("TEST_MODE", "ok")
RETRY = os.environ.get("TEST_RETRY", "3")


@app.function_name("record_engagement")
@app.kafka_trigger(arg_name="events", topic="%TOPIC_ENGAGE%", broker_list="KAFKA_BROKERS",
                   consumer_group="%KAFKA_CONSUMER_GROUP%", cardinality=func.Cardinality.MANY, data_type="binary")
@app.kafka_output(arg_name="out", topic="%TOPIC_OUT%", broker_list="KAFKA_BROKERS")
@app.retry(strategy="fixed_delay", max_retry_count=RETRY, delay_interval="00:00:00.200")
def record_engagement(events: list[func.KafkaEvent], out: func.Out[list[str]], context: func.Context) -> None:
    retry = context.retry_context.retry_count
    if MODE == "always_fail" or (MODE == "fail_first" and retry == 0):
        raise RuntimeError(f"simulated sink outage (attempt {retry + 1})")
    if MODE == "slow":
        time.sleep(0.3)
    lines = [
        json.dumps({"id": json.loads(e.get_body())["id"], "key": e.key, "topic": e.topic, "partition": e.partition,
                    "offset": e.offset, "timestamp": e.timestamp, "retry": retry, "batch": len(events)})
        for e in events
    ]
    with open(OUT, "a", encoding="utf-8") as f:
        f.write("\\n".join(lines) + "\\n")
        f.flush()
        os.fsync(f.fileno())
    out.set([json.dumps({"Key": e.key, "Value": e.get_body().decode()}) for e in events])
"""


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def setup(tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str) -> dict[str, Any]:
    write_app(tmp_path / "app", "recorder", APP)
    env = base_env(
        tmp_path,
        KAFKA_BROKERS=kafka_brokers,
        REDIS_URL=redis_url,
        TOPIC_CONTENT=f"{unique_name}-content",
        TOPIC_ENGAGE=f"{unique_name}-engage",
        TOPIC_OUT=f"{unique_name}-out",
        KAFKA_CONSUMER_GROUP=f"{unique_name}-group",
        TEST_OUT=str(tmp_path / "received.jsonl"),
    )
    return {"env": env, "out": tmp_path / "received.jsonl", "cwd": tmp_path, "app": str(tmp_path / "app")}


def simulate(setup: dict[str, Any], count: int, seed: int = 1) -> None:
    result = run_cli(
        "simulate", "--target", "kafka", "--count", str(count), "--rate", "0", "--burst", "1000",
        "--seed", str(seed), "--json", env=setup["env"], cwd=setup["cwd"],
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["events"] == count


def run_args(setup: dict[str, Any], *extra: str) -> list[str]:
    return ["run", "--app", "recorder", "--app-dir", setup["app"], "--json", *extra]


def host(setup: dict[str, Any], *extra: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    result = run_cli(*run_args(setup, *extra), env=env or setup["env"], cwd=setup["cwd"], timeout=timeout)
    assert result.code == 0, result.stderr[-3000:]
    return result.json()


def committed_lag(setup: dict[str, Any]) -> int:
    report = run_cli("status", "--json", env=setup["env"], cwd=setup["cwd"]).json()
    engage = next(t for t in report["kafka"]["topics"] if t["topic"] == setup["env"]["TOPIC_ENGAGE"])
    return sum(p["lag"] for p in engage["partitions"])


def consume_count(brokers: str, topic: str, expected: int, timeout: float = 30) -> int:
    import time

    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"check-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < expected and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(500, timeout=1.0) if m.error() is None)
        seen += sum(1 for m in consumer.consume(500, timeout=1.0) if m.error() is None)
    finally:
        consumer.close()
    return seen


def test_drains_every_event_once_and_commits(setup: dict[str, Any], kafka_brokers: str) -> None:
    simulate(setup, 3000)
    summary = host(setup, "--exit-when-idle", "2")
    got = records(setup["out"])
    assert len(got) == 3000
    assert len({r["id"] for r in got}) == 3000
    assert summary["events"] == 3000
    assert summary["failed_batches"] == summary["abandoned_batches"] == 0
    assert max(r["batch"] for r in got) <= 64  # the Kafka extension's default maxBatchSize
    first = got[0]
    assert first["topic"] == setup["env"]["TOPIC_ENGAGE"]
    assert first["key"].startswith('"')  # Debezium's key: the content id as a JSON string
    assert first["timestamp"].endswith("Z")
    # offsets per partition are consecutive: nothing skipped, nothing repeated
    by_partition: dict[int, list[int]] = {}
    for r in got:
        by_partition.setdefault(r["partition"], []).append(r["offset"])
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))
    assert committed_lag(setup) == 0
    assert consume_count(kafka_brokers, setup["env"]["TOPIC_OUT"], 3000) == 3000  # the output binding


def test_batch_size_override(setup: dict[str, Any]) -> None:
    simulate(setup, 500)
    host(setup, "--exit-when-idle", "2", "--batch-size", "7")
    got = records(setup["out"])
    assert len(got) == 500
    assert max(r["batch"] for r in got) <= 7


def test_failed_attempts_are_retried_before_the_commit(setup: dict[str, Any]) -> None:
    simulate(setup, 400)
    summary = host(setup, "--exit-when-idle", "2", env={**setup["env"], "TEST_MODE": "fail_first"})
    got = records(setup["out"])
    assert len(got) == 400
    assert len({r["id"] for r in got}) == 400
    assert {r["retry"] for r in got} == {1}  # every batch succeeded on its first retry
    assert summary["retries"] == summary["batches"] > 0
    assert committed_lag(setup) == 0


def test_exhausted_retries_move_on_like_the_host(setup: dict[str, Any]) -> None:
    simulate(setup, 100)
    summary = host(
        setup, "--exit-when-idle", "2", env={**setup["env"], "TEST_MODE": "always_fail", "TEST_RETRY": "1"}
    )
    assert records(setup["out"]) == []
    assert summary["failed_batches"] == summary["batches"] > 0
    assert committed_lag(setup) == 0  # commitOnFailure: the host commits after the last retry


def test_sigterm_finishes_the_batch_in_flight_then_resumes_without_duplicates(setup: dict[str, Any]) -> None:
    simulate(setup, 2000)
    env = {**setup["env"], "TEST_MODE": "slow"}
    process = start_cli(
        *run_args(setup, "--batch-size", "50"), env=env, cwd=setup["cwd"], log=setup["cwd"] / "h1.log"
    )
    wait_for(lambda: len(records(setup["out"])) >= 200, timeout=120, what="first batches")
    assert stop(process, signal.SIGTERM) == 0
    partial = records(setup["out"])
    assert 200 <= len(partial) < 2000
    host(setup, "--exit-when-idle", "2", "--batch-size", "50")
    got = records(setup["out"])
    assert len(got) == 2000
    assert len({r["id"] for r in got}) == 2000  # graceful: the last batch was committed, nothing replays


def test_sigterm_during_endless_retries_exits_0_without_committing(setup: dict[str, Any]) -> None:
    simulate(setup, 50)
    env = {**setup["env"], "TEST_MODE": "always_fail", "TEST_RETRY": "-1"}
    log = setup["cwd"] / "h.log"
    process = start_cli(*run_args(setup), env=env, cwd=setup["cwd"], log=log)
    wait_for(lambda: "retry 3 in" in log.read_text(errors="replace"), timeout=120, what="retries")
    assert stop(process, signal.SIGTERM) == 0
    assert "abandoned on shutdown" in log.read_text(errors="replace")
    assert committed_lag(setup) == 50  # the batch will be delivered again


def test_kill_9_loses_nothing_and_replays_at_most_the_batches_not_yet_committed(
    setup: dict[str, Any],
) -> None:
    simulate(setup, 2000)
    env = {**setup["env"], "TEST_MODE": "slow"}
    process = start_cli(
        *run_args(setup, "--batch-size", "50"), env=env, cwd=setup["cwd"], log=setup["cwd"] / "h1.log"
    )
    wait_for(lambda: len(records(setup["out"])) >= 300, timeout=120, what="first batches")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    host(setup, "--exit-when-idle", "2", "--batch-size", "50")
    got = records(setup["out"])
    counts = Counter(r["id"] for r in got)
    assert len(counts) == 2000  # no loss
    # Delivered twice: at most the batch in flight and the batches finished since the last auto-commit
    # (every 200 ms, as the extension; a batch takes 300 ms here, so at most one).
    assert sum(n - 1 for n in counts.values()) <= 100


def test_exit_when_idle_stops_when_the_topic_does_not_exist(setup: dict[str, Any]) -> None:
    """Nothing to read is drained: the host stops instead of waiting for a topic nobody created."""
    summary = host(setup, "--exit-when-idle", "2", timeout=90)
    assert summary["events"] == 0
    assert not records(setup["out"])
