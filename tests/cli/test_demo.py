"""demo: the README's main job from a clean folder, the path demo -> status -> demo --stop, signals, a busy
chDB folder, and each way the demo finds (or fails to find) Redis.

Every branch is chosen on purpose, whatever runs on the machine: REDIS_URL is set or not, ``--local-redis``
points at a Redis that answers (the test services') or at a closed port, and PATH holds a ``redis-server``
or nothing at all. Tables are read at 80 columns, as on a small terminal.
"""

from __future__ import annotations

import http.client
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.demo.state import chdb_holder, fill_from_demo, write_demo_env
from tests.support.cli import base_env, run_cli, start_cli, stop, wait_for


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
    if not folder.exists():
        folder.mkdir()
        (folder / "redis-server").symlink_to(real)
    return str(folder)


def _empty_bin(tmp_path: Path) -> str:
    folder = tmp_path / "empty-bin"
    folder.mkdir(exist_ok=True)
    return str(folder)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The demo's environment with ``redis-server`` on PATH and an 80-column terminal width."""
    return base_env(tmp_path, PATH=_bin_with_redis_server(tmp_path), COLUMNS="80", **extra)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _own_pid(folder: Path) -> int:
    return int((folder / ".streamduck" / "redis" / "redis.pid").read_text())


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _writing(process: subprocess.Popen[bytes]) -> bool:
    """The demo has its DuckDB file open: it is past its start and writing events."""
    try:
        links = [str(fd.readlink()) for fd in Path(f"/proc/{process.pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link.endswith("streamduck_demo.duckdb") for link in links)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A clean project folder; whatever Redis a demo left running there is stopped afterwards."""
    yield tmp_path
    pid_file = tmp_path / ".streamduck" / "redis" / "redis.pid"
    if pid_file.exists():
        run_cli("demo", "--stop", env=_env(tmp_path), cwd=tmp_path)
    assert not pid_file.exists()


@pytest.mark.integration
def test_demo_then_status_then_stop_keeps_the_results(folder: Path) -> None:
    env = _env(folder)
    first = run_cli("demo", "--events", "600", "--seed", "3", "--json", env=env, cwd=folder, timeout=300)
    assert first.code == 0, first.stderr[-3000:]
    summary = first.json()
    assert summary["redis"]["source"] == "the demo's own redis-server, data in .streamduck/redis"
    eventhubs = summary["pipelines"]["eventhubs"]
    (mapping,) = eventhubs["mappings"]
    assert mapping["accounted_for"] is True
    assert mapping["last_compaction"]["checkpointed"] is True  # the compaction timer ran once
    assert mapping["rows"] + sum(mapping["dead_letters"].values()) == mapping["events_generated"]
    engagement = summary["pipelines"]["engagement"]
    assert engagement["clickhouse_rows"] == 600
    assert all(e["title"] for e in engagement["leaderboard_top5_last_60_min"])
    url = summary["redis"]["url"]
    pid = _own_pid(folder)
    assert _alive(pid) and _answers(url)  # left running for status and the dashboard
    saved = (folder / ".streamduck" / "demo.env").read_text()
    assert f"REDIS_URL='{url}'" in saved and "EVENTHUBNAME_1='telemetry'" in saved

    # status in the same folder, with nothing configured: the demo's mapping and its leaderboard.
    status = run_cli("status", "--json", "--timeout", "2", env=env, cwd=folder, timeout=120)
    assert status.code == 0, (
        status.stderr
    )  # the demo needs no broker: Kafka is not configured, not unavailable
    report = status.json()
    assert report["unavailable"] == [] and report["kafka"]["not_configured"]
    (seen,) = report["mappings"]
    assert seen["rows"] == mapping["rows"] and seen["error"] is None
    assert [p["sequence_number"] for p in seen["partitions"]] == [
        mapping["watermarks"][p]["sequence_number"] for p in ("0", "1", "2", "3")
    ]
    assert report["leaderboard"]["entries"] and not report["leaderboard"].get("error")

    # Again, as tables on 80 columns: the same Redis, and the next commands.
    again = run_cli("demo", "--events", "200", "--seed", "4", env=env, cwd=folder, timeout=300)
    assert again.code == 0, again.stderr[-3000:]
    assert _own_pid(folder) == pid
    assert (folder / ".streamduck" / "demo.env").read_text() == saved  # still the demo's mapping and Redis
    assert "Leaderboard" in again.stdout and "Next:" in again.stdout
    steps = again.stdout.split("Next:", 1)[1]
    assert re.search(r"streamduck status +# ", steps)
    assert re.search(r"streamduck dashboard +# .*http://127\.0\.0\.1:8050/", steps)
    assert re.search(r"streamduck demo --stop +# stop the demo's Redis", steps)
    tables = [line for line in again.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and all(len(line) <= 80 for line in tables)
    client = redis.Redis.from_url(url)
    keys = client.dbsize()
    client.close()

    # demo --stop stops it; the next demo starts it again on its data (append-only file).
    stopped = run_cli("demo", "--stop", "--json", env=env, cwd=folder)
    assert stopped.json()["stopped"] is True and stopped.json()["pid"] == pid
    assert not _alive(pid) and not _answers(url)
    assert run_cli("demo", "--stop", env=env, cwd=folder).stdout.startswith(
        "the demo's redis-server is not running"
    )
    third = run_cli("demo", "--events", "50", "--json", env=env, cwd=folder, timeout=300)
    assert third.code == 0, third.stderr[-3000:]
    assert third.json()["redis"]["url"] == url  # the same port: demo.env still holds
    client = redis.Redis.from_url(url)
    assert client.dbsize() >= keys  # what the earlier runs wrote is back
    client.close()


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_demo_stops_the_redis_it_started(folder: Path, sig: signal.Signals) -> None:
    log = folder / "demo.log"
    process = start_cli("demo", "--events", "400000", env=_env(folder), cwd=folder, log=log)
    pid_file = folder / ".streamduck" / "redis" / "redis.pid"
    wait_for(lambda: _writing(process), timeout=120, what="the demo to start writing")
    redis_pid = _own_pid(folder)
    code = stop(process, sig)
    output = log.read_text()
    assert code == 128 + sig, output[-3000:]
    assert f"demo stopped by {sig.name}" in output
    assert "Traceback" not in output
    wait_for(lambda: not _alive(redis_pid), timeout=15, what="the demo's Redis to stop")
    assert not pid_file.exists()


@pytest.mark.integration
def test_a_signal_mid_demo_leaves_an_earlier_demos_redis_tracked(folder: Path) -> None:
    env = _env(folder)
    assert run_cli("demo", "--events", "100", "--json", env=env, cwd=folder, timeout=300).code == 0
    redis_pid = _own_pid(folder)
    log = folder / "demo.log"
    process = start_cli("demo", "--events", "400000", env=env, cwd=folder, log=log)
    wait_for(lambda: _writing(process), timeout=120, what="the demo to start writing")
    assert stop(process, signal.SIGTERM) == 128 + signal.SIGTERM
    assert (
        _alive(redis_pid) and _own_pid(folder) == redis_pid
    )  # not this run's: kept, and demo --stop finds it
    assert run_cli("demo", "--stop", env=env, cwd=folder).code == 0
    assert not _alive(redis_pid)


@pytest.mark.integration
def test_a_busy_chdb_folder_names_the_dashboard_and_the_rest_still_runs(folder: Path) -> None:
    env = _env(folder, PYTHONUNBUFFERED="1")
    assert run_cli("demo", "--events", "100", "--json", env=env, cwd=folder, timeout=300).code == 0
    log = folder / "dashboard.log"
    dashboard = start_cli("dashboard", "--port", "0", env=env, cwd=folder, log=log)
    try:
        found: list[str] = []

        def listening() -> bool:
            found.extend(re.findall(r"http://127\.0\.0\.1:(\d+)/", log.read_text()))
            return bool(found)

        wait_for(listening, timeout=60, what="the dashboard")
        connection = http.client.HTTPConnection("127.0.0.1", int(found[0]), timeout=60)
        connection.request("GET", "/api/recent?rows=10")  # opens the embedded ClickHouse
        assert connection.getresponse().status == 200
        connection.close()
        result = run_cli("demo", "--events", "300", env=env, cwd=folder, timeout=300)
    finally:
        stop(dashboard)
    assert result.code == 4, result.stderr[-3000:]
    everything = result.stdout + result.stderr
    assert f"`streamduck dashboard --port 0` (pid {dashboard.pid})" in result.stderr
    assert "CLICKHOUSE_CHDB_PATH" in result.stderr and f"kill {dashboard.pid}" in result.stderr
    assert result.stderr.startswith("error: demo incomplete; engagement not run:")
    assert (
        "Code: 76" not in everything and "EmbeddedServer" not in everything and "Traceback" not in everything
    )
    # What did run is shown: the Event Hubs table with its rows.
    assert "Event Hubs -> DuckDB" in result.stdout and "300" in result.stdout
    assert "engagement not run" in result.stdout and "Next:" not in result.stdout


def test_the_demo_settings_fill_in_only_what_is_unset(tmp_path: Path) -> None:
    saved = tmp_path / "demo.env"
    write_demo_env(
        {"EVENTHUBNAME_1": "telemetry", "MOTHERDUCK_1_TABLE": "t", "REDIS_URL": "redis://x:1/0"}, saved
    )
    empty: dict[str, str] = {}
    assert fill_from_demo(empty, saved) == ["EVENTHUBNAME_1", "MOTHERDUCK_1_TABLE", "REDIS_URL"]
    configured = {"EVENTHUBNAME_2": "orders", "REDIS_URL": "redis://mine:6379/0"}
    assert fill_from_demo(configured, saved) == []  # a real configuration is never mixed with the demo's
    assert configured == {"EVENTHUBNAME_2": "orders", "REDIS_URL": "redis://mine:6379/0"}


def test_the_chdb_holder_is_the_process_with_the_folder_open(tmp_path: Path) -> None:
    folder = tmp_path / "chdb"
    folder.mkdir()
    (folder / "status").write_text("PID: 1\nStarted at: now\n")  # a stale pid: not the holder
    assert chdb_holder(folder) is None
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; f = open(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
            str(folder / "status"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        found = chdb_holder(folder)
        assert found is not None and found[0] == holder.pid and "time.sleep" in found[1]
    finally:
        holder.kill()
        holder.wait()
    assert chdb_holder(folder) is None


@pytest.mark.integration
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


@pytest.mark.integration
def test_configured_redis_that_does_not_answer(tmp_path: Path, redis_url: str) -> None:
    # Even with a local Redis answering and redis-server on PATH, a set REDIS_URL must answer itself.
    env = base_env(tmp_path, REDIS_URL=_closed_url(), PATH=_bin_with_redis_server(tmp_path))
    result = run_cli("demo", "--events", "10", "--local-redis", redis_url, env=env, cwd=tmp_path)
    assert result.code == 4
    assert "REDIS_URL is set but Redis does not answer" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_local_redis_that_answers_is_used_without_redis_server(
    tmp_path: Path, redis_url: str, unique_name: str
) -> None:
    env = base_env(tmp_path, REDIS_KEY_PREFIX=f"{unique_name}:", PATH=_empty_bin(tmp_path))
    result = run_cli(
        "demo", "--events", "10", "--json", "--local-redis", redis_url, env=env, cwd=tmp_path, timeout=300
    )
    assert result.code == 0, result.stderr[-2000:]
    assert result.json()["redis"] == {"url": redis_url, "source": "local (--local-redis)"}


@pytest.mark.integration
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


@pytest.mark.integration
def test_the_demo_never_exports_to_application_insights(folder: Path, redis_url: str) -> None:
    """With a connection string in the environment (a deployed app's settings pulled down, say), the demo's
    metrics stay local: the CLI installs its own MeterProvider before the app is imported."""
    from tests.telemetry.receiver import receiver

    with receiver() as ingestion:
        env = _env(
            folder,
            REDIS_URL=redis_url,
            APPLICATIONINSIGHTS_CONNECTION_STRING=(
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                f"IngestionEndpoint={ingestion.url}/;LiveEndpoint={ingestion.url}/"
            ),
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        )
        done = run_cli("demo", "--events", "200", "--json", env=env, cwd=folder, timeout=300)
        assert done.code == 0, done.stderr[-3000:]
        assert done.json()["pipelines"]["engagement"]["clickhouse_rows"] == 200
        assert ingestion.received("/v2.1/track") == []
