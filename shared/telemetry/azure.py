"""Sending the metrics (and the app's traces and logs) to Application Insights, in Azure.

Microsoft's set-up for Python function apps on Flex Consumption
(https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto?pivots=programming-language-python):
``"telemetryMode": "OpenTelemetry"`` in host.json, the app setting
``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``, and ``configure_azure_monitor()`` from the
``azure-monitor-opentelemetry`` distro, which reads ``APPLICATIONINSIGHTS_CONNECTION_STRING``.

Application Insights with local authentication off accepts only Microsoft Entra tokens
(https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication?tabs=python): the exporter is given a
``ManagedIdentityCredential`` for the app's user-assigned identity, ``AZURE_CLIENT_ID``.

Once per process: when a MeterProvider of the SDK is already installed, nothing is configured again. The Python
worker configures the distro itself, before it imports ``function_app.py``, when
``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` is true (its exporter then authenticates from
``APPLICATIONINSIGHTS_AUTHENTICATION_STRING``, ``ClientId=<id>;Authorization=AAD``); the CLI installs its own
provider before it imports the app, so local runs never send to Azure. A second configuration would add a
second set of exporters whose providers the OpenTelemetry API refuses to install.

Import-light: the distro (and the SDK) are imported only when there is something to configure.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from enum import StrEnum

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
CLIENT_ID = "AZURE_CLIENT_ID"


class AzureMonitor(StrEnum):
    """What :func:`configure_for_azure` did."""

    CONFIGURED = "configured"
    NOT_CONFIGURED = "not configured"  # no connection string
    # A MeterProvider was installed before: by the worker, the CLI or an earlier call.
    ALREADY_CONFIGURED = "already configured"


_lock = threading.Lock()


def sdk_provider_installed() -> bool:
    """Whether the global MeterProvider is already a real one (not the API's default)."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    return isinstance(metrics.get_meter_provider(), MeterProvider)


def configure_for_azure(environ: Mapping[str, str]) -> AzureMonitor:
    """Configure the Azure Monitor distro from ``environ`` when it names an Application Insights resource.

    With ``AZURE_CLIENT_ID``, the exporters authenticate as that managed identity (Entra ID); without it, with
    what the connection string allows. Without a connection string nothing is configured.
    """
    connection_string = environ.get(CONNECTION_STRING, "").strip()
    if not connection_string:
        return AzureMonitor.NOT_CONFIGURED
    with _lock:
        if sdk_provider_installed():
            return AzureMonitor.ALREADY_CONFIGURED
        from azure.monitor.opentelemetry import configure_azure_monitor

        options: dict[str, object] = {"connection_string": connection_string}
        client_id = environ.get(CLIENT_ID, "").strip()
        if client_id:
            from azure.identity import ManagedIdentityCredential

            options["credential"] = ManagedIdentityCredential(client_id=client_id)
        configure_azure_monitor(**options)
        return AzureMonitor.CONFIGURED
