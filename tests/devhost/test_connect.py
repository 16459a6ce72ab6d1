"""run: a source that cannot connect is reported (live view, progress lines, --json) and ends the run with exit 4."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.support.cli import ROOT, base_env, run_cli, start_cli, stop, wait_for

SENTENCE = (
    "cannot reach Kafka at 127.0.0.1:{port} (KAFKA_BROKERS): connection refused (nothing listens there); "
    "try: start a broker there (bash scripts/services.sh start kafka) or set KAFKA_BROKERS"
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # waits out --connect-timeout against a closed port
def test_kafka_down_is_reported_and_ends_the_run_with_exit_4(tmp_path: Path) -> None:
    port = closed_port()
    env = base_env(tmp_path, KAFKA_BROKERS=f"127.0.0.1:{port}", COLUMNS="80")
    args = ("run", "-f", "engagement_enrich", "--app-dir", str(ROOT), "--connect-timeout", "4")
    result = run_cli(*args, "--json", "--exit-when-idle", "1", env=env, cwd=tmp_path, timeout=90)
    assert result.code == 4, result.stderr
    summary = result.json()
    assert summary["sources"] == [
        {
            "function": "engagement_enrich",
            "source": "kafka:engagement_events.flat (streamduck-engagement)",
            "connected": False,
            "error": SENTENCE.format(port=port),
        }
    ]
    assert summary["unreachable"] == [SENTENCE.format(port=port)]
    assert result.stderr.splitlines()[-1] == f"error: {SENTENCE.format(port=port)}"


@pytest.mark.slow  # waits for progress lines while the broker never answers
def test_progress_lines_name_the_source_that_is_not_connected(tmp_path: Path) -> None:
    port = closed_port()
    env = base_env(tmp_path, KAFKA_BROKERS=f"127.0.0.1:{port}", COLUMNS="80")
    result = run_cli(
        "run",
        "-f",
        "engagement_enrich",
        "--app-dir",
        str(ROOT),
        "--connect-timeout",
        "25",
        env=env,
        cwd=tmp_path,
        timeout=120,
    )  # fmt: skip  (progress lines come every 10 s: 25 s leaves room for two on a busy machine)
    assert result.code == 4
    assert f"engagement_enrich: not connected: {SENTENCE.format(port=port)}" in result.stderr.splitlines()


def test_a_reachable_broker_without_the_topic_yet_is_connected(tmp_path: Path, kafka_brokers: str) -> None:
    env = base_env(
        tmp_path, KAFKA_BROKERS=kafka_brokers, TOPIC_ENGAGE=f"absent_{tmp_path.name}", COLUMNS="80"
    )
    log = tmp_path / "run.log"
    process = start_cli(
        "run", "-f", "engagement_enrich", "--app-dir", str(ROOT), "--connect-timeout", "3",
        env=env, cwd=tmp_path, log=log,
    )  # fmt: skip
    try:
        wait_for(
            lambda: "does not exist yet" in log.read_text(), timeout=60, what="the missing topic warning"
        )
        time.sleep(4)  # past the connect timeout
        assert process.poll() is None, log.read_text()
    finally:
        code = stop(process)
    assert code == 0, log.read_text()
    assert "not connected" not in log.read_text()


def test_live_view_shows_the_source_that_is_not_connected() -> None:
    from rich.console import Console

    from shared.devhost.live import render
    from shared.devhost.stats import HostStats

    stats = HostStats()
    stats.unreached("engagement_enrich", SENTENCE.format(port=1))
    console = Console(width=200, record=True)
    console.print(render(stats))
    assert "not connected: cannot reach Kafka at 127.0.0.1:1" in console.export_text()
    stats.connected("engagement_enrich")  # a broker answered: the row goes
    console = Console(width=200, record=True)
    console.print(render(stats))
    assert "not connected" not in console.export_text()
