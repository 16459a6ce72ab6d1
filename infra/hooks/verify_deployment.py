"""Run ``streamduck verify`` against the deployment azd just made (called by the postdeploy hooks).

Reads ``azd env get-values --output json`` on standard input; the arguments are the ``streamduck`` executable
and any extra arguments for ``streamduck verify`` (from ``STREAMDUCK_VERIFY_ARGS``). The settings given to
``streamduck verify`` as environment variables are the ones postprovision writes to local.settings.json: the
function app's settings (``STREAMDUCK_LOCAL_SETTINGS`` output) minus the managed-identity keys, with Key Vault
references resolved by the Azure CLI, so the check signs in as the deploying user, who holds the same data
roles as the app. The exit code is the one of ``streamduck verify``: non-zero when a test event did not land.
Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from write_local_settings import Resolver, az_secret, local_values

PREFIX = "postdeploy:"


def verify_environment(
    azd_values: Mapping[str, str], base: Mapping[str, str], resolve: Resolver
) -> tuple[dict[str, str], list[str]]:
    """The environment for ``streamduck verify``: ``base`` with the deployment's settings written over it."""
    values, warnings = local_values(azd_values, resolve)
    return {**base, **values}, warnings


DEPLOY_TIMEOUT_SECONDS = 300


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(
            "usage: azd env get-values --output json | verify_deployment.py STREAMDUCK [VERIFY_ARGS...]",
            file=sys.stderr,
        )
        return 2
    streamduck, extra = argv[1], argv[2:]
    try:
        azd_values = json.load(sys.stdin)
    except json.JSONDecodeError:
        print(
            f"{PREFIX} `azd env get-values --output json` gave no values: run `azd provision` first",
            file=sys.stderr,
        )
        return 1
    env, warnings = verify_environment(azd_values, os.environ, az_secret)
    for warning in warnings:
        print(f"{PREFIX} warning: {warning}", file=sys.stderr)
    if not any(arg == "--timeout" or arg.startswith("--timeout=") for arg in extra):
        # A new deployment's first batches wait for cold starts and the first MotherDuck extension download.
        extra = ["--timeout", str(DEPLOY_TIMEOUT_SECONDS), *extra]
    command = [streamduck, "verify", *extra]
    print(f"{PREFIX} running {' '.join(command)} against {env.get('AZURE_ENV_NAME', 'the azd environment')}")
    sys.stdout.flush()
    code = subprocess.run(command, env=env, check=False).returncode
    if code == 0:
        print(f"{PREFIX} streamduck verify passed: every configured source delivered its test events")
    else:
        print(
            f"{PREFIX} streamduck verify failed (exit {code}): see its output above, the workbook "
            "'StreamDuck pipeline' and docs/deploy.md (First deployment). "
            "Skip the check with `azd env set STREAMDUCK_VERIFY_ON_DEPLOY false`.",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
