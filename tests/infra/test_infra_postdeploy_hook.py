"""infra/hooks/postdeploy.sh runs `streamduck verify` against the deployment, or says clearly why it cannot.

The hook runs for real with `sh`, in a copy of infra/hooks (so no `.venv/bin/streamduck` of this checkout is
found), with executables on PATH that stand in for the tools it calls: `azd` prints an azd environment,
`az` answers Key Vault reads, and `streamduck` records its arguments and environment and exits with the
code the test chooses.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from .infra_helpers import INFRA, ROOT, require_tool

HOOKS = INFRA / "hooks"
KV_REF = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=motherduck-token)"
INSTALL_HINT = "pip install -e '.[local]'"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict[str, object]]


def _executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the hook scripts and a bin folder of stand-in tools (no streamduck yet)."""
    root = tmp_path / "project"
    (root / "infra" / "hooks").mkdir(parents=True)
    for name in ("postdeploy.sh", "verify_deployment.py", "write_local_settings.py"):
        shutil.copy2(HOOKS / name, root / "infra" / "hooks" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    _executable(
        bin_dir / "azd",
        '#!/bin/sh\n[ "$*" = "env get-values --output json" ] || { echo "unexpected: azd $*" >&2; exit 9; }\n'
        'cat "$FAKE_AZD_VALUES"\n',
    )
    _executable(
        bin_dir / "az",
        '#!/bin/sh\n[ "$1 $2 $3" = "keyvault secret show" ] || exit 9\necho "secret-of-$5-$7"\n',
    )
    values = {
        "AZURE_ENV_NAME": "dev",
        "STREAMDUCK_LOCAL_SETTINGS": json.dumps(
            [
                {"name": "EVENTHUB_NAMESPACE", "value": "evhns-abc.servicebus.windows.net"},
                {"name": "EVENTHUBNAME_1", "value": "orders"},
                {"name": "CLICKHOUSE_HOST", "value": "ch.example"},
                {"name": "MOTHERDUCK_TOKEN", "value": KV_REF},
            ]
        ),
    }
    (tmp_path / "azd-values.json").write_text(json.dumps(values), encoding="utf-8")
    return root


def install_streamduck(project: Path) -> None:
    """A `streamduck` on PATH that appends {args, env} to $FAKE_RECORD and exits with $FAKE_EXIT."""
    _executable(
        project.parent / "bin" / "streamduck",
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['FAKE_RECORD'], 'a', encoding='utf-8') as out:\n"
        "    out.write(json.dumps({'args': sys.argv[1:], 'env': dict(os.environ)}) + '\\n')\n"
        "print('verify: 3 sources, 3 landed')\n"
        "sys.exit(int(os.environ.get('FAKE_EXIT', '0')))\n",
    )


def run_hook(project: Path, **env: str) -> Run:
    sh = require_tool("sh", "apt-get install dash")
    record = project.parent / "calls.jsonl"
    record.touch()
    result = subprocess.run(
        [sh, str(project / "infra" / "hooks" / "postdeploy.sh")],
        cwd=project,
        env={
            "PATH": f"{project.parent / 'bin'}:/usr/bin:/bin",
            "HOME": str(project.parent),
            "FAKE_AZD_VALUES": str(project.parent / "azd-values.json"),
            "FAKE_RECORD": str(record),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    calls = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    return Run(result.returncode, result.stdout, result.stderr, calls)


def test_verify_runs_with_the_deployments_settings_and_passes(project: Path) -> None:
    install_streamduck(project)
    run = run_hook(project)
    assert run.returncode == 0, run.stderr
    (call,) = run.calls
    # A new deployment waits for cold starts: five minutes unless STREAMDUCK_VERIFY_ARGS says otherwise.
    assert call["args"] == ["verify", "--timeout", "300"]
    env = call["env"]
    assert isinstance(env, dict)
    assert env["EVENTHUB_NAMESPACE"] == "evhns-abc.servicebus.windows.net"
    assert env["EVENTHUBNAME_1"] == "orders"
    assert env["MOTHERDUCK_TOKEN"] == "secret-of-kv-abc-motherduck-token", "Key Vault reference resolved"
    assert "verify: 3 sources, 3 landed" in run.stdout
    assert "streamduck verify passed" in run.stdout


def test_a_miss_fails_the_hook_with_the_verify_exit_code(project: Path) -> None:
    install_streamduck(project)
    run = run_hook(project, FAKE_EXIT="3")
    assert run.returncode == 3
    assert len(run.calls) == 1
    assert "streamduck verify failed (exit 3)" in run.stderr
    assert "STREAMDUCK_VERIFY_ON_DEPLOY" in run.stderr


def test_extra_arguments_are_passed_through(project: Path) -> None:
    install_streamduck(project)
    run = run_hook(project, STREAMDUCK_VERIFY_ARGS="--json  --timeout 60")
    assert run.returncode == 0, run.stderr
    assert run.calls[0]["args"] == ["verify", "--json", "--timeout", "60"]


@pytest.mark.parametrize("value", ["false", "False"])
def test_verify_on_deploy_false_skips_the_check(project: Path, value: str) -> None:
    install_streamduck(project)
    run = run_hook(project, STREAMDUCK_VERIFY_ON_DEPLOY=value)
    assert run.returncode == 0, run.stderr
    assert run.calls == []
    assert "streamduck verify skipped" in run.stdout


def test_missing_cli_fails_and_says_how_to_install_it(project: Path) -> None:
    run = run_hook(project)
    assert run.returncode != 0
    assert run.calls == []
    assert "streamduck CLI is not installed" in run.stderr
    assert INSTALL_HINT in run.stderr
    assert "azd env set STREAMDUCK_VERIFY_ON_DEPLOY false" in run.stderr


def test_the_projects_own_venv_is_used_when_streamduck_is_not_on_path(project: Path) -> None:
    venv_bin = project / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    install_streamduck(project)
    (project.parent / "bin" / "streamduck").rename(venv_bin / "streamduck")
    run = run_hook(project)
    assert run.returncode == 0, run.stderr
    assert len(run.calls) == 1


def test_no_provisioned_environment_is_reported(project: Path) -> None:
    install_streamduck(project)
    (project.parent / "azd-values.json").write_text(json.dumps({"AZURE_ENV_NAME": "dev"}), encoding="utf-8")
    run = run_hook(project)
    assert run.returncode != 0
    assert run.calls == []
    assert "azd provision" in run.stderr


def test_azure_yaml_runs_the_hook_after_deploy_on_both_platforms() -> None:
    document = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    hook = document["hooks"]["postdeploy"]
    posix, windows = ROOT / hook["posix"]["run"], ROOT / hook["windows"]["run"]
    assert posix == HOOKS / "postdeploy.sh" and os.access(posix, os.X_OK)
    assert windows == HOOKS / "postdeploy.ps1"
    assert hook["posix"]["continueOnError"] is False and hook["windows"]["continueOnError"] is False
    script = windows.read_text(encoding="utf-8")
    for needed in (
        "STREAMDUCK_VERIFY_ON_DEPLOY",
        INSTALL_HINT,
        "verify_deployment.py",
        "STREAMDUCK_VERIFY_ARGS",
    ):
        assert needed in script, f"postdeploy.ps1 lacks {needed}"
    assert "exit $LASTEXITCODE" in script


def test_the_variable_is_documented() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "STREAMDUCK_VERIFY_ON_DEPLOY" in text
    assert "STREAMDUCK_VERIFY_ARGS" in text
