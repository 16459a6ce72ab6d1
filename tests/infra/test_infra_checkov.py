"""Checkov's offline Bicep scan: no failed check except the skips of infra/.checkov.yaml, none stale.

The scan runs once per session (about 15 s). It uses infra/.checkov.yaml with an empty skip list
(``--skip-check`` on the command line replaces the file's list), so the test sees every failure and can
tell an unlisted failure (a regression) from a listed one, and a listed skip that no longer fails (stale).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass

import pytest
import yaml  # type: ignore[import-untyped]

from .infra_helpers import CHECKOV_CONFIG, INFRA, ROOT, require_tool

_SKIP_LINE = re.compile(r"^\s*-\s*(?P<check>CKV2?_[A-Z]+_\d+)\s*(?:#\s*(?P<reason>.*))?$")
NO_SUCH_CHECK = "CKV_STREAMDUCK_NONE"  # overrides the config's skip list without skipping anything


@dataclass(frozen=True)
class Scan:
    passed: list[dict[str, object]]
    failed: list[dict[str, object]]
    seconds: float


def configured_skips() -> dict[str, str]:
    """Check id -> reason, from the comment that follows each skip-check entry."""
    skips: dict[str, str] = {}
    in_list = False
    for line in CHECKOV_CONFIG.read_text(encoding="utf-8").splitlines():
        if line.startswith("skip-check:"):
            in_list = True
            continue
        if in_list and line and not line.startswith((" ", "-")):
            in_list = False
        match = _SKIP_LINE.match(line) if in_list else None
        if match:
            skips[match["check"]] = (match["reason"] or "").strip()
    return skips


@pytest.fixture(scope="session")
def checkov_scan() -> Scan:
    checkov = require_tool("checkov", "pip install -r requirements-dev.txt")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    command = [
        checkov, "--config-file", str(CHECKOV_CONFIG), "-d", str(INFRA), "--framework", "bicep",
        "--skip-download", "--skip-check", NO_SUCH_CHECK, "--output", "json",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False
    )
    seconds = time.monotonic() - started
    # Exit code 1 just means "some check failed"; anything else, or no JSON, is a broken run.
    assert result.returncode in (0, 1), (
        f"checkov failed to run ({result.returncode}):\n{result.stderr[-3000:]}"
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert len(bicep) == 1, f"expected one bicep report, got {[r.get('check_type') for r in reports]}"
    results = bicep[0]["results"]
    return Scan(results["passed_checks"], results["failed_checks"], seconds)


def test_checkov_config_is_the_offline_bicep_scan() -> None:
    config = yaml.safe_load(CHECKOV_CONFIG.read_text(encoding="utf-8"))
    assert config["framework"] == ["bicep"]
    assert config["skip-download"] is True
    assert set(config["skip-check"]) == set(configured_skips()), (
        "every skip-check entry is one `- ID  # reason` line"
    )


def test_every_skip_has_a_reason() -> None:
    skips = configured_skips()
    assert skips, "infra/.checkov.yaml lists no skip-check entries"
    for check, reason in skips.items():
        assert len(reason) >= 30, f"{check}: give the reason for skipping it after '#' on the same line"


@pytest.mark.slow  # the Checkov scan of every Bicep file takes seconds
def test_checkov_scans_the_security_relevant_resources(checkov_scan: Scan) -> None:
    scanned = {str(c["resource"]).rsplit(".", 1)[0] for c in checkov_scan.passed + checkov_scan.failed}
    for resource_type in (
        "Microsoft.Web/sites",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.KeyVault/vaults",
        "Microsoft.EventHub/namespaces",
    ):
        assert resource_type in scanned, f"checkov no longer checks {resource_type}: is it still inline?"
    assert checkov_scan.seconds < 300, f"the Checkov scan took {checkov_scan.seconds:.0f} s"


@pytest.mark.slow  # the Checkov scan of every Bicep file takes seconds
def test_no_failed_check_except_the_listed_skips(checkov_scan: Scan) -> None:
    skips = configured_skips()
    unlisted = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} in {c['file_path']}"
        for c in checkov_scan.failed
        if c["check_id"] not in skips
    ]
    assert not unlisted, (
        "Checkov failures (fix them, or skip with a reason in infra/.checkov.yaml):\n" + "\n".join(unlisted)
    )


@pytest.mark.slow  # the Checkov scan of every Bicep file takes seconds
def test_no_stale_skip(checkov_scan: Scan) -> None:
    failing = {str(c["check_id"]) for c in checkov_scan.failed}
    stale = sorted(set(configured_skips()) - failing)
    assert not stale, f"these skips in infra/.checkov.yaml no longer fail; remove them: {stale}"
