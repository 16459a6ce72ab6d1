"""`streamduck verify` against the real dev host: local Kafka, Redis, embedded chDB.

The dev host (`streamduck run`) consumes the CDC topics with the registered engagement functions while
`streamduck verify --json` runs as a subprocess. Embedded chDB allows one process per folder, so the host is
stopped once it committed verify's records; verify then reads ClickHouse (docs/cli.md, "streamduck verify").
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from shared.engagement.leaderboard import redis_stores
from shared.settings import load_settings
from tests.support.cli import ROOT, base_env, command, run_cli, start_cli, wait_for
from tests.verify.support import committed

STEPS = ["kafka_send", "clickhouse_row", "redis_leaderboard", "enriched_topic"]


def kafka_env(tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str) -> dict[str, str]:
    return base_env(
        tmp_path,
        KAFKA_BROKERS=kafka_brokers,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"{unique_name}:",
        TOPIC_CONTENT=f"{unique_name}-content",
        TOPIC_ENGAGE=f"{unique_name}-engage",
        TOPIC_OUT=f"{unique_name}-out",
        KAFKA_CONSUMER_GROUP=f"{unique_name}-group",
    )


def create_topics(env: dict[str, str]) -> None:
    from confluent_kafka.admin import AdminClient

    from shared.simulate.targets import create_topics as create

    admin = AdminClient({"bootstrap.servers": env["KAFKA_BROKERS"]})
    create(admin, [env["TOPIC_CONTENT"], env["TOPIC_ENGAGE"], env["TOPIC_OUT"]], partitions=3)


def verify_with_dev_host(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Start the dev host, run `verify --json ARGS`, stop the host once it committed verify's two records."""
    create_topics(env)
    host = start_cli(
        "run", "--app-dir", str(ROOT), "-f", "engagement_content_cdc", "-f", "engagement_enrich", "--no-live",
        env=env, cwd=tmp_path, log=tmp_path / "host.log",
    )  # fmt: skip
    try:
        verify = subprocess.Popen(
            command("verify", "--only", "kafka", "--json", "--timeout", "180", *args),
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        group, brokers = env["KAFKA_CONSUMER_GROUP"], env["KAFKA_BROKERS"]
        wait_for(
            lambda: (
                committed(brokers, group, env["TOPIC_CONTENT"]) >= 1
                and committed(brokers, group, env["TOPIC_ENGAGE"]) >= 1
            ),
            timeout=180,
            interval=0.5,
            what="the dev host to commit verify's content and engagement records",
        )
    finally:
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=60) == 0, (tmp_path / "host.log").read_text()[-3000:]
    stdout, stderr = verify.communicate(timeout=240)
    return verify.returncode, json.loads(stdout), stderr


def stores(env: dict[str, str], tmp_path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """What ClickHouse (read in its own process: one chDB engine per folder) and Redis hold of the run."""
    script = """
import json, sys
from shared.settings import load_settings
from shared.engagement.clickhouse import Warehouse
s = load_settings()
w = Warehouse.from_settings(s)
rows = w.query("SELECT content_known, title FROM {db}.engagement_enriched FINAL WHERE id = {id:Int64}",
               {"id": int(sys.argv[1])})
content = w.query("SELECT count() FROM {db}.content WHERE id = {cid:UUID}", {"cid": sys.argv[2]})
print(json.dumps({"rows": [list(r) for r in rows], "content": content[0][0]}))
"""
    marks = report["marks"]
    done = subprocess.run(
        [sys.executable, "-c", script, str(marks["engagement_id"]), marks["content_id"]],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    settings = load_settings(env)
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        board, store = redis_stores(settings, client)
        keys = [k.decode() for k in client.scan_iter(f"{settings.redis_key_prefix}zset:eng:minute:*")]
        result["scores"] = {k: client.zscore(k, marks["content_id"]) for k in keys}
        result["content_store"] = client.hget(store.data_key, marks["content_id"])
        result["watermarks"] = client.hgetall(board.watermark_key(env["TOPIC_ENGAGE"]))
        result["top"] = [
            member
            for member, _ in board.top(board.max_window_minutes, 100, int(__import__("time").time() * 1000))
        ]
    finally:
        client.close()
    return result


def test_verify_every_step_ok_through_the_dev_host(
    tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str
) -> None:
    env = kafka_env(tmp_path, kafka_brokers, redis_url, unique_name)
    code, report, stderr = verify_with_dev_host(tmp_path, env)

    assert code == 0, (stderr, report["steps"])
    assert report["ok"] is True
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == STEPS
    assert {name: s["status"] for name, s in steps.items()} == dict.fromkeys(STEPS, "ok")
    assert steps["kafka_send"]["target"] == f"{kafka_brokers}: {unique_name}-content, {unique_name}-engage"
    assert steps["clickhouse_row"]["target"] == f"analytics.engagement_enriched (chDB {tmp_path / 'chdb'})"
    assert steps["redis_leaderboard"]["target"].startswith(f"{unique_name}:zset:eng:minute:")
    assert steps["enriched_topic"]["target"] == f"{kafka_brokers}: {unique_name}-out"
    assert all(isinstance(s["seconds"], float) for s in report["steps"])

    marks = report["marks"]
    assert report["run_id"].startswith("verify-")
    assert marks["content_id"].startswith("5d5d5d5d-")
    assert marks["engagement_id"] >= 9_000_000_000_000_000_000

    held = stores(env, tmp_path, report)
    assert held["rows"] == [[True, f"StreamDuck verify {report['run_id']}"]]
    bucket = steps["redis_leaderboard"]["target"].split(" ")[0]
    assert held["scores"][bucket] == 4.2
    # The test content is counted, but in a minute no leaderboard window reads: the real top-N never shows it.
    assert marks["content_id"] not in held["top"]


def test_verify_cleanup_deletes_the_runs_data(
    tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str
) -> None:
    env = kafka_env(tmp_path, kafka_brokers, redis_url, unique_name)
    code, report, stderr = verify_with_dev_host(tmp_path, env, "--cleanup")

    assert code == 0, (stderr, report["steps"])
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == [*STEPS, "cleanup_clickhouse", "cleanup_redis"]
    assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
    assert steps["cleanup_clickhouse"]["detail"] == "deleted 1 engagement_rows, 1 content_rows"
    assert steps["cleanup_redis"]["detail"] == "deleted 1 leaderboard_members, 1 content"

    held = stores(env, tmp_path, report)
    assert held["rows"] == []
    assert held["content"] == 0
    assert all(score is None for score in held["scores"].values())
    assert held["content_store"] is None
    assert held["watermarks"], "the offset watermarks belong to the pipeline and stay"


def test_verify_names_the_steps_that_did_not_arrive(
    tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str
) -> None:
    env = kafka_env(tmp_path, kafka_brokers, redis_url, unique_name)  # no dev host runs

    result = run_cli("verify", "--only", "kafka", "--json", "--timeout", "3", env=env, cwd=tmp_path)

    assert result.code == 5, result.stderr
    report = result.json()
    assert report["ok"] is False
    assert {s["step"]: s["status"] for s in report["steps"]} == {
        "kafka_send": "ok",
        "clickhouse_row": "missing",
        "redis_leaderboard": "missing",
        "enriched_topic": "missing",
    }
    assert result.stderr.strip() == (
        "error: verify failed: clickhouse_row missing, redis_leaderboard missing, enriched_topic missing"
    )
