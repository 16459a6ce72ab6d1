"""The function app sets nothing that Flex Consumption deprecates, and sends telemetry the documented way.

DEPRECATED is the table "Flex Consumption plan deprecations" of the app settings reference (DEPRECATIONS_URL),
copied row by row with Microsoft's reason. Some rows are more than advice: ``siteConfig.ftpsState`` is rejected
with ARM error 51021 in some regions. The check looks at every ``Microsoft.Web/sites`` resource of infra/: the
keys of ``properties`` and ``properties.siteConfig`` and the names of every app setting it is given (through
the variables it references), plus the ``extraAppSettings`` a user passes in infra/main.parameters.json.
Names compare case-insensitively, as Azure compares them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from .infra_helpers import (
    BICEP_FILES,
    FUNCTION_BICEP,
    INFRA,
    MAIN_BICEP,
    ROOT,
    Json,
    body,
    parameters,
    parse_bicep,
    strings,
    walk,
)

DEPRECATIONS_URL = "https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations"
OPENTELEMETRY_URL = (
    "https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto#configure-application-settings"
)

# The table at DEPRECATIONS_URL (page dated 2025-12-22), in its order: setting or property -> reason given.
DEPRECATED: dict[str, str] = {
    "ENABLE_ORYX_BUILD": "Replaced by the remoteBuild parameter when deploying in Flex Consumption",
    "FUNCTIONS_EXTENSION_VERSION": "App Setting is set by the backend. A value of ~1 can be ignored.",
    "FUNCTIONS_WORKER_RUNTIME": "Replaced by name in properties.functionAppConfig.runtime",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "Replaced by version in properties.functionAppConfig.runtime",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "Replaced by scale and concurrency's trigger section",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "Setting not valid",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "Setting not valid",
    "SCM_DO_BUILD_DURING_DEPLOYMENT": "Replaced by the remoteBuild parameter when deploying in Flex Consumption",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "Replaced by functionAppConfig's deployment section",
    "WEBSITE_CONTENTOVERVNET": "Not used for networking in Flex Consumption",
    "WEBSITE_CONTENTSHARE": "Replaced by functionAppConfig's deployment section",
    "WEBSITE_DNS_SERVER": "DNS is inherited from the integrated virtual network in Flex",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": (
        "Replaced by maximumInstanceCount in properties.functionAppConfig.scaleAndConcurrency"
    ),
    "WEBSITE_NODE_DEFAULT_VERSION": "Replaced by version in properties.functionAppConfig.runtime",
    "WEBSITE_RUN_FROM_PACKAGE": "Not used for deployments in Flex Consumption",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "Content share isn't used in Flex Consumption",
    "WEBSITE_VNET_ROUTE_ALL": "Not used for networking in Flex Consumption",
    "properties.alwaysOn": "Not valid",
    "properties.containerSize": "Renamed as instanceMemoryMB",
    "properties.dnsConfiguration": "Custom DNS servers configured in the Azure Virtual Network are automatically used",
    "properties.ftpsState": "FTPS not supported",
    "properties.isReserved": "Not valid",
    "properties.IsXenon": "Not valid",
    "properties.javaVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "properties.LinuxFxVersion": "Replaced by properties.functionAppConfig.runtime",
    "properties.netFrameworkVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "properties.powerShellVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "properties.siteConfig.functionAppScaleLimit": "Renamed as maximumInstanceCount",
    "properties.siteConfig.preWarmedInstanceCount": "Renamed as alwaysReadyInstances",
    "properties.use32BitWorkerProcess": "32-bit not supported",
    "properties.vnetBackupRestoreEnabled": "Not used for networking in Flex Consumption",
    "properties.vnetContentShareEnabled": "Not used for networking in Flex Consumption",
    "properties.vnetImagePullEnabled": "Not used for networking in Flex Consumption",
    "properties.vnetRouteAllEnabled": "Not used for networking in Flex Consumption",
    "properties.windowsFxVersion": "Not valid",
}

DEPRECATED_SETTINGS = {name.upper(): name for name in DEPRECATED if not name.startswith("properties.")}
# The table writes site and siteConfig properties as properties.X (alwaysOn, ftpsState, linuxFxVersion... live
# in siteConfig in the ARM schema, containerSize and vnet* in properties): X is refused at either level.
DEPRECATED_PROPERTIES = {
    name.rsplit(".", 1)[1].lower(): name for name in DEPRECATED if name.startswith("properties.")
}


# ------------------------------------------------------------------------------------ what Bicep gives a site
def _setting_names(node: Json, variables: Mapping[str, Json], seen: set[str]) -> Iterable[str]:
    """Names of the ``{name, value}`` objects in ``node`` and in every variable it references."""
    for item in walk(node):
        if isinstance(item, dict) and "name" in item and "value" in item and isinstance(item["name"], str):
            yield item["name"]
    for word in set(strings(node)):
        if word in variables and word not in seen:
            seen.add(word)
            yield from _setting_names(variables[word]["value"], variables, seen)


def site_configuration(tree: Json) -> list[tuple[str, dict[str, Json], dict[str, Json], set[str]]]:
    """(resource, properties, siteConfig, app setting names) of each Microsoft.Web/sites in a parsed file."""
    found = []
    for name, resource in tree.get("resources", {}).items():
        if resource["type"] != "Microsoft.Web/sites" or resource.get("existing"):
            continue
        properties = body(resource).get("properties", {})
        site_config = properties.get("siteConfig", {})
        settings = set(_setting_names(site_config.get("appSettings", []), tree.get("variables", {}), set()))
        found.append((name, properties, site_config, settings))
    return found


def deprecated_uses(
    properties: Mapping[str, Json], site_config: Mapping[str, Json], settings: Iterable[str]
) -> list[str]:
    """Every entry of the deprecations table that this site configuration uses."""
    problems = []
    for level, keys in (("properties", properties), ("properties.siteConfig", site_config)):
        for key in keys:
            if key.lower() in DEPRECATED_PROPERTIES:
                entry = DEPRECATED_PROPERTIES[key.lower()]
                problems.append(f"{level}.{key}: {DEPRECATED[entry]} ({entry})")
    for setting in settings:
        if setting.upper() in DEPRECATED_SETTINGS:
            entry = DEPRECATED_SETTINGS[setting.upper()]
            problems.append(f"app setting {setting}: {DEPRECATED[entry]}")
    return problems


# ------------------------------------------------------------------------------------------------ the checks
def test_the_deprecation_list_is_the_documented_table() -> None:
    assert len(DEPRECATED) == 35, "keep DEPRECATED identical to the table at " + DEPRECATIONS_URL
    for required in (
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
        "properties.ftpsState",
        "properties.LinuxFxVersion",
        "properties.siteConfig.functionAppScaleLimit",
        "properties.siteConfig.preWarmedInstanceCount",
        "properties.alwaysOn",
        "properties.use32BitWorkerProcess",
    ):
        assert required in DEPRECATED, required
    assert all(reason for reason in DEPRECATED.values())


def test_no_site_sets_a_deprecated_property_or_app_setting() -> None:
    sites = [(path, *site) for path in BICEP_FILES for site in site_configuration(parse_bicep(path))]
    assert [(path, name) for path, name, *_ in sites] == [(FUNCTION_BICEP, "site")], (
        "expected the function app as the only Microsoft.Web/sites resource"
    )
    for path, name, properties, site_config, settings in sites:
        assert "FUNCTIONS_WORKER_RUNTIME" not in settings  # the explicit one, for a readable failure first
        problems = deprecated_uses(properties, site_config, settings)
        assert not problems, (
            f"{path.name}:{name} uses what Flex Consumption deprecates ({DEPRECATIONS_URL}):\n"
            + "\n".join(problems)
        )


def test_no_separate_site_config_resource_sets_them_either() -> None:
    """sites/config 'web' or 'appsettings' would bypass the inline check above."""
    for path in BICEP_FILES:
        for name, resource in parse_bicep(path).get("resources", {}).items():
            assert not resource["type"].startswith("Microsoft.Web/sites/config"), (
                f"{path.name}:{name}: extend this test to {resource['type']} before adding it"
            )


def test_extra_app_settings_given_by_the_user_are_not_deprecated() -> None:
    declared = parse_bicep(MAIN_BICEP)["parameters"]["extraAppSettings"]
    given = parameters().get("extraAppSettings", [])
    names = [s["name"] for s in (given if isinstance(given, list) else []) if isinstance(s, dict)]
    names += [s["name"] for s in (declared.get("default") or []) if isinstance(s, dict)]
    problems = deprecated_uses({}, {}, names)
    assert not problems, f"infra/main.parameters.json extraAppSettings ({DEPRECATIONS_URL}):\n" + "\n".join(
        problems
    )


def test_the_check_reports_each_kind_of_deprecated_use() -> None:
    """A site written the way Consumption/Premium templates do is refused entry by entry."""
    problems = deprecated_uses(
        {"httpsOnly": True, "vnetRouteAllEnabled": True, "containerSize": 1536},
        {
            "ftpsState": "Disabled",
            "linuxFxVersion": "Python|3.13",
            "functionAppScaleLimit": 40,
            "alwaysOn": True,
        },
        ["AzureWebJobsStorage__credential", "FUNCTIONS_WORKER_RUNTIME", "website_run_from_package"],
    )
    assert sorted(problems) == sorted(
        [
            "properties.vnetRouteAllEnabled: Not used for networking in Flex Consumption "
            "(properties.vnetRouteAllEnabled)",
            "properties.containerSize: Renamed as instanceMemoryMB (properties.containerSize)",
            "properties.siteConfig.ftpsState: FTPS not supported (properties.ftpsState)",
            "properties.siteConfig.linuxFxVersion: Replaced by properties.functionAppConfig.runtime "
            "(properties.LinuxFxVersion)",
            "properties.siteConfig.functionAppScaleLimit: Renamed as maximumInstanceCount "
            "(properties.siteConfig.functionAppScaleLimit)",
            "properties.siteConfig.alwaysOn: Not valid (properties.alwaysOn)",
            "app setting FUNCTIONS_WORKER_RUNTIME: Replaced by name in properties.functionAppConfig.runtime",
            "app setting website_run_from_package: Not used for deployments in Flex Consumption",
        ]
    )


def test_runtime_scale_and_deployment_come_from_function_app_config() -> None:
    ((_, properties, _, _),) = site_configuration(parse_bicep(FUNCTION_BICEP))
    config = properties["functionAppConfig"]
    assert set(config) == {"deployment", "scaleAndConcurrency", "runtime"}
    assert set(config["scaleAndConcurrency"]) == {"maximumInstanceCount", "instanceMemoryMB"}


def test_the_documented_azure_check_lists_every_deprecated_app_setting() -> None:
    """docs/deploy.md gives an `az` query for the deployed app; it checks the same table as this test."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    command = text.split("az functionapp config appsettings list", 1)[1].split("\n\n", 1)[0]
    checked = set(re.findall(r"'([A-Z0-9_]+)'", command))
    backend_set = {"FUNCTIONS_EXTENSION_VERSION"}  # "App Setting is set by the backend": Azure shows it
    assert checked == set(DEPRECATED_SETTINGS) - backend_set


# ------------------------------------------------------------------------------- Application Insights (Entra)
def _site_settings() -> dict[str, Json]:
    tree = parse_bicep(FUNCTION_BICEP)
    values: dict[str, Json] = {}
    for variable in tree["variables"].values():
        for item in walk(variable["value"]):
            if isinstance(item, dict) and set(item) == {"name", "value"} and isinstance(item["name"], str):
                values.setdefault(item["name"], item["value"])
    ((_, _, _, names),) = site_configuration(tree)
    return {name: values[name] for name in names if name in values}


def test_python_worker_exports_opentelemetry_with_the_apps_identity() -> None:
    settings = _site_settings()
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true", OPENTELEMETRY_URL
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "appInsightsConnectionString"
    auth = str(settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"])
    assert sorted(auth.split(";")) == ["Authorization=AAD", "ClientId=${identityClientId}"], auth
    # configure_azure_monitor(credential=ManagedIdentityCredential(client_id=AZURE_CLIENT_ID)) in the app.
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host.get("telemetryMode") == "OpenTelemetry", "host.json must export OpenTelemetry"


def test_the_apps_identity_may_publish_to_application_insights() -> None:
    """Local auth is off on Application Insights: without Monitoring Metrics Publisher nothing arrives."""
    rbac = parse_bicep(INFRA / "app" / "rbac.bicep")
    role = body(rbac["resources"]["telemetryRole"])
    assert role["scope"] == "appInsights"
    assert "monitoringMetricsPublisher" in set(strings(role["properties"]["roleDefinitionId"]))
    assert rbac["variables"]["monitoringMetricsPublisher"]["value"] == "3913510d-42f4-4e42-8a64-420c390055eb"
    app = body(parse_bicep(MAIN_BICEP)["modules"]["rbacApp"])["params"]
    assert "identity" in set(strings(app["principalId"])), "the role goes to the app's identity"


# ------------------------------------------------------------------------------- the cost arithmetic of the docs
ON_DEMAND_PER_GB_S = (
    0.000026  # Flex Consumption on demand, East US, https://azure.microsoft.com/pricing/details/functions/
)
ALWAYS_READY_BASELINE_PER_GB_S = 0.000004
FREE_GB_S = 100_000
MONTH_S = 730 * 3600
MINIMUM_BILLED_S = 1  # https://learn.microsoft.com/azure/azure-functions/functions-consumption-costs


def _runs_per_month(schedule: str) -> int:
    """Runs in 30 days of a six-field NCRONTAB schedule of the forms the defaults use."""
    second, minute, hour, *_ = schedule.split()
    assert second.isdigit(), schedule
    per_hour = 60 if minute == "*" else 60 // int(minute.removeprefix("*/")) if minute.startswith("*/") else 1
    per_day = 24 if hour == "*" else 1
    return per_hour * per_day * 30


def test_cost_section_shows_the_arithmetic_of_the_deployed_defaults() -> None:
    from shared.settings import Settings

    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    cost = text.split("## Rough monthly cost", 1)[1].split("\n## ", 1)[0]
    main = parse_bicep(MAIN_BICEP)["parameters"]
    gb = main["instanceMemoryMB"]["default"] / 1024
    assert gb == 2

    busy = gb * MONTH_S * ON_DEMAND_PER_GB_S
    assert f"${busy:,.2f}" in cost  # one instance busy all month
    leaderboard = _runs_per_month(str(Settings.model_fields["leaderboard_schedule"].default))
    assert leaderboard == 43_200 and f"{leaderboard:,} runs" in cost
    timer_gb_s = leaderboard * MINIMUM_BILLED_S * gb
    assert f"{timer_gb_s:,.0f} GB-s" in cost
    assert f"{timer_gb_s / FREE_GB_S:.0%}".replace("%", " %") in cost
    upkeep = _runs_per_month(str(Settings.model_fields["clickhouse_upkeep_schedule"].default))
    assert f"{upkeep:,} runs" in cost and f"{upkeep * gb:,.0f} GB-s" in cost
    compaction = 30 * main["compactionBudgetSeconds"]["default"] * gb
    assert f"{compaction:,.0f} GB-s" in cost
    assert f"${gb * MONTH_S * ALWAYS_READY_BASELINE_PER_GB_S:,.2f}" in cost
    egress_gb = 200 * 1000 * MONTH_S / 1e9
    assert f"{egress_gb:,.0f} GB" in cost and f"${(round(egress_gb) - 100) * 0.087:,.0f}" in cost
