"""simulate: Debezium-shaped messages on real Kafka topics, rows in real Postgres, reproducible with --seed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import base_env, run_cli

START = "2026-03-01T12:00:00Z"


def consume_all(
    brokers: str, topic: str, expected: int, timeout: float = 30
) -> list[tuple[bytes, dict[str, Any]]]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": f"read-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages: list[tuple[bytes, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for m in consumer.consume(500, timeout=1.0):
                if m.error() is None:
                    messages.append((m.key() or b"", json.loads(m.value() or b"null")))
    finally:
        consumer.close()
    return messages


def kafka_env(tmp_path: Path, brokers: str, name: str) -> dict[str, str]:
    return base_env(
        tmp_path,
        KAFKA_BROKERS=brokers,
        TOPIC_CONTENT=f"{name}-content",
        TOPIC_ENGAGE=f"{name}-engage",
        TOPIC_OUT=f"{name}-out",
    )


def simulate_kafka(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    result = run_cli("simulate", "--target", "kafka", "--json", *args, env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


def test_debezium_shapes_on_kafka(tmp_path: Path, kafka_brokers: str, unique_name: str) -> None:
    env = kafka_env(tmp_path, kafka_brokers, unique_name)
    summary = simulate_kafka(
        tmp_path,
        env,
        "--count",
        "300",
        "--rate",
        "0",
        "--seed",
        "5",
        "--start-time",
        START,
        "--first-id",
        "1000",
    )
    assert summary == {**summary, "events": 300, "content": 10, "first_id": 1000}

    content = consume_all(kafka_brokers, env["TOPIC_CONTENT"], 10)
    assert len(content) == 10
    for key, value in content:
        assert json.loads(key) == {"id": value["id"]}
        assert value["__op"] == "c" and value["__table"] == "content"
        assert value["slug"].startswith(f"seed-{value['content_type']}-")
        assert (value["length_seconds"] is None) == (value["content_type"] == "newsletter")
        assert value["publish_ts"].endswith("Z")
    content_ids = {v["id"] for _, v in content}

    events = consume_all(kafka_brokers, env["TOPIC_ENGAGE"], 300)
    assert len(events) == 300
    assert sorted(v["id"] for _, v in events) == list(range(1000, 1300))
    kinds = {v["event_type"] for _, v in events}
    assert kinds <= {"play", "pause", "click", "finish"} and "play" in kinds
    for key, value in events:
        assert json.loads(key) == value["content_id"] and value["content_id"] in content_ids
        assert value["__table"] == "engagement_events"
        assert (value["duration_ms"] is None) == (value["event_type"] == "click")
        assert isinstance(value["raw_payload"], str)  # jsonb arrives as a JSON string
        assert value["event_ts"] >= "2026-03-01T12:00:00"


def test_same_seed_same_traffic(tmp_path: Path, kafka_brokers: str, unique_name: str) -> None:
    runs = []
    for i in (1, 2):
        env = kafka_env(tmp_path, kafka_brokers, f"{unique_name}-{i}")
        simulate_kafka(
            tmp_path,
            env,
            "--count",
            "100",
            "--rate",
            "0",
            "--seed",
            "11",
            "--start-time",
            START,
            "--first-id",
            "1",
        )
        messages = consume_all(kafka_brokers, env["TOPIC_ENGAGE"], 100)
        runs.append(sorted((v["id"], json.dumps(v, sort_keys=True)) for _, v in messages))
    assert runs[0] == runs[1]
    assert len(runs[0]) == 100


def test_devices_content_types_and_payloads(tmp_path: Path, kafka_brokers: str, unique_name: str) -> None:
    env = kafka_env(tmp_path, kafka_brokers, unique_name)
    simulate_kafka(
        tmp_path, env, "--count", "50", "--rate", "0", "--device", "roku", "--content-type", "video",
        "--ensure-content", "3",
    )  # fmt: skip
    content = consume_all(kafka_brokers, env["TOPIC_CONTENT"], 3)
    assert {v["content_type"] for _, v in content} == {"video"}
    events = consume_all(kafka_brokers, env["TOPIC_ENGAGE"], 50)
    assert {v["device"] for _, v in events} == {"roku"}
    assert {v["raw_payload"] for _, v in events} == {json.dumps({"platform": "tv"})}

    env2 = kafka_env(tmp_path, kafka_brokers, unique_name + "-np")
    simulate_kafka(tmp_path, env2, "--count", "20", "--rate", "0", "--no-raw-payload")
    assert {v["raw_payload"] for _, v in consume_all(kafka_brokers, env2["TOPIC_ENGAGE"], 20)} == {None}


def test_rate_is_held(tmp_path: Path, kafka_brokers: str, unique_name: str) -> None:
    env = kafka_env(tmp_path, kafka_brokers, unique_name)
    summary = simulate_kafka(tmp_path, env, "--count", "30", "--rate", "40", "--jitter", "0")
    assert summary["events"] == 30
    assert summary["seconds"] >= 0.6  # 30 events at 40/s, first burst after ~0.75 s of pauses


def test_postgres_target_seeds_content_once(tmp_path: Path, pg_dsn: str, unique_name: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {unique_name}")
    dsn = f"{pg_dsn}?options=-csearch_path%3D{unique_name}"
    env = base_env(tmp_path)
    for _ in range(2):
        result = run_cli(
            "simulate", "--target", "postgres", "--dsn", dsn, "--count", "120", "--rate", "0", "--burst", "50",
            "--ensure-content", "6", "--json", env=env, cwd=tmp_path,
        )  # fmt: skip
        assert result.code == 0, result.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM content").fetchone() == (6,)
        assert conn.execute("SELECT count(*), count(DISTINCT user_id) FROM engagement_events").fetchone() == (
            240,
            240,
        )
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT event_type FROM engagement_events").fetchall()}
        assert kinds <= {"play", "pause", "click", "finish"}
        orphans = conn.execute(
            "SELECT count(*) FROM engagement_events e LEFT JOIN content c ON c.id = e.content_id WHERE c.id IS NULL"
        ).fetchone()
        assert orphans == (0,)


def test_postgres_target_needs_a_dsn(tmp_path: Path) -> None:
    result = run_cli("simulate", "--target", "postgres", "--count", "1", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 2
    assert "--dsn" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--content-type", "movie"], ["--start-time", "yesterday"]])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = run_cli("simulate", "--count", "1", *args, env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.stderr
