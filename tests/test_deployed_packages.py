"""The packages Azure installs (requirements.txt) are enough for the function app.

The local extra (``pip install -e '.[local]'``: chDB, the dev host's Kafka and Event Hubs clients, the CLI's
typer and rich, the OTLP and Prometheus exporters) is installed in the test environment, so each test runs
the app in a fresh interpreter that cannot import any of it: a ``sys.meta_path`` finder set up before
anything else finds none of those modules, exactly as if they were not installed. python-dotenv cannot be
hidden this way: pydantic-settings imports it, so it is a runtime dependency and ships with the app anyway.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.eventhubs.helpers import index_app, mapping_env

# Top-level names of what only the local extra installs.
LOCAL_ONLY = (
    "chdb",
    "confluent_kafka",
    "typer",
    "rich",
    "azure.eventhub",  # with azure.eventhub.extensions.checkpointstoreblobaio
    "azure.storage.blob",
    "opentelemetry.exporter.otlp",
    "opentelemetry.exporter.prometheus",
)

# Their distributions (what importlib.metadata finds), hidden as well.
LOCAL_DISTRIBUTIONS = (
    "chdb",
    "chdb-core",
    "confluent-kafka",
    "typer",
    "rich",
    "azure-eventhub",
    "azure-eventhub-checkpointstoreblob-aio",
    "azure-storage-blob",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-prometheus",
)

# Runs first in the subprocess: from here on, the local extra's modules are not found.
DEPLOYED_PACKAGES_ONLY = f"""
import importlib.abc, importlib.metadata, importlib.util, json, sys

LOCAL_ONLY = {LOCAL_ONLY!r}
LOCAL_DISTRIBUTIONS = {LOCAL_DISTRIBUTIONS!r}


def local_only(name):
    return any(name == m or name.startswith(m + ".") for m in LOCAL_ONLY)


already = sorted(m for m in sys.modules if local_only(m))
assert not already, f"imported before the finder was set up: {{already}}"


class DeployedPackagesOnly(importlib.abc.MetaPathFinder):
    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path=None, target=None):
        if local_only(name):
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):
        for finder in self.finders:
            for dist in getattr(finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs):
                if dist.name.lower().replace("_", "-") not in LOCAL_DISTRIBUTIONS:
                    yield dist

    def invalidate_caches(self):
        for finder in self.finders:
            getattr(finder, "invalidate_caches", lambda: None)()


sys.meta_path[:] = [DeployedPackagesOnly(list(sys.meta_path))]
hidden = {{}}
for name in LOCAL_ONLY:
    try:
        __import__(name)
    except ModuleNotFoundError as exc:
        hidden[name] = str(exc)
    assert importlib.util.find_spec(name) is None, name
for name in LOCAL_DISTRIBUTIONS:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        hidden[name] = "no metadata"
"""

# One Event Hubs batch through the registered function into a DuckDB file, then the compaction timer; the
# Kafka handlers' modules are imported too (running them needs a ClickHouse server and Redis).
ONE_BATCH = """
import json
import function_app
from shared.appindex import user_function
from tests.eventhubs.helpers import batch, source_events
import shared.engagement.functions

user_function(function_app.app, "eventhub_to_motherduck_1")(batch(source_events(0, 250)))
user_function(function_app.app, "compact_motherduck")(None)

from shared.eventhubs import default_ingestor
cur = default_ingestor(function_app.settings).connections.cursor("lake")
rows = cur.execute("SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1").fetchall()[0]
print(json.dumps({
    "hidden": sorted(hidden),
    "loaded_local_only": sorted(m for m in sys.modules if local_only(m)),
    "rows": rows,
}))
"""


def test_the_deployed_packages_index_the_app_and_load_a_batch_into_duckdb(tmp_path: Path) -> None:
    env = mapping_env(1, tmp_path / "data", CLICKHOUSE_HOST="clickhouse.example.com")
    found = index_app(env, DEPLOYED_PACKAGES_ONLY + ONE_BATCH)
    assert found["hidden"] == sorted({*LOCAL_ONLY, *LOCAL_DISTRIBUTIONS})  # the finder really hides them
    assert found["loaded_local_only"] == []
    assert found["rows"] == [250, 250]


def test_without_clickhouse_host_and_without_chdb_indexing_stops_with_the_fix(tmp_path: Path) -> None:
    env = mapping_env(1, tmp_path / "data")
    with pytest.raises(AssertionError, match="invalid configuration") as info:
        index_app(env, DEPLOYED_PACKAGES_ONLY + "import function_app\nprint('{}')")
    message = str(info.value)
    assert "CLICKHOUSE_HOST: missing" in message
    assert "CLICKHOUSE_HOST=abc123.eastus.azure.clickhouse.cloud" in message
    assert "pip install 'streamduck[local]'" in message
