"""Write local.settings.json from the azd environment (called by the postprovision hooks).

Reads ``azd env get-values --output json`` on standard input and the path of local.settings.json as the only
argument. The settings are the ``STREAMDUCK_LOCAL_SETTINGS`` output of infra/main.bicep: the same values the
function app gets, minus the managed-identity keys, so that the Functions host and the SDKs sign in as the
developer. Key Vault references (``@Microsoft.KeyVault(VaultName=...;SecretName=...)``) are resolved with the
Azure CLI; a secret that cannot be read is left out with a warning that names it. Keys already present in
local.settings.json and not produced here are kept. Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

OUTPUT_NAME = "STREAMDUCK_LOCAL_SETTINGS"
_KV_REF = re.compile(r"^@Microsoft\.KeyVault\(VaultName=(?P<vault>[^;]+);SecretName=(?P<secret>[^;)]+)\)$")

Resolver = Callable[[str, str], str | None]


def az_secret(vault: str, secret: str) -> str | None:
    """The secret's value read with the Azure CLI, or None when the CLI is missing or refuses."""
    az = shutil.which("az")
    if az is None:
        return None
    result = subprocess.run(
        [
            az,
            "keyvault",
            "secret",
            "show",
            "--vault-name",
            vault,
            "--name",
            secret,
            "--query",
            "value",
            "-o",
            "tsv",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        return None
    return result.stdout.rstrip("\n")


def local_values(env: Mapping[str, str], resolve: Resolver) -> tuple[dict[str, str], list[str]]:
    """Settings for local.settings.json and the warnings to print, from the azd environment values."""
    raw = env.get(OUTPUT_NAME)
    if not raw:
        raise SystemExit(f"{OUTPUT_NAME} is not in the azd environment: run `azd provision` first")
    items = json.loads(raw)
    values: dict[str, str] = {}
    warnings: list[str] = []
    for item in items:
        name, value = str(item["name"]), str(item["value"])
        ref = _KV_REF.match(value)
        if ref is None:
            values[name] = value
            continue
        secret = resolve(ref["vault"], ref["secret"])
        if secret is None:
            warnings.append(
                f"{name}: could not read secret {ref['secret']!r} from Key Vault {ref['vault']!r} "
                "(install the Azure CLI and `az login`, or set it in local.settings.json yourself)"
            )
            continue
        values[name] = secret
    if not values.get("CLICKHOUSE_HOST"):
        warnings.append(
            "CLICKHOUSE_HOST is empty: the app falls back to embedded chDB on a temporary disk; "
            "run `azd env set CLICKHOUSE_HOST <ClickHouse Cloud host>` and `azd provision` again"
        )
    return values, warnings


def merge(path: Path, values: Mapping[str, str]) -> dict[str, object]:
    """The existing local.settings.json (if any) with ``values`` written over its Values."""
    document: dict[str, object] = {"IsEncrypted": False, "Values": {}}
    if path.exists():
        document = json.loads(path.read_text(encoding="utf-8"))
    existing = document.get("Values")
    merged: dict[str, object] = dict(existing) if isinstance(existing, dict) else {}
    merged.update(values)
    document["IsEncrypted"] = False
    document["Values"] = merged
    return document


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(
            "usage: azd env get-values --output json | write_local_settings.py LOCAL_SETTINGS_JSON",
            file=sys.stderr,
        )
        return 2
    path = Path(argv[1])
    env = json.load(sys.stdin)
    values, warnings = local_values(env, az_secret)
    document = merge(path, values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds secrets: owner only
    path.chmod(0o600)  # also when the file existed before
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    for warning in warnings:
        print(f"postprovision: warning: {warning}", file=sys.stderr)
    print(f"postprovision: wrote {len(values)} settings to {path.name} ({', '.join(sorted(values))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
