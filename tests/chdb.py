"""The one embedded ClickHouse (chDB) engine of a test process, shared by every test folder that needs one."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.engagement.clickhouse.client import _CLIENTS, chdb_client


def process_chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the process's chDB engine: the one already running, else a new one (chDB allows one engine
    per process, so test folders that each start their own would collide when run together)."""
    running = [Path(key[1]) for key in _CLIENTS if key[0] == "chdb"]
    path = running[0] if running else tmp_path_factory.mktemp("chdb")
    chdb_client(path)
    return path
