"""demo: the README's main job from a clean folder, and each way it finds (or fails to find) Redis.

Every branch is chosen on purpose, whatever runs on the machine: REDIS_URL is set or not, ``--local-redis``
points at a Redis that answers (the test services') or at a closed port, and PATH holds a ``redis-server``
or nothing at all.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.support.cli import base_env, run_cli

# integration: these tests take the Redis service (redis_url) or have the demo start a redis-server of its
# own (the binary `bash scripts/services.sh install redis` provides), so the module runs in `make test` only.
pytestmark = pytest.mark.integration


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def _bin_with_redis_server(tmp_path: Path) -> str:
    """A PATH holding only ``redis-server`` (scripts/services.sh installs it for the Redis service)."""
    real = shutil.which("redis-server")
    if real is None:
        pytest.fail("redis-server not found on PATH; run `bash scripts/services.sh install redis`")
    folder = tmp_path / "redis-bin"
    folder.mkdir()
    (folder / "redis-server").symlink_to(real)
    return str(folder)


def _empty_bin(tmp_path: Path) -> str:
    folder = tmp_path / "empty-bin"
    folder.mkdir(exist_ok=True)
    return str(folder)


def test_demo_runs_every_pipeline_from_a_clean_folder(tmp_path: Path) -> None:
    # No REDIS_URL and no --local-redis: the demo starts (and stops) its own redis-server, even when some
    # Redis runs on the default port (it never writes into a Redis nobody named).
    env = base_env(tmp_path, PATH=_bin_with_redis_server(tmp_path))
    args = ("demo", "--events", "600", "--seed", "3", "--json")
    result = run_cli(*args, env=env, cwd=tmp_path, timeout=300)
    assert result.code == 0, result.stderr[-3000:]
    summary = result.json()
    assert summary["redis"]["source"] == "temporary redis-server started by the demo"
    eventhubs = summary["pipelines"]["eventhubs"]
    assert eventhubs["mappings"], eventhubs
    for mapping in eventhubs["mappings"]:
        assert mapping["accounted_for"] is True
        assert mapping["last_compaction"]["checkpointed"] is True  # the compaction timer ran once
        assert mapping["last_compaction"]["rows_after"] >= mapping["rows"]
        assert mapping["rows"] + sum(mapping["dead_letters"].values()) == mapping["events_generated"]
    engagement = summary["pipelines"]["engagement"]
    assert engagement["clickhouse_rows"] == 600
    assert engagement["leaderboard_top5_last_60_min"]
    assert all(e["title"] for e in engagement["leaderboard_top5_last_60_min"])
    assert (tmp_path / "data").is_dir()  # local DuckDB files under STREAMDUCK_DATA_DIR
    port = int(summary["redis"]["url"].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as probe:  # stopped at the end
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_configured_redis_is_used_and_tables_are_printed(
    tmp_path: Path, redis_url: str, unique_name: str
) -> None:
    env = base_env(
        tmp_path, REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"{unique_name}:", PATH=_empty_bin(tmp_path)
    )
    table = run_cli(
        "demo", "--events", "200", "--local-redis", _closed_url(), env=env, cwd=tmp_path, timeout=300
    )
    assert table.code == 0, table.stderr[-3000:]
    assert "Leaderboard" in table.stdout and "ClickHouse rows" in table.stdout
    assert f"Redis: {redis_url} (configured (REDIS_URL))" in table.stdout


def test_configured_redis_that_does_not_answer(tmp_path: Path, redis_url: str) -> None:
    # Even with a local Redis answering and redis-server on PATH, a set REDIS_URL must answer itself.
    env = base_env(tmp_path, REDIS_URL=_closed_url(), PATH=_bin_with_redis_server(tmp_path))
    result = run_cli("demo", "--events", "10", "--local-redis", redis_url, env=env, cwd=tmp_path)
    assert result.code == 4
    assert "REDIS_URL is set but Redis does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_local_redis_that_answers_is_used_without_redis_server(
    tmp_path: Path, redis_url: str, unique_name: str
) -> None:
    env = base_env(tmp_path, REDIS_KEY_PREFIX=f"{unique_name}:", PATH=_empty_bin(tmp_path))
    result = run_cli(
        "demo", "--events", "10", "--json", "--local-redis", redis_url, env=env, cwd=tmp_path, timeout=300
    )
    assert result.code == 0, result.stderr[-2000:]
    assert result.json()["redis"] == {"url": redis_url, "source": "local (--local-redis)"}


def test_no_redis_and_no_redis_server(tmp_path: Path) -> None:
    closed = _closed_url()
    env = base_env(tmp_path, PATH=_empty_bin(tmp_path))  # no redis-server to start
    result = run_cli("demo", "--events", "10", "--json", "--local-redis", closed, env=env, cwd=tmp_path)
    assert result.code == 4
    assert "Traceback" not in result.stderr
    assert f"none answers at {closed}" in result.stderr
    assert "redis-server is not installed" in result.stderr
    assert "REDIS_URL" in result.stderr
    assert result.stdout == ""
