"""init: the two files from flags, and from its prompts answered on a real terminal; every command then reads them."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

from dotenv import dotenv_values

from tests.support.cli import ROOT, base_env, command, run_cli


def values(folder: Path) -> dict[str, str]:
    document: dict[str, dict[str, str]] = json.loads(
        (folder / "local.settings.json").read_text(encoding="utf-8")
    )
    return document["Values"]


def test_flags_write_both_files_with_the_same_values(tmp_path: Path) -> None:
    env = base_env(tmp_path, COLUMNS="80")
    result = run_cli(
        "init",
        "--source",
        "eventhubs",
        "--hub",
        "orders",
        "--namespace",
        "my-ns.servicebus.windows.net",
        "--table",
        "orders_raw",
        env=env,
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "wrote local.settings.json",
        "wrote .env",
        "next: streamduck validate-config",
    ]
    written = values(tmp_path)
    assert written["EVENTHUBNAME_1"] == "orders"
    assert written["EVENTHUBNAME_1_CONSUMER_GROUP"] == "$Default"
    assert written["MOTHERDUCK_1_TABLE"] == "orders_raw"
    assert "KAFKA_BROKERS" not in written and "MOTHERDUCK_TOKEN" not in written
    assert dict(dotenv_values(tmp_path / ".env")) == written  # $Default is not expanded

    again = run_cli("init", "--no-input", env=env, cwd=tmp_path)
    assert again.code == 1
    assert again.stderr.startswith("error: ") and "--force" in again.stderr
    assert values(tmp_path)["EVENTHUBNAME_1"] == "orders"  # untouched


def test_written_files_are_read_by_the_other_commands(tmp_path: Path) -> None:
    env = base_env(tmp_path, COLUMNS="80")
    assert (
        run_cli("init", "-s", "kafka", "--kafka-brokers", "broker-from-init:9092", env=env, cwd=tmp_path).code
        == 0
    )
    (tmp_path / ".env").unlink()  # local.settings.json alone is read too
    plan = run_cli("run", "--dry-run", "--json", "--app-dir", str(ROOT), env=env, cwd=tmp_path)
    assert plan.code == 0, plan.stderr
    assert "broker-from-init:9092" in plan.stdout
    # The process environment wins over local.settings.json.
    plan = run_cli(
        "run",
        "--dry-run",
        "--json",
        "--app-dir",
        str(ROOT),
        env={**env, "KAFKA_BROKERS": "env:9092"},
        cwd=tmp_path,
    )
    assert "env:9092" in plan.stdout and "broker-from-init" not in plan.stdout


def test_invalid_values_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    result = run_cli("init", "-s", "eventhubs", "--table", "bad-name", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 3
    assert "MOTHERDUCK_1_TABLE" in result.stderr
    assert not (tmp_path / "local.settings.json").exists() and not (tmp_path / ".env").exists()


def _read_until(fd: int, wanted: str, seen: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in "".join(seen):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted!r} on the terminal; got {''.join(seen)!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen.append(os.read(fd, 4096).decode("utf-8", "replace"))
            except OSError:
                return


def test_prompts_answered_on_a_terminal(tmp_path: Path) -> None:
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        command("init", "--redis-url", "redis://cache:6379/0"),
        env=base_env(tmp_path, COLUMNS="80", TERM="dumb"),
        cwd=tmp_path,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
    )
    os.close(secondary)
    seen: list[str] = []
    try:
        for prompt, answer in (
            ("Sources (eventhubs, kafka or both) [both]", "kafka"),
            ("Kafka brokers (host:port) [KAFKA_BROKERS] [127.0.0.1:9092]", "kafka-1:9093"),
            ("ClickHouse host (empty: embedded chDB) [CLICKHOUSE_HOST] []", ""),
        ):
            _read_until(main, prompt, seen)
            os.write(main, f"{answer}\r".encode())
        _read_until(main, "next: streamduck validate-config", seen)
        assert process.wait(timeout=60) == 0, "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    assert "Redis URL" not in "".join(seen)  # given by a flag: not asked
    written = values(tmp_path)
    assert written["KAFKA_BROKERS"] == "kafka-1:9093"
    assert written["REDIS_URL"] == "redis://cache:6379/0"
    assert "CLICKHOUSE_HOST" not in written and "EVENTHUBNAME_1" not in written
