"""demo: the README's main job from a clean folder, and what it says when Redis cannot be had."""

from __future__ import annotations

import socket
from pathlib import Path

import redis

from tests.cli.support import base_env, run_cli


def test_demo_runs_every_pipeline_from_a_clean_folder(tmp_path: Path) -> None:
    env = base_env(tmp_path)  # no REDIS_URL: a local Redis or a temporary redis-server is used
    result = run_cli("demo", "--events", "600", "--seed", "3", "--json", env=env, cwd=tmp_path, timeout=300)
    assert result.code == 0, result.stderr[-3000:]
    summary = result.json()
    assert summary["redis"]["source"] in {"temporary redis-server started by the demo", "local default"}
    eventhubs = summary["pipelines"]["eventhubs"]
    assert eventhubs["mappings"], eventhubs
    for mapping in eventhubs["mappings"]:
        assert mapping["accounted_for"] is True
        assert mapping["rows"] + sum(mapping["dead_letters"].values()) == mapping["events_generated"]
    engagement = summary["pipelines"]["engagement"]
    assert engagement["clickhouse_rows"] == 600
    assert engagement["leaderboard_top5_last_60_min"]
    assert all(e["title"] for e in engagement["leaderboard_top5_last_60_min"])
    assert (tmp_path / "data").is_dir()  # local DuckDB files under STREAMDUCK_DATA_DIR

    table = run_cli("demo", "--events", "200", env=env, cwd=tmp_path, timeout=300)
    assert table.code == 0, table.stderr[-3000:]
    assert "Leaderboard" in table.stdout and "ClickHouse rows" in table.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_configured_redis_that_does_not_answer(tmp_path: Path) -> None:
    env = base_env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    result = run_cli("demo", "--events", "10", env=env, cwd=tmp_path)
    assert result.code == 4
    assert "REDIS_URL is set but Redis does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_redis_and_no_redis_server(tmp_path: Path) -> None:
    try:
        default_answers = bool(redis.Redis(port=6379, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        default_answers = False
    env = base_env(tmp_path, PATH=str(tmp_path / "empty-bin"))  # no redis-server to start
    result = run_cli("demo", "--events", "10", "--json", env=env, cwd=tmp_path, timeout=300)
    if default_answers:  # a Redis on the default port is used as is
        assert result.code == 0, result.stderr[-2000:]
        assert result.json()["redis"]["source"] == "local default"
    else:
        assert result.code == 4
        assert "redis-server is not installed" in result.stderr
        assert "REDIS_URL" in result.stderr
