"""azure.yaml, infra/main.parameters.json and the hooks have what `azd up` needs."""

from __future__ import annotations

import json
import os
import re
import subprocess

import yaml  # type: ignore[import-untyped]

from .infra_helpers import (
    FUNCTION_BICEP,
    INFRA,
    MAIN_BICEP,
    PARAMETERS_FILE,
    ROOT,
    Json,
    body,
    parse_bicep,
    require_tool,
)

AZURE_YAML = ROOT / "azure.yaml"
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*)(?:=(?P<default>[^}]*))?\}")


def azure_yaml() -> dict[str, Json]:
    document: dict[str, Json] = yaml.safe_load(AZURE_YAML.read_text(encoding="utf-8"))
    return document


def test_azure_yaml_declares_the_function_service() -> None:
    document = azure_yaml()
    assert re.fullmatch(r"[a-z][a-z0-9-]*", document["name"])
    services = document["services"]
    assert len(services) == 1, "one deployable service: the function app"
    ((name, service),) = services.items()
    assert service["host"] == "function"
    assert service["language"] in {"python", "py"}
    assert (ROOT / service["project"] / "function_app.py").is_file()
    tags = body(
        next(
            r for r in parse_bicep(FUNCTION_BICEP)["resources"].values() if r["type"] == "Microsoft.Web/sites"
        )
    )
    assert f"'azd-service-name': '{name}'" in FUNCTION_BICEP.read_text(encoding="utf-8"), (
        "the function app must carry the azd-service-name tag of the service"
    )
    assert tags["kind"] == "functionapp,linux"


def test_azure_yaml_points_to_the_bicep_and_the_hooks() -> None:
    document = azure_yaml()
    infra = document.get("infra", {})
    assert infra.get("provider", "bicep") == "bicep"
    assert (ROOT / infra.get("path", "infra") / f"{infra.get('module', 'main')}.bicep") == MAIN_BICEP
    hook = document["hooks"]["postprovision"]
    posix = ROOT / hook["posix"]["run"]
    assert posix.is_file(), f"{posix.name} is missing"
    assert os.access(posix, os.X_OK), f"{posix.name} must be executable"
    assert (ROOT / hook["windows"]["run"]).is_file()


def test_hook_scripts_are_valid_sh() -> None:
    sh = require_tool("sh", "apt-get install dash")
    scripts = sorted((INFRA / "hooks").glob("*.sh"))
    assert {p.name for p in scripts} >= {"postprovision.sh", "postdeploy.sh"}
    for script in scripts:
        result = subprocess.run([sh, "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"
        assert script.with_suffix(".ps1").is_file(), f"{script.name} needs its Windows twin"


def test_main_bicep_is_subscription_scoped() -> None:
    assert parse_bicep(MAIN_BICEP)["globals"]["scope"]["value"] == "subscription"


def test_parameters_file_has_the_azd_keys() -> None:
    document = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))
    assert "deploymentParameters.json" in document["$schema"]
    assert document["contentVersion"] == "1.0.0.0"
    values = {name: entry["value"] for name, entry in document["parameters"].items()}
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["principalId"] == "${AZURE_PRINCIPAL_ID}"


def test_parameters_match_the_bicep_declarations() -> None:
    declared = parse_bicep(MAIN_BICEP)["parameters"]
    given = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))["parameters"]
    unknown = sorted(set(given) - set(declared))
    assert not unknown, f"parameters not declared in main.bicep: {unknown}"
    required = sorted(name for name, p in declared.items() if p.get("default") is None)
    missing = [name for name in required if name not in given]
    assert not missing, f"main.bicep parameters without default must be in main.parameters.json: {missing}"


def test_secure_parameters_come_from_the_azd_environment() -> None:
    declared = parse_bicep(MAIN_BICEP)["parameters"]
    given = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))["parameters"]
    for name, param in declared.items():
        if any(d["type"] == "secure" for d in param["decorators"]) and name in given:
            value = given[name]["value"]
            match = _PLACEHOLDER.fullmatch(value) if isinstance(value, str) else None
            assert match, f"{name}: a secret must be an azd placeholder, never a literal"
            assert not match["default"], f"{name}: a secret placeholder must not carry a default"


def test_placeholders_are_well_formed() -> None:
    text = PARAMETERS_FILE.read_text(encoding="utf-8")
    for raw in re.findall(r"\$\{[^}]*\}", text):
        assert _PLACEHOLDER.fullmatch(raw), f"malformed azd placeholder {raw}"


def test_mappings_parameter_is_complete() -> None:
    given = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))["parameters"]
    mappings = given["mappings"]["value"]
    assert mappings, "the default deployment provisions at least one mapping"
    allowed = {
        "eventHub",
        "consumerGroup",
        "database",
        "schema",
        "table",
        "partitions",
        "retentionHours",
        "batch",
        "format",
        "retentionDays",
    }
    for n, mapping in enumerate(mappings, start=1):
        assert {"eventHub", "consumerGroup", "database", "schema", "table"} <= set(mapping), f"mapping {n}"
        assert set(mapping) <= allowed, f"mapping {n}: unknown keys {sorted(set(mapping) - allowed)}"
        assert 1 <= mapping.get("retentionHours", 24) <= 168, (
            f"mapping {n}: Standard tier keeps at most 168 h"
        )
        assert 1 <= mapping.get("partitions", 4) <= 32, f"mapping {n}: 1..32 partitions"


def test_outputs_feed_the_hook() -> None:
    outputs = parse_bicep(MAIN_BICEP)["outputs"]
    for name in (
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_RESOURCE_GROUP",
        "STREAMDUCK_LOCAL_SETTINGS",
        "EVENTHUB_NAMESPACE",
    ):
        assert name in outputs
    assert "STREAMDUCK_LOCAL_SETTINGS" in (INFRA / "hooks" / "write_local_settings.py").read_text(
        encoding="utf-8"
    )
