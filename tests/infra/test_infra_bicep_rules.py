"""Rules the infrastructure must keep: identity-only access, Flex Consumption, RBAC names, networking.

Each rule reads the parsed Bicep (pycep JSON), so a regression fails here before anyone runs `azd up`.
"""

from __future__ import annotations

import json
import re

from .infra_helpers import BICEP_FILES, DEPLOY_DOC, INFRA, MAIN_BICEP, Json, body, parse_bicep, strings, walk

APP = INFRA / "app"

# Built-in role definitions the deployment assigns (name -> GUID, from Azure's built-in roles).
KNOWN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "a638d3c7-ab3a-418d-83e6-5f17a39d4fde": "Azure Event Hubs Data Receiver",
    "2b629674-e913-4c01-ae53-ef4638d8f975": "Azure Event Hubs Data Sender",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def resources(file: str) -> dict[str, Json]:
    result: dict[str, Json] = parse_bicep(APP / file)["resources"]
    return result


def of_type(file: str, resource_type: str) -> list[Json]:
    return [r for r in resources(file).values() if r["type"] == resource_type and not r["existing"]]


def test_role_assignment_names_are_guid_of_scope_principal_role() -> None:
    found = 0
    for path in BICEP_FILES:
        for name, resource in parse_bicep(path).get("resources", {}).items():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            found += 1
            guid = body(resource)["name"]["function"]
            assert guid["type"] == "guid", f"{path.name}:{name} is not named with guid(...)"
            args = guid["parameters"]
            scope = args["base_string"]["operator"]["operands"]
            assert scope["operand_2"] == "id", f"{path.name}:{name}: first guid() argument must be <scope>.id"
            assert scope["operand_1"] == body(resource)["scope"], f"{path.name}:{name}: guid() scope != scope"
            assert args["extra_string_1"] == "principalId", (
                f"{path.name}:{name}: second argument must be principalId"
            )
            assert args.get("extra_string_2"), f"{path.name}:{name}: third argument must be the role"
    assert found >= 4


def test_assigned_roles_are_known_builtin_roles() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in (MAIN_BICEP, APP / "rbac.bicep"))
    guids = {g for g in re.findall(r"'([0-9a-f-]{36})'", text) if _GUID.match(g)}
    assert guids, "no role GUIDs found"
    assert guids <= set(KNOWN_ROLES), f"unknown role GUIDs: {sorted(guids - set(KNOWN_ROLES))}"
    for guid in guids:
        line = next(line for line in text.splitlines() if guid in line)
        assert "//" in line, f"role {guid} ({KNOWN_ROLES[guid]}) needs a comment naming it"


def test_app_and_deployer_get_data_roles() -> None:
    modules = parse_bicep(MAIN_BICEP)["modules"]
    rbac = {name: m for name, m in modules.items() if m["detail"]["path"] == "app/rbac.bicep"}
    assert set(rbac) == {"rbacApp", "rbacDeployer"}
    assert body(rbac["rbacDeployer"])["params"]["principalId"] == "principalId"
    assert parse_bicep(MAIN_BICEP)["parameters"]["principalId"]["type"] == "string"


def test_function_app_is_flex_consumption_python_313_with_user_assigned_identity() -> None:
    (plan,) = of_type("function.bicep", "Microsoft.Web/serverfarms")
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    (site,) = of_type("function.bicep", "Microsoft.Web/sites")
    site_body = body(site)
    assert site_body["identity"]["type"] == "UserAssigned"
    props = site_body["properties"]
    assert props["keyVaultReferenceIdentity"] == "identityId"
    assert props["httpsOnly"] is True
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"


def test_publishing_credentials_are_disabled() -> None:
    policies = of_type("function.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert sorted(body(p)["name"] for p in policies) == ["ftp", "scm"]
    assert all(body(p)["properties"]["allow"] is False for p in policies)


def test_identity_only_access() -> None:
    (storage,) = of_type("storage.bicep", "Microsoft.Storage/storageAccounts")
    assert body(storage)["properties"]["allowSharedKeyAccess"] is False
    (namespace,) = of_type("eventhubs.bicep", "Microsoft.EventHub/namespaces")
    assert body(namespace)["properties"]["disableLocalAuth"] is True
    (workspace,) = of_type("monitoring.bicep", "Microsoft.OperationalInsights/workspaces")
    assert body(workspace)["properties"]["features"]["disableLocalAuth"] is True
    (insights,) = of_type("monitoring.bicep", "Microsoft.Insights/components")
    assert body(insights)["properties"]["DisableLocalAuth"] is True
    (vault,) = of_type("keyvault.bicep", "Microsoft.KeyVault/vaults")
    assert body(vault)["properties"]["enableRbacAuthorization"] is True
    main_params = parse_bicep(MAIN_BICEP)["parameters"]
    assert main_params["redisUseAccessKeys"]["default"] is False, "Redis must default to Entra ID"


def test_kafka_namespace_is_separate_and_sas_is_limited_to_listen_and_send() -> None:
    rules = of_type("kafka.bicep", "Microsoft.EventHub/namespaces/authorizationRules")
    assert rules, "the Kafka namespace needs its SAS rules"
    for rule in rules:
        assert set(body(rule)["properties"]["rights"]) <= {"Listen", "Send"}, "no Manage rights for SAS"
    assert not any(r["type"].endswith("authorizationRules") for r in resources("eventhubs.bicep").values())


def test_docs_say_the_kafka_namespace_keeps_azures_root_key() -> None:
    """SAS on means Azure's RootManageSharedAccessKey (Manage) works too: the docs must not hide it."""
    (namespace,) = of_type("kafka.bicep", "Microsoft.EventHub/namespaces")
    assert body(namespace)["properties"]["disableLocalAuth"] is False
    names = {
        body(r)["name"] for r in of_type("kafka.bicep", "Microsoft.EventHub/namespaces/authorizationRules")
    }
    assert "RootManageSharedAccessKey" not in names, "StreamDuck must not use the root rule"
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    decision = text.split("## Kafka authentication: the decision", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "RootManageSharedAccessKey",
        "listKeys",
        "keys renew",
        "--name RootManageSharedAccessKey",
        "disableLocalAuth",
        "OAUTHBEARER",
        "SCRAM",
        "no managed-identity mode",
    ):
        assert needed in decision, f"docs/deploy.md Kafka decision lacks {needed!r}"
    assert "only two" not in decision.lower()


def test_flex_subnet_delegation_is_microsoft_app_environments() -> None:
    (vnet,) = of_type("network.bicep", "Microsoft.Network/virtualNetworks")
    subnets = {s["name"]: s["properties"] for s in body(vnet)["properties"]["subnets"]}
    delegations = [d["properties"]["serviceName"] for d in subnets["function"]["delegations"]]
    assert delegations == ["Microsoft.App/environments"]
    every_delegation = {
        node["serviceName"]
        for path in BICEP_FILES
        for node in walk(parse_bicep(path))
        if isinstance(node, dict) and "serviceName" in node
    }
    assert every_delegation == {"Microsoft.App/environments"}, (
        "Flex Consumption needs Microsoft.App/environments"
    )


def test_private_endpoints_really_exist_for_every_service() -> None:
    endpoint_types = {r["type"] for r in resources("private-endpoint.bicep").values()}
    assert {
        "Microsoft.Network/privateEndpoints",
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    } <= (endpoint_types)
    modules = parse_bicep(APP / "private-endpoints.bicep")["modules"]
    groups = {body(m)["params"]["groupId"] for m in modules.values()}
    assert groups == {"blob", "queue", "table", "namespace", "vault", "redisEnterprise"}
    zones = parse_bicep(APP / "private-endpoints.bicep")["resources"]["dnsZones"]
    assert zones["type"] == "Microsoft.Network/privateDnsZones"


def test_services_close_public_access_with_the_vnet() -> None:
    for file in ("storage.bicep", "eventhubs.bicep", "keyvault.bicep", "kafka.bicep", "redis.bicep"):
        assert "publicNetworkAccess: publicNetworkAccess" in (APP / file).read_text(encoding="utf-8"), file
    main = parse_bicep(MAIN_BICEP)["modules"]
    for name in ("storage", "eventHubs", "keyVault", "kafka", "redis"):
        expression = body(main[name])["params"]["publicNetworkAccess"]
        assert {"enableVnet", "Disabled", "Enabled"} <= set(strings(expression)), name


def test_diagnostic_settings_send_to_log_analytics() -> None:
    for file in (
        "storage.bicep",
        "eventhubs.bicep",
        "kafka.bicep",
        "keyvault.bicep",
        "function.bicep",
        "redis.bicep",
    ):
        diagnostics = of_type(file, "Microsoft.Insights/diagnosticSettings")
        assert diagnostics, f"{file} has no diagnostic setting"
        for setting in diagnostics:
            assert body(setting)["properties"]["workspaceId"] == "workspaceId", file


def test_workbook_and_alert_rules() -> None:
    (workbook,) = of_type("observability.bicep", "Microsoft.Insights/workbooks")
    assert body(workbook)["kind"] == "shared"
    document = json.loads((APP / "workbook.json").read_text(encoding="utf-8"))
    titles = " ".join(str(item["content"].get("title", "")) for item in document["items"]).lower()
    for topic in ("ingestion rate", "failed", "retries", "dead-letter", "lag"):
        assert topic in titles, f"workbook lacks a tile about {topic}"
    rules = {
        name: body(a)["properties"]
        for name, a in resources("observability.bicep").items()
        if a["type"] == "Microsoft.Insights/scheduledQueryRules"
    }
    assert set(rules) == {"deadLetterAlert", "lagAlert", "jobFailureAlert", "stalledAlert"}
    for name, rule in rules.items():
        assert rule["scopes"] == ["workspaceId"], name
        assert rule["actions"]["actionGroups"] == "alertActions", name
        (criterion,) = rule["criteria"]["allOf"]
        assert criterion["operator"] == "GreaterThan", name
        assert all(d["name"] in criterion["query"] for d in criterion.get("dimensions", [])), name
        if "metricMeasureColumn" in criterion:
            assert f"{criterion['metricMeasureColumn']} = " in criterion["query"], name
    assert rules["deadLetterAlert"]["criteria"]["allOf"][0]["threshold"] == 0
    assert rules["lagAlert"]["criteria"]["allOf"][0]["threshold"] == "lagThresholdSeconds"
    assert rules["jobFailureAlert"]["criteria"]["allOf"][0]["threshold"] == "failureThreshold"
    assert "stalledMinutes" in str(rules["stalledAlert"]["windowSize"])
    params = body(parse_bicep(MAIN_BICEP)["modules"]["observability"])["params"]
    assert params["lagThresholdSeconds"] == "alertLagSeconds"
    assert params["stalledMinutes"] == "alertStalledMinutes"


def test_outputs_are_upper_snake() -> None:
    outputs = parse_bicep(MAIN_BICEP)["outputs"]
    assert outputs
    for name in outputs:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*", name), f"output {name} is not UPPER_SNAKE"


def test_abbreviations_used_exist() -> None:
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text(encoding="utf-8"))
    used = set(re.findall(r"abbrs\.(\w+)", MAIN_BICEP.read_text(encoding="utf-8")))
    assert used, "main.bicep should name resources with abbreviations.json"
    assert used <= set(abbreviations), f"missing abbreviations: {sorted(used - set(abbreviations))}"


def test_every_module_file_is_used() -> None:
    used = set()
    for path in BICEP_FILES:
        for module in parse_bicep(path).get("modules", {}).values():
            used.add((path.parent / module["detail"]["path"]).resolve())
    orphans = [p.name for p in BICEP_FILES if p != MAIN_BICEP and p.resolve() not in used]
    assert not orphans, f"unused Bicep modules: {orphans}"


def test_no_connection_strings_or_keys_in_outputs() -> None:
    for path in BICEP_FILES:
        for name, output in parse_bicep(path).get("outputs", {}).items():
            text = " ".join(strings(output.get("value")))
            assert "listKeys" not in text, f"{path.name} output {name} leaks a key"
    assert not any(
        isinstance(n, dict) and n.get("type") == "list_keys"
        for p in BICEP_FILES
        for n in walk(parse_bicep(p).get("outputs", {}))
    )
