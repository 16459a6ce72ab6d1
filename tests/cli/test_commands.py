"""Every command answers --help with examples; version; expected failures are one line and an exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import ROOT, base_env, run_cli

COMMANDS = ["run", "validate-config", "status", "simulate", "demo", "version"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_examples(name: str, tmp_path: Path) -> None:
    result = run_cli(name, "--help", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "Usage" in result.stdout
    assert "streamduck" in result.stdout.lower()
    assert "example" in result.stdout.lower()


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
