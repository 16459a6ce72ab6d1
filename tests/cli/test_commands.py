"""Every command answers --help with examples; version; expected failures are one line and an exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.cli import ROOT, base_env, run_cli

COMMANDS = [
    "run",
    "validate-config",
    "status",
    "check-credentials",
    "simulate",
    "demo",
    "verify",
    "dashboard",
    "init",
    "version",
]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_examples(name: str, tmp_path: Path) -> None:
    result = run_cli(name, "--help", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "Usage" in result.stdout
    assert "streamduck" in result.stdout.lower()
    assert "example" in result.stdout.lower()


@pytest.mark.parametrize("name", COMMANDS)
def test_help_fits_80_columns_without_type_noise(name: str, tmp_path: Path) -> None:
    result = run_cli(name, "--help", env=base_env(tmp_path, COLUMNS="80"), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "<bool>" not in result.stdout and "<list[" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_version_option_and_shell_completion(tmp_path: Path) -> None:
    from shared import __version__

    result = run_cli("--version", env=base_env(tmp_path), cwd=tmp_path)
    assert (result.code, result.stdout.strip()) == (0, f"streamduck {__version__}")
    completion = run_cli("--show-completion", "bash", env=base_env(tmp_path, SHELL="/bin/bash"), cwd=tmp_path)
    assert completion.code == 0, completion.stderr
    assert "complete -o default -F _streamduck_completion streamduck" in completion.stdout


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_version(tmp_path: Path) -> None:
    from shared import __version__

    result = run_cli("version", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 0
    assert result.stdout.strip() == f"streamduck {__version__}"
    data = run_cli("version", "--json", env=base_env(tmp_path), cwd=tmp_path).json()
    assert data["version"] == __version__


def test_invalid_setting_is_one_clear_message_and_exit_3(tmp_path: Path) -> None:
    env = base_env(tmp_path, KAFKA_PROTOCOL="TLS", MOTHERDUCK_7_TABLE="x")
    result = run_cli("run", "--dry-run", env=env, cwd=tmp_path)
    assert result.code == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: invalid configuration")
    assert "KAFKA_PROTOCOL:" in result.stderr
    assert "EVENTHUBNAME_7:" in result.stderr  # mapping 7 is incomplete: the variable to set is named


def test_missing_env_file_exit_3(tmp_path: Path) -> None:
    result = run_cli("status", "--env-file", str(tmp_path / "nope.env"), env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 3
    assert "--env-file" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_file_values_win_over_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("TOPIC_ENGAGE=from_file\nKAFKA_CONSUMER_GROUP=group-from-file\n", encoding="utf-8")
    env = base_env(tmp_path, TOPIC_ENGAGE="from_env", TOPIC_CONTENT="content_from_env")
    result = run_cli(
        "run",
        "--dry-run",
        "--json",
        "--env-file",
        str(env_file),
        "--app-dir",
        str(ROOT),
        env=env,
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    plan = {f["function"]: f for f in result.json()["functions"]}
    assert plan["engagement_enrich"]["source"] == "from_file"
    assert plan["engagement_enrich"]["consumer_group"] == "group-from-file"
    assert plan["engagement_content_cdc"]["source"] == "content_from_env"


def test_implicit_dotenv_does_not_override_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "TOPIC_ENGAGE=from_dotenv\nTOPIC_CONTENT=content_from_dotenv\n", encoding="utf-8"
    )
    env = base_env(tmp_path, TOPIC_ENGAGE="from_env")
    result = run_cli("run", "--dry-run", "--json", "--app-dir", str(ROOT), env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    plan = {f["function"]: f for f in result.json()["functions"]}
    assert plan["engagement_enrich"]["source"] == "from_env"
    assert plan["engagement_content_cdc"]["source"] == "content_from_dotenv"


def test_unknown_function_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--dry-run", "-f", "nope", "--app-dir", str(ROOT), env=base_env(tmp_path), cwd=tmp_path
    )
    assert result.code == 3
    assert "unknown function(s) nope" in result.stderr
    assert "engagement_enrich" in result.stderr


def test_run_smart_is_refused_with_the_reason_and_the_settings_to_use(tmp_path: Path) -> None:
    result = run_cli("run", "--smart", "--app-dir", str(ROOT), env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: --smart (LLM-judged retries) is not supported")
    assert "typed errors" in lines[0]
    assert "STREAMDUCK_RETRY_MAX_COUNT" in lines[0]
    assert result.stdout == ""  # refused before anything is planned or run
    assert "--smart" not in run_cli("run", "--help", env=base_env(tmp_path), cwd=tmp_path).stdout  # hidden


# -f/--function values in examples: `streamduck run -f NAME`, `--function NAME`, `--function=NAME`
FUNCTION_ARG = re.compile(r"(?:^|\s)(?:-f|--function)(?:\s+|=)([^\s`'\"]+)")
EXAMPLE_LINE = re.compile(r"streamduck run\b[^\n]*")


def indexed_functions(tmp_path: Path) -> set[str]:
    """Names of the functions the app registers (with mapping 1 configured, so the mapping function too)."""
    env = base_env(
        tmp_path,
        EVENTHUBNAME_1="telemetry",
        EVENTHUBNAME_1_CONSUMER_GROUP="$Default",
        MOTHERDUCK_1_DATABASE="analytics",
        MOTHERDUCK_1_SCHEMA="raw",
        MOTHERDUCK_1_TABLE="events",
    )
    result = run_cli("run", "--dry-run", "--json", "--app-dir", str(ROOT), env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    return {f["function"] for f in result.json()["functions"]}


def test_help_and_docs_examples_name_real_functions(tmp_path: Path) -> None:
    names = indexed_functions(tmp_path)
    assert {"eventhub_to_motherduck_1", "engagement_enrich", "engagement_content_cdc"} <= names
    used: dict[str, set[str]] = {}
    for command in COMMANDS:
        help_text = run_cli(command, "--help", env=base_env(tmp_path), cwd=tmp_path).stdout
        for line in EXAMPLE_LINE.findall(help_text):
            for name in FUNCTION_ARG.findall(line):
                used.setdefault(name, set()).add(f"streamduck {command} --help")
    for doc in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        for line in EXAMPLE_LINE.findall(doc.read_text(encoding="utf-8")):
            for name in FUNCTION_ARG.findall(line):
                used.setdefault(name, set()).add(doc.name)
    assert any("--help" in where for places in used.values() for where in places), used  # run's example
    unknown = {name: sorted(where) for name, where in used.items() if name not in names}
    assert unknown == {}, f"examples name functions the app does not register: {unknown}"


def test_dry_run_shows_the_mapping_batch_and_the_functions_host_batch(tmp_path: Path) -> None:
    host_json = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    host_batch = host_json["extensions"]["eventHubs"]["maxEventBatchSize"]
    assert host_batch != 500  # otherwise the test could not tell the two apart
    mappings = {
        f"{prefix}_{n}{suffix}": value
        for n in (1, 2)
        for prefix, suffix, value in (
            ("EVENTHUBNAME", "", f"hub{n}"),
            ("EVENTHUBNAME", "_CONSUMER_GROUP", "$Default"),
            ("MOTHERDUCK", "_DATABASE", "analytics"),
            ("MOTHERDUCK", "_SCHEMA", "raw"),
            ("MOTHERDUCK", "_TABLE", f"events{n}"),
        )
    }
    env = base_env(tmp_path, **mappings, MOTHERDUCK_1_BATCH="500")  # mapping 2 keeps host.json's size
    result = run_cli("run", "--dry-run", "--json", "--app-dir", str(ROOT), env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    plan = {f["function"]: f for f in result.json()["functions"]}
    first, second = plan["eventhub_to_motherduck_1"], plan["eventhub_to_motherduck_2"]
    assert (first["batch_size"], first["batch_size_from"]) == (500, "MOTHERDUCK_1_BATCH")
    assert first["functions_host_batch_size"] == host_batch
    assert first["functions_host_batch_size_from"] == "host.json extensions.eventHubs.maxEventBatchSize"
    assert (second["batch_size"], second["functions_host_batch_size"]) == (host_batch, host_batch)
    assert second["batch_size_from"] == "host.json extensions.eventHubs.maxEventBatchSize"
    kafka_batch = host_json["extensions"]["kafka"]["maxBatchSize"]
    assert plan["engagement_enrich"]["functions_host_batch_size"] == kafka_batch

    table = run_cli("run", "--dry-run", "--app-dir", str(ROOT), env=env, cwd=tmp_path)
    assert table.code == 0, table.stderr
    row = table.stdout.split("eventhub_to_motherduck_1", 1)[1].split("eventhub_to_motherduck_2", 1)[0]
    assert "500 (MOTHERDUCK_1_BATCH" in row
    assert f"Functions host: {host_batch}" in row

    overridden = run_cli(
        "run", "--dry-run", "--json", "--batch-size", "7", "--app-dir", str(ROOT), env=env, cwd=tmp_path
    ).json()["functions"]
    first = next(f for f in overridden if f["function"] == "eventhub_to_motherduck_1")
    assert (first["batch_size"], first["batch_size_from"], first["functions_host_batch_size"]) == (
        7,
        "--batch-size",
        host_batch,
    )


@pytest.mark.slow  # the Kafka client retries the closed port before it gives up
def test_simulate_without_its_broker_exits_4_in_plain_words(tmp_path: Path) -> None:
    env = base_env(tmp_path, KAFKA_BROKERS="127.0.0.1:1", COLUMNS="80")
    result = run_cli("simulate", "--count", "5", "--rate", "0", env=env, cwd=tmp_path, timeout=60)
    assert result.code == 4
    assert result.stderr.splitlines() == [
        "error: cannot reach Kafka at 127.0.0.1:1 (KAFKA_BROKERS): no answer (connection refused or closed); "
        "try: start a broker there (bash scripts/services.sh start kafka) or set KAFKA_BROKERS"
    ]
