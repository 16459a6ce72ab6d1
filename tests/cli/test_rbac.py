"""validate-config --show-rbac: the roles printed are the roles the Bicep grants, by name and GUID."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.cli import ROOT, base_env, run_cli

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BICEP = sorted([ROOT / "infra" / "main.bicep", *(ROOT / "infra" / "app").glob("*.bicep")])
RBAC_BICEP = ROOT / "infra" / "app" / "rbac.bicep"
MAIN_BICEP = ROOT / "infra" / "main.bicep"

ENV = {
    "EVENTHUB_NAMESPACE": "sd-ns.servicebus.windows.net",
    "EVENTHUBNAME_1": "telemetry",
    "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
    "MOTHERDUCK_1_DATABASE": "analytics",
    "MOTHERDUCK_1_SCHEMA": "raw",
    "MOTHERDUCK_1_TABLE": "events",
    "EVENTHUBNAME_2": "clicks",
    "EVENTHUBNAME_2_CONSUMER_GROUP": "$Default",
    "MOTHERDUCK_2_DATABASE": "analytics",
    "MOTHERDUCK_2_SCHEMA": "raw",
    "MOTHERDUCK_2_TABLE": "clicks",
    "AzureWebJobsStorage__accountName": "sdstorage",
}


def rbac(tmp_path: Path) -> dict[str, Any]:
    result = run_cli(
        "validate-config", "--offline", "--show-rbac", "--json", env=base_env(tmp_path, **ENV), cwd=tmp_path
    )
    assert "Traceback" not in result.stderr, result.stderr
    report: dict[str, Any] = result.json()["rbac"]
    return report


def commented_roles(path: Path) -> dict[str, str]:
    """GUID -> role name, from Bicep lines like ``'a638…' // Azure Event Hubs Data Receiver``."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.search(rf"'({GUID.pattern})'\s*//\s*([^:]+)", line)
        if match:
            found[match[1]] = match[2].strip()
    return found


def test_every_printed_role_is_in_the_bicep_with_the_same_name(tmp_path: Path) -> None:
    bicep_roles: dict[str, str] = {}
    for path in BICEP:
        bicep_roles.update(commented_roles(path))
    grants = rbac(tmp_path)["grants"]
    roles = [g for g in grants if g["role_id"] is not None]
    assert {g["role"] for g in roles} == {
        "Azure Event Hubs Data Receiver",
        "Azure Event Hubs Data Sender",
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
        "Key Vault Secrets User",
        "Monitoring Metrics Publisher",
    }
    for g in roles:
        assert bicep_roles.get(g["role_id"]) == g["role"], (g, "not granted under that name in infra/")
        assert f"--role {g['role_id']}" in g["command"]
        assert g["command"].startswith("az role assignment create --assignee-object-id <")


def test_every_role_the_bicep_grants_the_app_is_printed(tmp_path: Path) -> None:
    printed = {g["role_id"] for g in rbac(tmp_path)["grants"]}
    # rbac.bicep's own roles (storage, monitoring) and the ones main.bicep passes for the app's identity
    app_module = MAIN_BICEP.read_text(encoding="utf-8").split("module rbacApp", 1)[1].split("\n}\n", 1)[0]
    expected = set(commented_roles(RBAC_BICEP)) | set(GUID.findall(app_module))
    assert expected, "no role GUIDs found in the Bicep"
    assert expected <= printed, expected - printed
    assert "accessPolicyName: 'default'" in RBAC_BICEP.read_text(encoding="utf-8")


def test_scopes_use_the_settings_and_placeholders(tmp_path: Path) -> None:
    grants = {(g["resource"], g["role"]): g for g in rbac(tmp_path)["grants"]}
    receiver = grants[("Event Hubs namespace", "Azure Event Hubs Data Receiver")]
    assert receiver["scope"].endswith("/providers/Microsoft.EventHub/namespaces/sd-ns")
    assert "telemetry, clicks" in receiver["why"]
    assert receiver["for"].startswith("functions")
    sender = grants[("Event Hubs namespace", "Azure Event Hubs Data Sender")]
    assert sender["for"].startswith("simulator")
    blob = grants[("host storage (AzureWebJobsStorage)", "Storage Blob Data Owner")]
    assert blob["scope"].endswith("/providers/Microsoft.Storage/storageAccounts/sdstorage")
    assert blob["scope"].startswith("/subscriptions/<subscription-id>/resourceGroups/<resource-group>/")
    redis = next(g for g in grants.values() if g["role_id"] is None)
    assert redis["command"].startswith("az redisenterprise database access-policy-assignment create ")
    assert "--access-policy-name default --object-id <principal-id>" in redis["command"]


def test_table_output_lists_roles_and_commands(tmp_path: Path) -> None:
    result = run_cli(
        "validate-config", "--offline", "--show-rbac", env=base_env(tmp_path, **ENV), cwd=tmp_path
    )
    assert "Traceback" not in result.stderr
    assert "a638d3c7-ab3a-418d-83e6-5f17a39d4fde" in result.stdout
    assert "Storage Table Data Contributor" in result.stdout
    commands = [line for line in result.stdout.splitlines() if line.startswith("az ")]
    assert len(commands) == 8
    without = run_cli("validate-config", "--offline", env=base_env(tmp_path, **ENV), cwd=tmp_path)
    assert "az role assignment" not in without.stdout
