"""status: the engagement pipeline's dead letters in ClickHouse by kind, and the last compaction per mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, base_env, run_cli

MAPPING = {
    "EVENTHUBNAME_1": "telemetry",
    "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
    "MOTHERDUCK_1_DATABASE": "analytics",
    "MOTHERDUCK_1_SCHEMA": "raw",
    "MOTHERDUCK_1_TABLE": "events",
}

# Runs in its own process: chDB allows one engine per process. Parks records the way the engagement
# functions do (Warehouse.insert_dead_letters) and runs the compaction of mapping 1 (compact_motherduck's body).
SETUP = """
from shared.duck.compaction import compact_mapping
from shared.duck.connection import DuckConnections
from shared.engagement.batch import RawRecord
from shared.engagement.records import DeadLetter
from shared.engagement.clickhouse import Warehouse
from shared.settings import load_settings

s = load_settings()
wh = Warehouse.from_settings(s)
wh.ensure_schema()
def parked(offset, kind):
    record = RawRecord(s.topic_engage, 0, offset, None, b"{bad", 1_700_000_000_000)
    return DeadLetter(record, f"test: {kind}", kind)
wh.insert_dead_letters(
    [parked(0, "invalid_json"), parked(1, "invalid_json"), parked(2, "invalid_json"),
     parked(3, "unknown_event_type")],
    function="engagement_enrich",
)
(m,) = s.mappings
compact_mapping(m, DuckConnections(data_dir=s.data_dir, default_token=None))
"""


def status_env(tmp_path: Path) -> dict[str, str]:
    closed = "127.0.0.1:1"  # nothing to ask for Kafka lag or the leaderboard: reported, not waited for
    return base_env(
        tmp_path,
        **MAPPING,
        ENGAGEMENT_DEAD_LETTER_TABLE="parked_records",
        CLICKHOUSE_DATABASE="analytics_status",
        KAFKA_BROKERS=closed,
        REDIS_URL=f"redis://{closed}/0",
    )


@pytest.mark.slow  # two processes, each starting embedded ClickHouse (chDB)
def test_status_counts_engagement_dead_letters_and_shows_last_compaction(tmp_path: Path) -> None:
    env = status_env(tmp_path)
    setup = subprocess.run(
        [sys.executable, "-c", SETUP],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]

    result = run_cli("status", "--json", "--timeout", "2", env=env, cwd=tmp_path)
    assert result.code == 4, result.stderr  # Kafka and Redis are unreachable on purpose
    report = result.json()
    dead = report["engagement_dead_letters"]
    assert dead["error"] is None
    assert dead["table"] == "analytics_status.parked_records"
    assert dead["by_kind"] == {"invalid_json": 3, "unknown_event_type": 1}
    assert dead["total"] == 4
    (mapping,) = report["mappings"]
    assert mapping["error"] is None
    compaction = mapping["last_compaction"]
    assert compaction is not None and compaction["finished_at"]
    assert compaction["checkpointed"] is True

    table = run_cli("status", "--timeout", "2", env=env, cwd=tmp_path)
    assert table.code == 4, table.stderr
    assert "invalid_json: 3, unknown_event_type: 1" in table.stdout
    assert f"last compaction: {compaction['finished_at']}" in table.stdout


def test_status_without_engagement_data_creates_nothing(tmp_path: Path) -> None:
    env = status_env(tmp_path)
    result = run_cli("status", "--json", "--timeout", "2", env=env, cwd=tmp_path)
    assert result.code == 4, result.stderr  # Kafka and Redis are unreachable; no data yet is no failure
    assert len(result.json()["unavailable"]) == 2
    dead = result.json()["engagement_dead_letters"]
    assert dead["error"] == "no data yet (the chDB folder does not exist)"
    assert dead["total"] is None
    assert not (tmp_path / "chdb").exists()  # status is read-only


def test_unreachable_stores_are_named_in_plain_words_and_exit_4(tmp_path: Path) -> None:
    env = {**status_env(tmp_path), "COLUMNS": "80"}
    result = run_cli("status", "--timeout", "2", env=env, cwd=tmp_path)
    assert result.code == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: cannot reach Kafka at 127.0.0.1:1 (KAFKA_BROKERS): no answer (connection refused or closed); "
        "try: start a broker there (bash scripts/services.sh start kafka) or set KAFKA_BROKERS",
        "error: cannot reach Redis at redis://127.0.0.1:1/0 (REDIS_URL): connection refused (nothing listens "
        "there); try: start Redis there (bash scripts/services.sh start redis) or set REDIS_URL",
    ]
    assert "KafkaException" not in result.stdout + result.stderr


def test_status_with_every_store_reachable_exits_0(
    tmp_path: Path, redis_url: str, kafka_brokers: str
) -> None:
    env = base_env(tmp_path, REDIS_URL=redis_url, KAFKA_BROKERS=kafka_brokers, COLUMNS="80")
    result = run_cli("status", "--timeout", "5", env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
