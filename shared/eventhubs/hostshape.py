"""Build ``func.EventHubEvent`` batches exactly as the Functions worker does.

The worker receives a batch from the host as a collection of bodies plus trigger metadata (JSON datums:
``PartitionContext``, ``SystemPropertiesArray``, ``PropertiesArray`` ...) and decodes it with
``EventHubTriggerConverter``. The dev host, the demo, the tests and the benchmark go through the same
converter, so the functions see the same objects in every environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.meta import Datum


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event as it sits in a partition."""

    body: bytes
    sequence_number: int
    offset: str
    enqueued_time: datetime
    partition_key: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    # Further system properties the host passes on (IoT Hub's ``iothub-connection-device-id``, for example).
    system_properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """What the host puts in ``PartitionContext``."""

    partition_id: str
    event_hub: str
    consumer_group: str
    namespace: str


class _CollectionBytes:
    """Stand-in for the worker's protobuf ``CollectionBytes`` (only ``.bytes`` is read)."""

    __slots__ = ("bytes",)

    def __init__(self, items: list[bytes]) -> None:
        self.bytes = items


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def to_function_batch(events: Sequence[SourceEvent], partition: PartitionInfo) -> list[func.EventHubEvent]:
    """Return the ``list[func.EventHubEvent]`` a cardinality-many function receives for ``events``."""
    system = [
        {
            "SequenceNumber": e.sequence_number,
            "Offset": e.offset,
            "EnqueuedTimeUtc": _iso(e.enqueued_time),
            "PartitionKey": e.partition_key,
            **e.system_properties,
        }
        for e in events
    ]
    metadata = {
        "PartitionContext": Datum(
            json.dumps(
                {
                    "PartitionId": partition.partition_id,
                    "EventHubName": partition.event_hub,
                    "ConsumerGroup": partition.consumer_group,
                    "FullyQualifiedNamespace": partition.namespace,
                }
            ),
            "json",
        ),
        "SystemPropertiesArray": Datum(json.dumps(system), "json"),
        "PropertiesArray": Datum(
            json.dumps([dict(e.properties) for e in events], default=_json_default), "json"
        ),
        "SequenceNumberArray": Datum(json.dumps([e.sequence_number for e in events]), "json"),
        "OffsetArray": Datum(json.dumps([e.offset for e in events]), "json"),
        "EnqueuedTimeUtcArray": Datum(json.dumps([s["EnqueuedTimeUtc"] for s in system]), "json"),
        "PartitionKeyArray": Datum(json.dumps([e.partition_key for e in events]), "json"),
    }
    data = Datum(_CollectionBytes([e.body for e in events]), "collection_bytes")
    decoded = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    if not isinstance(decoded, list):
        raise TypeError(f"expected a list of events for cardinality many, got {type(decoded).__name__}")
    return decoded
