"""Feed deterministic events through the dev host's Event Hubs source into the real ``eventhub_to_motherduck_1``.

Stands in for the Event Hubs service (not available locally): for each partition it reads the blob checkpoint
(what the SDK does when it starts), builds the next batch of real ``EventData`` and hands it to the source's
batch callback, which calls the function and checkpoints afterwards. ``kill -9`` at any moment and a restart
therefore replay exactly like the real host would.

    python -m tests.support.ehfeeder TOTAL_PER_PARTITION BATCH PARTITIONS
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.eventhub import EventData
from azure.eventhub.aio import PartitionContext

from shared.devhost.eventhubs import EventHubBatching, EventHubSource, HubConnection, storage_target
from shared.devhost.functions import discover, import_app, select
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from tests.support.cli import ROOT

START = datetime(2026, 1, 1, tzinfo=UTC)


def make_event(partition: int, seq: int) -> EventData:
    data = EventData(json.dumps({"partition": partition, "seq": seq, "reading": seq % 97}))
    data.properties = {"sensor": f"s{partition}"}
    data._raw_amqp_message.annotations = {
        b"x-opt-sequence-number": seq,
        b"x-opt-offset": str(seq * 512).encode(),
        b"x-opt-enqueued-time": int((START + timedelta(milliseconds=seq)).timestamp() * 1000),
    }
    return data


async def feed(source: EventHubSource, total: int, batch: int, partitions: int, pause: float) -> None:
    namespace = os.environ["EVENTHUB_NAMESPACE"]
    hub, group = source.fn.source, source.fn.consumer_group or "$Default"
    await source.ensure_container()
    store: Any = source.checkpoint_store()
    async with store:
        while True:
            checkpoints = {c["partition_id"]: c for c in await store.list_checkpoints(namespace, hub, group)}
            pending = False
            for p in range(partitions):
                cp = checkpoints.get(str(p))
                start = int(cp["sequence_number"]) + 1 if cp else 0
                if start >= total:
                    continue
                pending = True
                events = [make_event(p, s) for s in range(start, min(start + batch, total))]
                context = PartitionContext(namespace, hub, group, str(p), store)
                await source.on_event_batch(context, events)
                if pause:
                    time.sleep(pause)
            if not pending:
                return


def main() -> None:
    total, batch, partitions = (int(a) for a in sys.argv[1:4])
    app = import_app("function_app", ROOT)
    (fn,) = select(discover(app, os.environ), ["eventhub_to_motherduck_1"])
    stop = threading.Event()
    source = EventHubSource(
        fn,
        HubConnection("Endpoint=sb://unused;SharedAccessKeyName=k;SharedAccessKey=v", None),
        storage_target(os.environ),
        EventHubBatching(batch),
        Invoker(stop),
        HostStats(),
        stop,
    )
    asyncio.run(feed(source, total, batch, partitions, float(os.environ.get("FEEDER_PAUSE", "0"))))
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
