"""The app settings Bicep provisions and the variables the code reads cannot drift apart.

Source of truth for what the code reads: :mod:`shared.settings` (``Settings.fixed_variables`` and the
numbered templates of ``MAPPING_VARIABLES``), read at test time, so a field added to ``Settings`` later
fails here until infra/app/function.bicep sets it or docs/deploy.md lists it as user-supplied.

What Bicep sets: the ``{name, value}`` objects reachable from the function app's ``siteConfig.appSettings``
in infra/app/function.bicep (through the variables it references), with ``${i + 1}`` read as ``{n}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from shared.settings import MAPPING_VARIABLES, Settings, load_settings

from .infra_helpers import (
    DEPLOY_DOC,
    FUNCTION_BICEP,
    MAIN_BICEP,
    Json,
    body,
    mappings,
    parse_bicep,
    strings,
    walk,
)
from .infra_helpers import as_template as template_of

# Settings read by the Functions host, its extensions or the Azure SDKs, not by StreamDuck's own code.
HOST_SETTING_PREFIXES = (
    "AzureWebJobsStorage",
    "EventHubConnection__",
    "APPLICATIONINSIGHTS_",
    "FUNCTIONS_",
    "WEBSITE_",
    "AzureFunctionsJobHost__",
)
# Single settings read by the platform or an SDK, each with the reason it is set although StreamDuck's own
# settings model does not read it.
HOST_SETTINGS: dict[str, str] = {
    "AZURE_CLIENT_ID": "azure-identity: which user-assigned identity ManagedIdentityCredential uses",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": (
        "Functions host: lets the Python worker export OpenTelemetry itself "
        "(https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto)"
    ),
}

USER_SUPPLIED_MARKER = "<!-- user-supplied-settings -->"
FIX_HINT = (
    "set it in infra/app/function.bicep (streamduckSettings or mappingSettings) or add a row to the "
    f"user-supplied table of {DEPLOY_DOC.relative_to(DEPLOY_DOC.parents[1])} (after {USER_SUPPLIED_MARKER})"
)


# --------------------------------------------------------------------------------------- what Bicep sets
def _setting_objects(node: Json, variables: Mapping[str, Json], seen: set[str]) -> Iterable[str]:
    """Names of the ``{name, value}`` objects in ``node`` and in every variable it references."""
    for item in walk(node):
        if isinstance(item, dict) and set(item) == {"name", "value"} and isinstance(item["name"], str):
            yield item["name"]
    for word in set(strings(node)):
        if word in variables and word not in seen:
            seen.add(word)
            yield from _setting_objects(variables[word]["value"], variables, seen)


def bicep_app_settings() -> tuple[set[str], set[str]]:
    """(fixed names, numbered templates) of the app settings function.bicep gives the function app."""
    tree = parse_bicep(FUNCTION_BICEP)
    (site,) = [r for r in tree["resources"].values() if r["type"] == "Microsoft.Web/sites"]
    expression = body(site)["properties"]["siteConfig"]["appSettings"]
    names = set(_setting_objects(expression, tree["variables"], set()))
    templates = {template_of(n) for n in names if "${" in n}
    return {n for n in names if "${" not in n}, templates


# ----------------------------------------------------------------------------------- user-supplied list
def user_supplied() -> dict[str, str]:
    """Variable (or ``{n}`` template) -> reason, from the table after the marker in docs/deploy.md."""
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    assert USER_SUPPLIED_MARKER in text, f"{DEPLOY_DOC.name} lost its {USER_SUPPLIED_MARKER} table"
    rows: dict[str, str] = {}
    lines = text.split(USER_SUPPLIED_MARKER, 1)[1].strip().splitlines()
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Za-z0-9_{}]+)`", cells[0])
        if match:
            rows[match.group(1)] = cells[1] if len(cells) > 1 else ""
    return rows


# ------------------------------------------------------------------------------------------- the checks
def unprovisioned(
    fixed_read: Iterable[str],
    templates_read: Iterable[str],
    fixed_set: set[str],
    templates_set: set[str],
    supplied: Mapping[str, str],
    mapping_count: int,
) -> list[str]:
    """Variables the code reads that neither Bicep sets nor the user-supplied list names."""
    problems = [
        f"{v}: read by the code, not provisioned" for v in fixed_read if v not in fixed_set | set(supplied)
    ]
    for template in templates_read:
        if template in supplied:
            continue
        for n in range(1, mapping_count + 1):
            name = template.replace("{n}", str(n))
            if template not in templates_set:
                problems.append(f"{name}: read by the code for mapping {n}, not provisioned")
    return problems


def unread(
    fixed_set: set[str], templates_set: set[str], fixed_read: set[str], templates_read: set[str]
) -> list[str]:
    """Settings Bicep sets that neither the code nor the Functions host reads."""
    problems = [
        f"{name}: set by Bicep, read by nothing"
        for name in sorted(fixed_set)
        if name not in fixed_read and name not in HOST_SETTINGS and not name.startswith(HOST_SETTING_PREFIXES)
    ]
    problems += [f"{t}: set by Bicep, not a mapping variable" for t in sorted(templates_set - templates_read)]
    return problems


def test_every_variable_the_code_reads_is_provisioned_or_user_supplied() -> None:
    fixed_set, templates_set = bicep_app_settings()
    problems = unprovisioned(
        Settings.fixed_variables,
        MAPPING_VARIABLES,
        fixed_set,
        templates_set,
        user_supplied(),
        len(mappings()),
    )
    assert not problems, "\n".join([*problems, f"fix: {FIX_HINT}"])


def test_every_setting_bicep_sets_is_read_by_the_code_or_the_host() -> None:
    fixed_set, templates_set = bicep_app_settings()
    problems = unread(fixed_set, templates_set, set(Settings.fixed_variables), set(MAPPING_VARIABLES))
    assert not problems, "\n".join(
        [*problems, "fix: remove it from infra/app/function.bicep or read it in shared/settings.py"]
    )


def test_user_supplied_list_is_read_by_the_code_not_provisioned_and_explained() -> None:
    fixed_set, templates_set = bicep_app_settings()
    known = set(Settings.fixed_variables) | set(MAPPING_VARIABLES)
    for name, reason in user_supplied().items():
        assert name in known, f"docs/deploy.md lists {name} as user-supplied, but the code does not read it"
        assert name not in fixed_set | templates_set, (
            f"{name} is both set by Bicep and listed as user-supplied"
        )
        assert len(reason) >= 15, f"docs/deploy.md: give the reason why {name} is user-supplied"


def test_required_mapping_variables_are_provisioned_for_every_mapping() -> None:
    _, templates_set = bicep_app_settings()
    required = {t for t, (is_required, _) in MAPPING_VARIABLES.items() if is_required}
    assert required <= templates_set, (
        f"required mapping variables missing in Bicep: {sorted(required - templates_set)}"
    )
    loops = [
        node["loop_type"]["detail"]
        for node in walk(parse_bicep(FUNCTION_BICEP)["variables"])
        if isinstance(node, dict) and "loop_type" in node
    ]
    assert {"item_name": "m", "index_name": "i", "array_name": "mappings"} in loops
    passed = body(parse_bicep(MAIN_BICEP)["modules"]["functionApp"])["params"]["mappings"]
    assert passed == "mappings", "main.bicep must hand its mappings parameter to the function app"


def test_provisioned_mapping_values_pass_the_apps_validation() -> None:
    """The default mappings, turned into app settings the way function.bicep does, load without error."""
    tree = parse_bicep(FUNCTION_BICEP)
    keys = {"eventHub", "consumerGroup", "database", "schema", "table", "batch", "format", "retentionDays"}
    source: dict[str, str] = {}  # template -> mapping key it is computed from
    for item in walk(tree["variables"]["mappingSettings"]["value"]):
        if isinstance(item, dict) and set(item) == {"name", "value"}:
            used = [s for s in strings(item["value"]) if s in keys]
            assert used, f"{item['name']}: value does not come from the mapping object"
            source[template_of(item["name"])] = used[0]
    env: dict[str, str] = {}
    for n, mapping in enumerate(mappings(), start=1):
        for template, key in source.items():
            if key in mapping:
                env[template.replace("{n}", str(n))] = str(mapping[key])
    settings = load_settings(env)
    assert [m.event_hub for m in settings.mappings] == [m["eventHub"] for m in mappings()]


def test_a_new_settings_field_would_be_caught() -> None:
    """The check reads Settings dynamically: an extra variable the code reads and nobody sets is reported."""
    fixed_set, templates_set = bicep_app_settings()
    new_field = "STREAMDUCK_SOMETHING_NEW"
    problems = unprovisioned(
        (*Settings.fixed_variables, new_field),
        MAPPING_VARIABLES,
        fixed_set,
        templates_set,
        user_supplied(),
        2,
    )
    assert problems == [f"{new_field}: read by the code, not provisioned"]
    problems = unprovisioned(
        (),
        {**MAPPING_VARIABLES, "MOTHERDUCK_{n}_NEW": (False, "")},
        fixed_set,
        templates_set,
        user_supplied(),
        2,
    )
    assert problems == [
        f"MOTHERDUCK_{n}_NEW: read by the code for mapping {n}, not provisioned" for n in (1, 2)
    ]
