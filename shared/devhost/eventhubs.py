"""Event Hubs trigger source: azure-eventhub with the blob checkpoint store, checkpoint after the function.

Mirrors the Event Hubs extension: checkpoints live in container ``azure-webjobs-eventhub`` of the
``AzureWebJobsStorage`` account (same blob layout as the host, so the dev host and a deployed app resume from
each other's checkpoints); a batch holds up to the effective batch size of events of one partition; the
checkpoint is written only after the function returned (or its retries were exhausted, like the host). A batch
abandoned on shutdown is not checkpointed and is delivered again.
Authentication: ``EVENTHUB_CONNECTION_STRING``
(SAS or the emulator), else the trigger's connection setting, else Entra ID (``DefaultAzureCredential``) on
``EVENTHUB_NAMESPACE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.devhost.functions import HostedFunction
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.errors import ConfigError, UnavailableError, describe_unreachable
from shared.eventhubs.hostshape import PartitionInfo, SourceEvent, to_function_batch
from shared.settings import Settings

log = logging.getLogger("streamduck.devhost")

CHECKPOINT_CONTAINER = "azure-webjobs-eventhub"
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


@dataclass(frozen=True)
class EventHubBatching:
    max_batch_size: int = 100
    max_wait_seconds: float | None = None
    prefetch: int = 300


@dataclass(frozen=True)
class StorageTarget:
    """Where checkpoints go: a connection string, or an account URL with Entra ID."""

    connection_string: str | None = None
    account_url: str | None = None

    def describe(self) -> str:
        if self.connection_string:
            parts = dict(p.split("=", 1) for p in self.connection_string.split(";") if "=" in p)
            where = parts.get("BlobEndpoint") or parts.get("AccountName", "?")
            return f"{where}/{CHECKPOINT_CONTAINER}"
        return f"{self.account_url}/{CHECKPOINT_CONTAINER} (Entra ID)"


def storage_target(environ: Mapping[str, str]) -> StorageTarget:
    """The host's checkpoint storage from ``AzureWebJobsStorage`` (connection string or identity-based)."""
    raw = environ.get("AzureWebJobsStorage", "").strip()
    if raw:
        if raw.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
            # The blob checkpoint store does not understand the shorthand: spell out Azurite's account.
            return StorageTarget(connection_string=AZURITE_CONNECTION_STRING)
        return StorageTarget(connection_string=raw)
    url = environ.get("AzureWebJobsStorage__blobServiceUri", "").strip()
    account = environ.get("AzureWebJobsStorage__accountName", "").strip()
    if url:
        return StorageTarget(account_url=url.rstrip("/"))
    if account:
        return StorageTarget(account_url=f"https://{account}.blob.core.windows.net")
    raise ConfigError(
        {
            "AzureWebJobsStorage": "missing: Event Hubs checkpoints need a storage account, for example "
            "AzureWebJobsStorage=UseDevelopmentStorage=true (Azurite) or AzureWebJobsStorage__blobServiceUri="
            "https://<account>.blob.core.windows.net"
        }
    )


@dataclass(frozen=True)
class HubConnection:
    connection_string: str | None
    namespace: str | None

    def describe(self) -> str:
        if self.connection_string:
            parts = dict(p.split("=", 1) for p in self.connection_string.split(";") if "=" in p)
            return f"{parts.get('Endpoint', '?')} (connection string)"
        return f"{self.namespace} (Entra ID)"


def hub_connection(fn: HostedFunction, settings: Settings, environ: Mapping[str, str]) -> HubConnection:
    if settings.eventhub_connection_string is not None:
        return HubConnection(settings.eventhub_connection_string.get_secret_value(), None)
    setting = fn.connection or ""
    if setting and environ.get(setting):
        return HubConnection(environ[setting], None)
    namespace = settings.eventhub_namespace or environ.get(f"{setting}__fullyQualifiedNamespace")
    if namespace:
        return HubConnection(None, namespace)
    raise ConfigError(
        {
            "EVENTHUB_CONNECTION_STRING": f"missing: function {fn.name} needs Event Hubs access; set it, or "
            "EVENTHUB_NAMESPACE=<namespace>.servicebus.windows.net for Entra ID"
        }
    )


def _body(event: Any) -> bytes:
    body = event.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    try:
        return b"".join(bytes(part) for part in body)
    except TypeError:
        return event.body_as_str().encode("utf-8")  # type: ignore[no-any-return]


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes | bytearray) else value


def to_source_event(event: Any) -> SourceEvent:
    """One received ``azure.eventhub.EventData`` as the host sees it."""
    enqueued = event.enqueued_time or datetime.now(tz=UTC)
    return SourceEvent(
        body=_body(event),
        sequence_number=int(event.sequence_number if event.sequence_number is not None else -1),
        offset=str(event.offset) if event.offset is not None else "",
        enqueued_time=enqueued,
        partition_key=_text(event.partition_key),
        properties={str(_text(k)): _text(v) for k, v in (event.properties or {}).items()},
    )


class EventHubSource:
    """Receives one Event Hubs-triggered function's hub in a thread with its own event loop."""

    def __init__(
        self,
        fn: HostedFunction,
        connection: HubConnection,
        storage: StorageTarget,
        batching: EventHubBatching,
        invoker: Invoker,
        stats: HostStats,
        stop: threading.Event,
        *,
        starting_position: str = "-1",
    ) -> None:
        self.fn = fn
        self.connection = connection
        self.storage = storage
        self.batching = batching
        self.invoker = invoker
        self.stats = stats
        self.stop = stop
        self.starting_position = starting_position
        self._lock: asyncio.Lock | None = None

    async def on_event_batch(self, context: Any, events: list[Any]) -> None:
        """The SDK's batch callback: call the function, then checkpoint the batch's last event."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        if not events:
            self._update_lag(context)
            return
        async with self._lock:
            if self.stop.is_set():
                return  # shutting down: leave the batch for the next start (no checkpoint)
            self.stats.touch()
            partition = PartitionInfo(
                partition_id=str(context.partition_id),
                event_hub=str(context.eventhub_name),
                consumer_group=str(context.consumer_group),
                namespace=str(context.fully_qualified_namespace),
            )
            source_events = [to_source_event(e) for e in events]
            if self.fn.many:
                payloads: list[tuple[list[Any], Any]] = [
                    (events, to_function_batch(source_events, partition))
                ]
            else:
                payloads = [
                    ([e], to_function_batch([s], partition)[0])
                    for e, s in zip(events, source_events, strict=True)
                ]
            for raw, payload in payloads:
                outcome = await asyncio.to_thread(
                    self.invoker.invoke, self.fn, payload, label=partition.partition_id
                )
                if outcome.status == "abandoned":
                    self.stats.batch_done(self.fn.name, partition.partition_id, len(raw), "", "abandoned")
                    return
                await context.update_checkpoint(raw[-1])
                last = raw[-1]
                self.stats.batch_done(
                    self.fn.name, partition.partition_id, len(raw), str(last.sequence_number), outcome.status
                )
            self._update_lag(context)

    def _update_lag(self, context: Any) -> None:
        # No I/O here: the SDK reads the last enqueued sequence number from the delivery annotations of the
        # events it already received (track_last_enqueued_event_properties=True). Nothing is expected to
        # fail, so nothing is caught: a failure is a bug and reaches the SDK's on_error (logged, and the
        # partition resumes from its checkpoint, which this batch already updated).
        props = context.last_enqueued_event_properties or {}
        last = props.get("sequence_number")
        mine = getattr(getattr(context, "_last_received_event", None), "sequence_number", None)
        if last is not None and mine is not None:
            self.stats.set_lag(self.fn.name, str(context.partition_id), max(0, int(last) - int(mine)))

    def checkpoint_store(self) -> Any:
        from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

        if self.storage.connection_string:
            return BlobCheckpointStore.from_connection_string(
                self.storage.connection_string, CHECKPOINT_CONTAINER
            )
        from azure.identity.aio import DefaultAzureCredential

        return BlobCheckpointStore(
            str(self.storage.account_url), CHECKPOINT_CONTAINER, credential=DefaultAzureCredential()
        )

    async def ensure_container(self) -> None:
        from azure.core.exceptions import ClientAuthenticationError, ResourceExistsError, ServiceRequestError
        from azure.storage.blob.aio import BlobServiceClient

        if self.storage.connection_string:
            service = BlobServiceClient.from_connection_string(self.storage.connection_string)
        else:
            from azure.identity.aio import DefaultAzureCredential

            service = BlobServiceClient(str(self.storage.account_url), credential=DefaultAzureCredential())
        async with service:
            try:
                with contextlib.suppress(ResourceExistsError):
                    await service.create_container(CHECKPOINT_CONTAINER)
            except (ServiceRequestError, ClientAuthenticationError) as exc:
                variable = (
                    "AzureWebJobsStorage"
                    if self.storage.connection_string
                    else "AzureWebJobsStorage__blobServiceUri"
                )
                raise UnavailableError("storage", self.storage.describe(), exc, variable=variable) from exc

    def client(self, store: Any) -> Any:
        from azure.eventhub.aio import EventHubConsumerClient

        group = self.fn.consumer_group or "$Default"
        if self.connection.connection_string:
            return EventHubConsumerClient.from_connection_string(
                self.connection.connection_string,
                consumer_group=group,
                eventhub_name=self.fn.source,
                checkpoint_store=store,
            )
        from azure.identity.aio import DefaultAzureCredential

        return EventHubConsumerClient(
            fully_qualified_namespace=str(self.connection.namespace),
            eventhub_name=self.fn.source,
            consumer_group=group,
            credential=DefaultAzureCredential(),
            checkpoint_store=store,
        )

    async def _on_initialize(self, context: Any) -> None:
        self.stats.ready(self.fn.name)

    async def _on_error(self, context: Any, error: Exception) -> None:
        where = f" partition {context.partition_id}" if context is not None else ""
        log.warning("%s%s: %s", self.fn.name, where, error)
        self.stats.error(f"{self.fn.name}{where}: {error}")
        if context is None:  # load balancing: the hub or the checkpoint store cannot be used
            variable = (
                "EVENTHUB_CONNECTION_STRING" if self.connection.connection_string else "EVENTHUB_NAMESPACE"
            )
            sentence = describe_unreachable("eventhubs", self.connection.describe(), error, variable=variable)
            self.stats.unreached(self.fn.name, sentence)

    async def run_async(self) -> None:
        self._lock = asyncio.Lock()
        await self.ensure_container()
        store = self.checkpoint_store()
        client = self.client(store)
        receiving = asyncio.create_task(
            client.receive_batch(
                self.on_event_batch,
                max_batch_size=self.batching.max_batch_size,
                max_wait_time=self.batching.max_wait_seconds,
                prefetch=self.batching.prefetch,
                starting_position=self.starting_position,
                track_last_enqueued_event_properties=True,
                on_error=self._on_error,
                on_partition_initialize=self._on_initialize,
            )
        )
        try:
            while not self.stop.is_set() and not receiving.done():
                await asyncio.sleep(0.2)
            async with self._lock:  # the batch in flight finishes and checkpoints first
                await client.close()
            # Nothing is in flight any more; the SDK may still sleep in a load-balancing retry: do not wait.
            await asyncio.wait({receiving}, timeout=5)
        finally:
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
            elif not receiving.cancelled() and receiving.exception() is not None and not self.stop.is_set():
                raise receiving.exception()  # type: ignore[misc]
            await store.close()

    def run(self) -> None:
        asyncio.run(self.run_async())
