"""Application Insights set-up with the real Azure Monitor distro, against endpoints on 127.0.0.1.

Each case runs in its own process (the distro installs global providers, once per process): the connection
string's ingestion endpoint, and for Entra ID the managed identity endpoint, are a local receiver, so the test
sees exactly what the exporter sends and with which token, without any network. Bearer tokens travel over TLS
only (azure-core refuses otherwise), so the Entra case's ingestion endpoint is HTTPS with a certificate the
exporter's process is told to trust.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.telemetry import catalog
from tests.conftest import ROOT
from tests.telemetry.receiver import TOKEN, Receiver, receiver, self_signed

KEY = "00000000-0000-4000-8000-000000000001"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"

SCRIPT = """
import os
from opentelemetry import metrics
from shared.telemetry import metrics as streamduck
from shared.telemetry.azure import AzureMonitor, configure_for_azure

assert configure_for_azure(os.environ) is AzureMonitor.CONFIGURED
assert configure_for_azure(os.environ) is AzureMonitor.ALREADY_CONFIGURED  # once per process
streamduck.eventhubs_batch(
    "eventhub_to_motherduck_1", "3", received=7, written=6, replayed=0, dead_letters=[("oversized", 1)],
    watermark=41, seconds=0.02, newest_enqueued_ms=1_000, now_ms=3_000,
)
assert metrics.get_meter_provider().force_flush(30_000)
print("flushed")
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={
            **base,
            "PYTHONPATH": str(ROOT),
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no usage pings to Microsoft's endpoint
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def connection_string(rec: Receiver) -> str:
    return f"InstrumentationKey={KEY};IngestionEndpoint={rec.url}/;LiveEndpoint={rec.url}/"


def metric_items(rec: Receiver) -> dict[str, dict[str, Any]]:
    """The metric telemetry items received, by metric name (``customMetrics`` in Application Insights)."""
    items: dict[str, dict[str, Any]] = {}
    for request in rec.received("/v2.1/track"):
        for envelope in request.json():
            data = envelope["data"]
            if data["baseType"] == "MetricData":
                for point in data["baseData"]["metrics"]:
                    items[point["name"]] = {**point, "properties": data["baseData"].get("properties", {})}
    return items


def test_connection_string_sends_the_metrics_to_application_insights() -> None:
    with receiver() as rec:
        done = run({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(rec)})
        assert done.returncode == 0, done.stderr[-3000:]
        items = metric_items(rec)
        tracks = rec.received("/v2.1/track")
    received = items[catalog.EH_RECEIVED.name]
    assert received["value"] == 7
    assert received["properties"] == {
        catalog.MAPPING: "eventhub_to_motherduck_1",
        catalog.PARTITION: "3",
    }
    assert items[catalog.EH_DEAD_LETTERED.name]["properties"][catalog.REASON] == "oversized"
    assert items[catalog.EH_LAG.name]["value"] == 2.0
    assert all("authorization" not in r.headers for r in tracks)  # no identity configured: no token


def test_azure_client_id_signs_the_exporter_in_as_that_managed_identity(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    with receiver(tls) as ingestion, receiver() as identity:
        done = run(
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(ingestion),
                "AZURE_CLIENT_ID": CLIENT_ID,
                # The App Service / Functions managed identity endpoint, here a local receiver.
                "IDENTITY_ENDPOINT": f"{identity.url}/msi/token",
                "IDENTITY_HEADER": "identity-header-secret",
                "REQUESTS_CA_BUNDLE": str(tls[0]),
            }
        )
        assert done.returncode == 0, done.stderr[-3000:]
        token_requests = identity.received("/msi/")
        tracks = ingestion.received("/v2.1/track")
        items = metric_items(ingestion)
    assert token_requests, "no token was asked for"
    asked = token_requests[0]
    assert asked.query["client_id"] == [CLIENT_ID]
    assert asked.query["resource"] == ["https://monitor.azure.com/"]
    assert asked.headers["x-identity-header"] == "identity-header-secret"
    assert tracks and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in tracks)
    assert items[catalog.EH_RECEIVED.name]["value"] == 7


def test_without_a_connection_string_nothing_is_configured() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from shared.telemetry.azure import AzureMonitor, configure_for_azure\n"
            "assert configure_for_azure({'AZURE_CLIENT_ID': 'x'}) is AzureMonitor.NOT_CONFIGURED\n"
            "assert 'azure.monitor.opentelemetry' not in sys.modules\n"
            "from opentelemetry import metrics\n"
            "from opentelemetry.sdk.metrics import MeterProvider\n"
            "assert not isinstance(metrics.get_meter_provider(), MeterProvider)\n",
        ],
        env={**{k: v for k, v in os.environ.items() if k != "APPLICATIONINSIGHTS_CONNECTION_STRING"}},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
