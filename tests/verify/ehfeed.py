"""Feed serialized ``EventData`` (body + application properties) into the real ``eventhub_to_motherduck_N``
through the dev host's Event Hubs source, the way tests/support/ehfeeder.py does: the Event Hubs service is not
available locally, so this stands in for it from the SDK boundary on (blob checkpoints on Azurite).

    python -m tests.verify.ehfeed EVENTS_JSON

``EVENTS_JSON`` holds ``{"function": "eventhub_to_motherduck_1", "partition": "0",
"events": [{"body": "<base64>", "properties": {...}}]}``. Sequence numbers continue after the partition's
checkpoint, so feeding twice appends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.eventhub import EventData
from azure.eventhub.aio import PartitionContext

from shared.devhost.eventhubs import EventHubBatching, EventHubSource, HubConnection, storage_target
from shared.devhost.functions import discover, import_app, select
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from tests.support.cli import ROOT


def event(body: bytes, properties: dict[str, Any], seq: int) -> EventData:
    data = EventData(body)
    props: dict[str | bytes, Any] = {}
    props.update(properties)
    data.properties = props
    data._raw_amqp_message.annotations = {
        b"x-opt-sequence-number": seq,
        b"x-opt-offset": str(seq * 512).encode(),
        b"x-opt-enqueued-time": int(datetime.now(tz=UTC).timestamp() * 1000),
    }
    return data


async def feed(source: EventHubSource, partition: str, items: list[dict[str, Any]]) -> None:
    namespace = os.environ["EVENTHUB_NAMESPACE"]
    hub, group = source.fn.source, source.fn.consumer_group or "$Default"
    await source.ensure_container()
    store: Any = source.checkpoint_store()
    async with store:
        checkpoints = {c["partition_id"]: c for c in await store.list_checkpoints(namespace, hub, group)}
        cp = checkpoints.get(partition)
        start = int(cp["sequence_number"]) + 1 if cp else 0
        events = [
            event(base64.b64decode(item["body"]), item["properties"], start + i)
            for i, item in enumerate(items)
        ]
        context = PartitionContext(namespace, hub, group, partition, store)
        await source.on_event_batch(context, events)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    app = import_app("function_app", ROOT)
    (fn,) = select(discover(app, os.environ), [spec["function"]])
    stop = threading.Event()
    stats = HostStats()
    source = EventHubSource(
        fn,
        HubConnection("Endpoint=sb://unused;SharedAccessKeyName=k;SharedAccessKey=v", None),
        storage_target(os.environ),
        EventHubBatching(100),
        Invoker(stop),
        stats,
        stop,
    )
    asyncio.run(feed(source, spec.get("partition", "0"), spec["events"]))
    if stats.errors:
        raise SystemExit(f"the function failed: {stats.errors}")
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
