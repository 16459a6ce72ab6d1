"""``streamduck validate-config --show-rbac``: the Azure data-plane access StreamDuck's identities need.

The roles are the ones infra/app/rbac.bicep and infra/main.bicep grant (tests/cli/test_rbac.py checks that
every role id printed here is in the Bicep with the same name, so the two cannot drift). Names of resources
come from the settings when they say it (EVENTHUB_NAMESPACE, AzureWebJobsStorage__accountName or
__blobServiceUri, REDIS_URL); everything else is a ``<placeholder>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from rich.table import Table

from shared.cli.output import out

APP = "functions (the function app's managed identity)"
SIMULATOR = "simulator (streamduck simulate --target eventhubs)"

APP_PRINCIPAL = "<principal-id>"
SIMULATOR_PRINCIPAL = "<simulator-principal-id>"


@dataclass(frozen=True)
class Role:
    name: str
    id: str


# Built-in role definitions (the same GUIDs in every tenant), as in infra/app/rbac.bicep and infra/main.bicep.
EVENT_HUBS_RECEIVER = Role("Azure Event Hubs Data Receiver", "a638d3c7-ab3a-418d-83e6-5f17a39d4fde")
EVENT_HUBS_SENDER = Role("Azure Event Hubs Data Sender", "2b629674-e913-4c01-ae53-ef4638d8f975")
BLOB_OWNER = Role("Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b")
QUEUE_CONTRIBUTOR = Role("Storage Queue Data Contributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88")
TABLE_CONTRIBUTOR = Role("Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3")
KEY_VAULT_SECRETS_USER = Role("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6")
METRICS_PUBLISHER = Role("Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb")
REDIS_ACCESS_POLICY = "default"  # Azure Managed Redis: a data access policy assignment, not an Azure role


@dataclass(frozen=True)
class Grant:
    resource: str
    scope: str
    role: str
    role_id: str | None  # None: not an Azure role assignment (Redis access policy)
    principal: str
    who: str
    why: str
    command: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "scope": self.scope,
            "role": self.role,
            "role_id": self.role_id,
            "principal": self.principal,
            "for": self.who,
            "why": self.why,
            "command": self.command,
        }


def _arm(provider: str, name: str) -> str:
    return f"/subscriptions/<subscription-id>/resourceGroups/<resource-group>/providers/{provider}/{name}"


def _namespace(environ: Mapping[str, str]) -> str:
    value = environ.get("EVENTHUB_NAMESPACE", "").strip()
    host = value.removeprefix("sb://").removeprefix("amqps://").split("/")[0]
    return host.split(".")[0] if host else "<event-hubs-namespace>"


def _storage_account(environ: Mapping[str, str]) -> str:
    name = environ.get("AzureWebJobsStorage__accountName", "").strip()
    if name:
        return name
    uri = environ.get("AzureWebJobsStorage__blobServiceUri", "").strip()
    host = urlparse(uri).hostname or ""
    if host.endswith(".blob.core.windows.net"):
        return host.split(".")[0]
    match = re.search(r"AccountName=([^;]+)", environ.get("AzureWebJobsStorage", ""))
    if match and match[1] != "devstoreaccount1":
        return match[1]
    return "<storage-account>"


def _redis_cluster(environ: Mapping[str, str]) -> str:
    host = urlparse(environ.get("REDIS_URL", "")).hostname or ""
    if host.endswith(".redis.azure.net"):  # Azure Managed Redis: <cluster>.<region>.redis.azure.net
        return host.split(".")[0]
    return "<redis-cluster>"


def _role_command(role: Role, scope: str, principal: str, principal_type: str) -> str:
    return (
        f"az role assignment create --assignee-object-id {principal} "
        f"--assignee-principal-type {principal_type} --role {role.id} --scope {scope}"
    )


def grants(environ: Mapping[str, str], hubs: list[str]) -> list[Grant]:
    """Every grant, in the order a deployment makes them."""
    namespace = _arm("Microsoft.EventHub/namespaces", _namespace(environ))
    storage = _arm("Microsoft.Storage/storageAccounts", _storage_account(environ))
    vault = _arm("Microsoft.KeyVault/vaults", "<key-vault>")
    insights = _arm("Microsoft.Insights/components", "<app-insights>")
    hub_list = ", ".join(hubs) if hubs else "every mapped hub (EVENTHUBNAME_N)"
    result: list[Grant] = []

    def role(resource: str, scope: str, r: Role, who: str, why: str, principal: str, kind: str) -> None:
        result.append(
            Grant(
                resource, scope, r.name, r.id, principal, who, why, _role_command(r, scope, principal, kind)
            )
        )

    app = (APP, APP_PRINCIPAL, "ServicePrincipal")
    role("Event Hubs namespace", namespace, EVENT_HUBS_RECEIVER, app[0], f"read {hub_list}", *app[1:])
    role(
        "Event Hubs namespace",
        namespace,
        EVENT_HUBS_SENDER,
        SIMULATOR,
        f"send simulated events to {hub_list}",
        SIMULATOR_PRINCIPAL,
        "User",
    )
    role(
        "host storage (AzureWebJobsStorage)",
        storage,
        BLOB_OWNER,
        app[0],
        "checkpoints, leases, package",
        *app[1:],
    )
    role("host storage (AzureWebJobsStorage)", storage, QUEUE_CONTRIBUTOR, app[0], "host queues", *app[1:])
    role(
        "host storage (AzureWebJobsStorage)",
        storage,
        TABLE_CONTRIBUTOR,
        app[0],
        "timer and host state",
        *app[1:],
    )
    role("Key Vault", vault, KEY_VAULT_SECRETS_USER, app[0], "Key Vault references in app settings", *app[1:])
    role("Application Insights", insights, METRICS_PUBLISHER, app[0], "telemetry with Entra ID", *app[1:])
    cluster = _redis_cluster(environ)
    result.append(
        Grant(
            "Azure Managed Redis (database default)",
            _arm("Microsoft.Cache/redisEnterprise", f"{cluster}/databases/default"),
            f"data access policy '{REDIS_ACCESS_POLICY}'",
            None,
            APP_PRINCIPAL,
            APP,
            "leaderboard and content store (Entra ID token as the Redis password)",
            "az redisenterprise database access-policy-assignment create --resource-group <resource-group> "
            f"--cluster-name {cluster} --database-name default --access-policy-assignment-name <name> "
            f"--access-policy-name {REDIS_ACCESS_POLICY} --object-id {APP_PRINCIPAL}",
        )
    )
    return result


def rbac_report(environ: Mapping[str, str], hubs: list[str]) -> dict[str, Any]:
    return {
        "principals": {
            APP_PRINCIPAL: "object id of the function app's managed identity (or of the user running StreamDuck)",
            SIMULATOR_PRINCIPAL: "object id of whoever runs the simulator against Event Hubs",
        },
        "grants": [g.as_dict() for g in grants(environ, hubs)],
    }


def render(report: Mapping[str, Any]) -> None:
    table = Table(title="Azure access StreamDuck needs (validate-config --show-rbac)", title_justify="left")
    for column in ("resource", "role", "role id", "for", "why"):
        table.add_column(column, overflow="fold", no_wrap=column == "role id")
    for g in report["grants"]:
        table.add_row(g["resource"], g["role"], g["role_id"] or "-", g["for"], g["why"])
    out.print(table)
    for placeholder, meaning in report["principals"].items():
        out.print(f"{placeholder}: {meaning}", markup=False)
    out.print("Commands:")
    for g in report["grants"]:
        out.print(g["command"], markup=False)
