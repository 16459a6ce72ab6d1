"""infra/hooks/write_local_settings.py turns the azd environment into local.settings.json."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .infra_helpers import INFRA

SCRIPT = INFRA / "hooks" / "write_local_settings.py"
KV_REF = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=motherduck-token)"


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("write_local_settings", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def azd_env(*settings: tuple[str, str]) -> dict[str, str]:
    items = [{"name": name, "value": value} for name, value in settings]
    return {"AZURE_ENV_NAME": "dev", "STREAMDUCK_LOCAL_SETTINGS": json.dumps(items)}


def test_key_vault_references_are_resolved() -> None:
    hook = load_hook()
    env = azd_env(("MOTHERDUCK_TOKEN", KV_REF), ("CLICKHOUSE_HOST", "ch.example"))
    values, warnings = hook.local_values(env, lambda vault, secret: f"{vault}/{secret}-value")
    assert values == {"MOTHERDUCK_TOKEN": "kv-abc/motherduck-token-value", "CLICKHOUSE_HOST": "ch.example"}
    assert warnings == []


def test_unreadable_secret_is_left_out_with_a_warning() -> None:
    hook = load_hook()
    values, warnings = hook.local_values(azd_env(("MOTHERDUCK_TOKEN", KV_REF)), lambda vault, secret: None)
    assert "MOTHERDUCK_TOKEN" not in values
    assert any("motherduck-token" in w and "kv-abc" in w for w in warnings)
    assert any("CLICKHOUSE_HOST is empty" in w for w in warnings)


def test_missing_output_says_what_to_run() -> None:
    hook = load_hook()
    with pytest.raises(SystemExit, match="azd provision"):
        hook.local_values({"AZURE_ENV_NAME": "dev"}, lambda vault, secret: None)


def test_script_merges_into_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "local.settings.json"
    target.write_text(
        json.dumps({"IsEncrypted": False, "Values": {"MY_OWN": "kept", "CLICKHOUSE_HOST": "old"}})
    )
    env = azd_env(("CLICKHOUSE_HOST", "ch.example"), ("MOTHERDUCK_TOKEN", KV_REF))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(target)],
        input=json.dumps(env),
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},  # no Azure CLI: the secret is reported, not written
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(target.read_text())
    assert written["Values"] == {"MY_OWN": "kept", "CLICKHOUSE_HOST": "ch.example"}
    assert "motherduck-token" in result.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o600"
