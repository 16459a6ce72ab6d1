"""The dev host's Event Hubs source up to the SDK boundary.

Real ``azure.eventhub.EventData`` objects go through the source's batch callback (the one the SDK's
``receive_batch`` calls) with a real ``PartitionContext`` and the real blob checkpoint store on Azurite. Checked:
the function receives the worker's ``func.EventHubEvent`` batch, the checkpoint is written only after the
function returned, a batch abandoned on shutdown is not checkpointed, and a fresh store (a restart) resumes from
the checkpoint in the host's blob layout.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import PartitionContext

from shared.devhost.eventhubs import (
    CHECKPOINT_CONTAINER,
    EventHubBatching,
    EventHubSource,
    HubConnection,
    StorageTarget,
    storage_target,
)
from shared.devhost.functions import HostedFunction, discover
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from tests.support.cli import write_app

NAMESPACE = "streamduck-test.servicebus.windows.net"

APP = """
import azure.functions as func

app = func.FunctionApp()
CALLS: list[list[func.EventHubEvent]] = []
FAIL = {"mode": "ok"}


@app.function_name("eventhub_to_motherduck_1")
@app.event_hub_message_trigger(arg_name="events", event_hub_name="%EVENTHUBNAME_1%", connection="EventHubConnection",
                               consumer_group="%EVENTHUBNAME_1_CONSUMER_GROUP%", cardinality=func.Cardinality.MANY,
                               data_type=func.DataType.BINARY)
@app.retry(strategy="fixed_delay", max_retry_count="%TEST_RETRY%", delay_interval="00:00:00.100")
def ingest(events: list[func.EventHubEvent]) -> None:
    if FAIL["mode"] == "fail":
        raise RuntimeError("sink unavailable")
    CALLS.append(events)
"""


def event(seq: int, body: bytes, *, key: str | None = None, **properties: Any) -> EventData:
    """A received event as the SDK hands it over (service annotations included)."""
    data = EventData(body)
    if properties:
        data.properties = dict(properties.items())
    enqueued = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)
    annotations: dict[str | bytes, Any] = {
        b"x-opt-sequence-number": seq,
        b"x-opt-offset": str(seq * 1024).encode(),
        b"x-opt-enqueued-time": int(enqueued.timestamp() * 1000),
    }
    if key is not None:
        annotations[b"x-opt-partition-key"] = key.encode()
    data._raw_amqp_message.annotations = annotations
    return data


@pytest.fixture
def app_module(tmp_path: Path, unique_name: str) -> Iterator[ModuleType]:
    name = f"ehapp_{unique_name}"
    write_app(tmp_path, name, APP)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def hosted(module: ModuleType, hub: str, retry: str = "2") -> HostedFunction:
    env = {"EVENTHUBNAME_1": hub, "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default", "TEST_RETRY": retry}
    (fn,) = discover(module.app, env)
    return fn


class Harness:
    def __init__(self, fn: HostedFunction, connection_string: str) -> None:
        self.stop = threading.Event()
        self.stats = HostStats()
        self.source = EventHubSource(
            fn,
            HubConnection("Endpoint=sb://unused;SharedAccessKeyName=k;SharedAccessKey=v", None),
            StorageTarget(connection_string=connection_string),
            EventHubBatching(),
            Invoker(self.stop, on_retry=lambda name, label, n, exc: self.stats.retried(name, label)),
            self.stats,
            self.stop,
        )

    async def deliver(self, partition: str, events: list[EventData]) -> None:
        store = self.source.checkpoint_store()
        async with store:
            context = PartitionContext(NAMESPACE, self.source.fn.source, "$Default", partition, store)
            await self.source.on_event_batch(context, events)

    async def checkpoints(self) -> dict[str, dict[str, Any]]:
        store = self.source.checkpoint_store()  # a fresh store: what a restarted host reads
        async with store:
            found = await store.list_checkpoints(NAMESPACE, self.source.fn.source, "$Default")
        return {c["partition_id"]: c for c in found}


def test_batch_reaches_the_function_in_worker_shape_and_is_checkpointed_after(
    app_module: ModuleType, azurite_connection_string: str, unique_name: str
) -> None:
    harness = Harness(hosted(app_module, f"hub-{unique_name}"), azurite_connection_string)
    asyncio.run(harness.source.ensure_container())
    batch = [event(i, f'{{"n": {i}}}'.encode(), key="device-7", source="sim", n=i) for i in range(5)]
    asyncio.run(harness.deliver("3", batch))

    (received,) = app_module.CALLS
    assert [e.get_body() for e in received] == [f'{{"n": {i}}}'.encode() for i in range(5)]
    assert [e.sequence_number for e in received] == list(range(5))
    assert [int(e.offset) for e in received] == [i * 1024 for i in range(5)]
    assert received[0].partition_key == "device-7"
    assert received[2].enqueued_time == datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    metadata = received[0].metadata
    assert metadata["PartitionContext"]["PartitionId"] == "3"
    assert metadata["PartitionContext"]["EventHubName"] == f"hub-{unique_name}"
    assert metadata["PartitionContext"]["FullyQualifiedNamespace"] == NAMESPACE
    assert metadata["PropertiesArray"][4] == {"source": "sim", "n": 4}
    assert metadata["SystemPropertiesArray"][1]["SequenceNumber"] == 1

    checkpoint = asyncio.run(harness.checkpoints())["3"]
    assert checkpoint["sequence_number"] == 4
    assert checkpoint["offset"] == str(4 * 1024)
    assert harness.stats.summary()["events"] == 5


def test_checkpoint_only_after_success_and_resume_from_it(
    app_module: ModuleType, azurite_connection_string: str, unique_name: str
) -> None:
    fn = hosted(app_module, f"hub-{unique_name}", retry="-1")
    first = Harness(fn, azurite_connection_string)
    asyncio.run(first.source.ensure_container())
    asyncio.run(first.deliver("0", [event(i, b"{}") for i in range(10)]))
    assert asyncio.run(first.checkpoints())["0"]["sequence_number"] == 9

    # The next batch fails forever (unlimited retries); shutdown abandons it: no checkpoint past 9.
    app_module.FAIL["mode"] = "fail"

    async def deliver_then_shut_down() -> None:
        task = asyncio.create_task(first.deliver("0", [event(i, b"{}") for i in range(10, 20)]))
        await asyncio.sleep(0.5)
        assert not task.done()  # held by the retry policy
        first.stop.set()
        await asyncio.wait_for(task, timeout=10)

    asyncio.run(deliver_then_shut_down())
    assert first.stats.summary()["retries"] >= 2
    assert first.stats.summary()["abandoned_batches"] == 1
    assert asyncio.run(first.checkpoints())["0"]["sequence_number"] == 9

    # Restart: a new source and a new store read the checkpoint (the SDK starts after it) ...
    app_module.FAIL["mode"] = "ok"
    app_module.CALLS.clear()
    second = Harness(fn, azurite_connection_string)
    resume_after = asyncio.run(second.checkpoints())["0"]["sequence_number"]
    assert resume_after == 9
    # ... and the replayed batch is processed and checkpointed.
    asyncio.run(second.deliver("0", [event(i, b"{}") for i in range(resume_after + 1, 20)]))
    assert [e.sequence_number for e in app_module.CALLS[0]] == list(range(10, 20))
    assert asyncio.run(second.checkpoints())["0"]["sequence_number"] == 19


def test_exhausted_retries_checkpoint_like_the_host(
    app_module: ModuleType, azurite_connection_string: str, unique_name: str
) -> None:
    harness = Harness(hosted(app_module, f"hub-{unique_name}", retry="1"), azurite_connection_string)
    asyncio.run(harness.source.ensure_container())
    app_module.FAIL["mode"] = "fail"
    try:
        asyncio.run(harness.deliver("1", [event(i, b"{}") for i in range(3)]))
    finally:
        app_module.FAIL["mode"] = "ok"
    summary = harness.stats.summary()
    assert summary["failed_batches"] == 1
    assert summary["retries"] == 1
    assert asyncio.run(harness.checkpoints())["1"]["sequence_number"] == 2


def test_checkpoint_blobs_use_the_host_layout(
    app_module: ModuleType, azurite_connection_string: str, unique_name: str
) -> None:
    from azure.storage.blob import BlobServiceClient

    hub = f"hub-{unique_name}"
    harness = Harness(hosted(app_module, hub), azurite_connection_string)
    asyncio.run(harness.source.ensure_container())
    asyncio.run(harness.deliver("2", [event(7, b"{}")]))
    with BlobServiceClient.from_connection_string(azurite_connection_string) as service:
        names = [
            b.name
            for b in service.get_container_client(CHECKPOINT_CONTAINER).list_blobs(name_starts_with=NAMESPACE)
        ]
    assert f"{NAMESPACE}/{hub}/$default/checkpoint/2" in names


def test_storage_from_app_settings() -> None:
    assert "devstoreaccount1" in str(
        storage_target({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).connection_string
    )
    identity = storage_target({"AzureWebJobsStorage__accountName": "acct"})
    assert identity.account_url == "https://acct.blob.core.windows.net"


def test_run_keeps_retrying_an_unreachable_hub_and_stops_cleanly(
    tmp_path: Path, azurite_connection_string: str, unique_name: str
) -> None:
    import signal
    import socket

    from tests.support.cli import ROOT, base_env, start_cli, stop, wait_for

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = base_env(
        tmp_path,
        AzureWebJobsStorage=azurite_connection_string,
        EVENTHUB_CONNECTION_STRING=(
            f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;"
        ),
        EVENTHUBNAME_1=f"hub-{unique_name}",
        EVENTHUBNAME_1_CONSUMER_GROUP="$Default",
        MOTHERDUCK_1_DATABASE="analytics",
        MOTHERDUCK_1_SCHEMA="raw",
        MOTHERDUCK_1_TABLE="events",
    )
    log = tmp_path / "run.log"
    process = start_cli(
        "run", "--app-dir", str(ROOT), "-f", "eventhub_to_motherduck_1", env=env, cwd=tmp_path, log=log
    )
    wait_for(
        lambda: "Connect call failed" in log.read_text(errors="replace"),
        timeout=60,
        what="a connection attempt",
    )
    assert process.poll() is None  # like the host: the source keeps retrying, it does not exit
    assert stop(process, signal.SIGTERM, timeout=30) == 0
    assert "stopped: 0 events" in log.read_text(errors="replace")
