"""Run ``python -m shared`` as a subprocess, the way users and CI run it, with a hermetic environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No ambient StreamDuck settings: PATH/HOME only, local data under ``tmp_path``, plus ``extra``."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "STREAMDUCK_DATA_DIR": str(tmp_path / "data"),
            "CLICKHOUSE_CHDB_PATH": str(tmp_path / "chdb"),
            "COLUMNS": "200",
        }
    )
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shared", *args]


def run_cli(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120) -> Result:
    """Run one command to completion with no terminal and no standard input."""
    done = subprocess.run(
        command(*args),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def start_cli(*args: str, env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running command (the dev host); stdout and stderr go to ``log``."""
    handle = log.open("wb")
    return subprocess.Popen(
        command(*args),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    process.send_signal(sig)
    return process.wait(timeout=timeout)


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def write_app(folder: Path, name: str, source: str) -> Path:
    """A small function app module for the dev host tests (``--app name --app-dir folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path
