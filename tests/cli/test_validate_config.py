"""validate-config: every kind of misconfiguration and every unreachable store, named by its variable."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import ROOT, base_env, run_cli

MAPPING = {
    "EVENTHUBNAME_1": "telemetry",
    "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
    "MOTHERDUCK_1_DATABASE": "analytics",
    "MOTHERDUCK_1_SCHEMA": "raw",
    "MOTHERDUCK_1_TABLE": "events",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def validate(tmp_path: Path, **env: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(
        "validate-config",
        "--json",
        "--timeout",
        "3",
        "--app-dir",
        str(ROOT),
        env=base_env(tmp_path, **env),
        cwd=tmp_path,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.code, result.json()


def problems(report: dict[str, Any]) -> dict[str, str]:
    return {c["variable"]: c["detail"] for c in report["checks"] if c["status"] == "problem"}


@pytest.fixture
def healthy(redis_url: str, kafka_brokers: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "KAFKA_BROKERS": kafka_brokers}


def test_everything_reachable_exits_0(tmp_path: Path, healthy: dict[str, str]) -> None:
    code, report = validate(tmp_path, **healthy)
    assert report["ok"] is True, report
    assert code == 0
    kinds = {c["check"] for c in report["checks"]}
    assert {"settings", "kafka", "redis", "clickhouse", "functions"} <= kinds
    functions = next(c for c in report["checks"] if c["check"] == "functions")
    assert "4 function(s)" in functions["target"]  # the Kafka section: 2 triggers, 2 timers


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        ({"KAFKA_PROTOCOL": "TLS"}, {"KAFKA_PROTOCOL"}),
        ({"EVENTHUBNAME_1": "telemetry"}, {"EVENTHUBNAME_1_CONSUMER_GROUP", "MOTHERDUCK_1_TABLE"}),
        ({**MAPPING, "MOTHERDUCK_1_TABLE": "bad-name"}, {"MOTHERDUCK_1_TABLE"}),
        ({**MAPPING, "MOTHERDUCK_1_FORMAT": "xml"}, {"MOTHERDUCK_1_FORMAT"}),
        ({"STREAMDUCK_RETRY_MIN_INTERVAL": "5s"}, {"STREAMDUCK_RETRY_MIN_INTERVAL"}),
        ({"STREAMDUCK_COMPACTION_SCHEDULE": "0 3 * * *"}, {"STREAMDUCK_COMPACTION_SCHEDULE"}),
        ({"EVENTHUBNAME_1_COLOR": "red"}, {"EVENTHUBNAME_1_COLOR"}),
    ],
    ids=[
        "bad-enum",
        "incomplete-mapping",
        "bad-identifier",
        "bad-format",
        "bad-timespan",
        "bad-ncrontab",
        "unknown",
    ],
)
def test_invalid_settings_name_the_variable(tmp_path: Path, env: dict[str, str], variables: set[str]) -> None:
    code, report = validate(tmp_path, **env)
    assert code == 1
    assert report["ok"] is False
    assert variables <= set(problems(report)), report


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        ({"KAFKA_PROTOCOL": "SASLSSL", "KAFKA_AUTH_MODE": "PLAIN"}, {"KAFKA_USERNAME", "KAFKA_PASSWORD"}),
        ({"KAFKA_PROTOCOL": "SASLSSL"}, {"KAFKA_AUTH_MODE"}),
        (
            {
                "KAFKA_AUTH_MODE": "PLAIN",
                "KAFKA_USERNAME": "u",
                "KAFKA_PASSWORD": "p",
                "KAFKA_PROTOCOL": "PLAINTEXT",
            },
            {"KAFKA_PROTOCOL"},
        ),
    ],
    ids=["sasl-without-credentials", "sasl-without-mechanism", "mechanism-without-sasl"],
)
def test_inconsistent_kafka_auth(
    tmp_path: Path, healthy: dict[str, str], env: dict[str, str], variables: set[str]
) -> None:
    code, report = validate(tmp_path, **{**healthy, **env})
    assert code == 1
    assert variables <= set(problems(report)), report


def test_local_folders_that_cannot_be_written(tmp_path: Path, healthy: dict[str, str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    code, report = validate(
        tmp_path,
        **healthy,
        **MAPPING,
        STREAMDUCK_DATA_DIR=str(blocker / "data"),
        CLICKHOUSE_CHDB_PATH=str(blocker / "chdb"),
    )
    assert code == 1
    found = problems(report)
    assert "is not a folder" in found["STREAMDUCK_DATA_DIR"]
    assert "is not a folder" in found["CLICKHOUSE_CHDB_PATH"]


def test_checkpoint_storage_missing(tmp_path: Path, healthy: dict[str, str]) -> None:
    code, report = validate(tmp_path, **healthy, **MAPPING)
    assert code == 1
    assert "UseDevelopmentStorage=true" in problems(report)["AzureWebJobsStorage"]


@pytest.mark.slow  # waits out the 3 s connection timeout of each unreachable store
def test_each_unreachable_store_names_its_variable(tmp_path: Path) -> None:
    port = closed_port()
    azurite_down = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    code, report = validate(
        tmp_path,
        **MAPPING,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        KAFKA_BROKERS=f"127.0.0.1:{port}",
        AzureWebJobsStorage=azurite_down,
        EVENTHUB_CONNECTION_STRING=(
            f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;"
        ),
        CLICKHOUSE_HOST="127.0.0.1",
        CLICKHOUSE_PORT=str(port),
        CLICKHOUSE_SECURE="false",
        MOTHERDUCK_TOKEN="not-a-real-token",
    )
    assert code == 1
    found = problems(report)
    for variable in (
        "REDIS_URL",
        "KAFKA_BROKERS",
        "AzureWebJobsStorage",
        "EVENTHUB_CONNECTION_STRING",
        "MOTHERDUCK_TOKEN",
    ):
        assert variable in found, (variable, report)
    assert {"CLICKHOUSE_HOST", "CLICKHOUSE_PORT"} & set(found), report


def test_storage_reachable_hub_not(
    tmp_path: Path, healthy: dict[str, str], azurite_connection_string: str
) -> None:
    port = closed_port()
    code, report = validate(
        tmp_path,
        **healthy,
        **MAPPING,
        AzureWebJobsStorage=azurite_connection_string,
        EVENTHUB_CONNECTION_STRING=f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=v;"
        "UseDevelopmentEmulator=true;",
    )
    assert code == 1
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert statuses["storage"] == "ok"
    assert statuses["duckdb"] == "ok"
    assert set(problems(report)) == {"EVENTHUB_CONNECTION_STRING"}


def test_problems_are_error_lines_on_stderr_without_a_terminal(
    tmp_path: Path, healthy: dict[str, str]
) -> None:
    result = run_cli(
        "validate-config",
        "--app-dir",
        str(ROOT),
        env=base_env(tmp_path, **healthy, KAFKA_PROTOCOL="TLS", COLUMNS="80"),
        cwd=tmp_path,
    )
    assert result.code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: KAFKA_PROTOCOL: Input should be 'NOTSET'"), result.stderr
    assert lines[-1] == "error: 1 problem(s); fix the variables named above"
    assert "KAFKA_PROTOCOL" not in result.stdout and "problem" not in result.stdout


def test_unreachable_kafka_and_redis_say_where_which_setting_and_what_to_try(tmp_path: Path) -> None:
    port = closed_port()
    result = run_cli(
        "validate-config",
        "--timeout",
        "2",
        "--app-dir",
        str(ROOT),
        env=base_env(
            tmp_path, KAFKA_BROKERS=f"127.0.0.1:{port}", REDIS_URL=f"redis://127.0.0.1:{port}/0", COLUMNS="80"
        ),
        cwd=tmp_path,
    )
    assert result.code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: cannot reach")]
    assert errors == [
        f"error: cannot reach Kafka at 127.0.0.1:{port} (KAFKA_BROKERS): no answer (connection refused or "
        "closed); try: start a broker there (bash scripts/services.sh start kafka) or set KAFKA_BROKERS",
        f"error: cannot reach Redis at redis://127.0.0.1:{port}/0 (REDIS_URL): connection refused (nothing "
        "listens there); try: start Redis there (bash scripts/services.sh start redis) or set REDIS_URL",
    ]
    assert "KafkaError" not in result.stderr and "_TRANSPORT" not in result.stderr


def test_offline_with_nothing_configured_says_so(tmp_path: Path) -> None:
    result = run_cli("validate-config", "--offline", env=base_env(tmp_path, COLUMNS="80"), cwd=tmp_path)
    assert result.code == 0
    assert "configuration OK" not in result.stdout
    warnings = [line.split(" ", 2)[1] for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["EVENTHUBNAME_1", "KAFKA_BROKERS", "REDIS_URL", "nothing"]
    assert "streamduck init" in result.stderr
    configured = run_cli(
        "validate-config",
        "--offline",
        env=base_env(
            tmp_path, **MAPPING, KAFKA_BROKERS="127.0.0.1:9092", REDIS_URL="redis://127.0.0.1:6379/0"
        ),
        cwd=tmp_path,
    )
    assert configured.code == 0 and configured.stderr == ""
    assert "configuration OK" in configured.stdout
