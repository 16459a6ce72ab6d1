"""Entry point of the Event Hub-triggered functions: decode a batch once, write it exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import azure.functions as func
import pyarrow as pa
import pyarrow.compute as pc

from shared.clock import Clock, utc_now
from shared.duck.connection import DuckConnections
from shared.eventhubs.decode import decode_batch
from shared.eventhubs.sink import BatchResult, MotherDuckSink
from shared.settings import EventHubMapping, Settings
from shared.telemetry import metrics

log = logging.getLogger(__name__)


class EventHubIngestor:
    """Ingests batches for every mapping of ``settings``; one instance per process is enough."""

    def __init__(
        self, settings: Settings, *, sink: MotherDuckSink | None = None, clock: Clock = utc_now
    ) -> None:
        self.settings = settings
        self.connections = DuckConnections(
            data_dir=settings.data_dir, default_token=settings.motherduck_token
        )
        self.sink = sink or MotherDuckSink(self.connections, clock=clock)
        self.clock = clock
        self._by_index = {m.index: m for m in settings.mappings}

    def mapping(self, index: int) -> EventHubMapping:
        return self._by_index[index]

    def ingest(self, mapping: EventHubMapping, events: Sequence[func.EventHubEvent]) -> BatchResult | None:
        """Load ``events`` (one host batch) into the mapping's table. Raises on transient failure."""
        if not events:
            return None
        started = time.perf_counter()
        batch = decode_batch(
            events,
            mapping,
            namespace=self.settings.eventhub_namespace or "",
            max_event_bytes=self.settings.max_event_bytes,
        )
        result = self.sink.write_batch(mapping, batch)
        metrics.eventhubs_batch(
            mapping.function_name,
            result.partition_id,
            received=result.received,
            written=result.written,
            replayed=result.skipped,
            dead_letters=result.dead_letter_reasons,
            watermark=result.watermark,
            seconds=time.perf_counter() - started,
            newest_enqueued_ms=_newest_ms(batch.table.column("enqueued_time")),
            now_ms=int(self.clock().timestamp() * 1000),
        )
        log.info(
            "%s partition %s: %d received, %d written, %d dead-lettered, %d skipped (replay), watermark %d",
            mapping.function_name,
            result.partition_id,
            result.received,
            result.written,
            result.dead_lettered,
            result.skipped,
            result.watermark,
        )
        return result

    def close(self) -> None:
        self.connections.close()


def _newest_ms(enqueued: pa.ChunkedArray) -> int | None:
    """The newest enqueued time of a batch in epoch ms (one vectorised ``max`` over the timestamp column)."""
    newest = pc.max(enqueued)
    if not newest.is_valid:
        return None
    ticks = int(newest.value)
    unit = enqueued.type.unit
    return ticks * 1000 if unit == "s" else ticks // {"ms": 1, "us": 1_000, "ns": 1_000_000}[unit]


_default: EventHubIngestor | None = None
_default_lock = threading.Lock()


def default_ingestor(settings: Settings) -> EventHubIngestor:
    """The process-wide ingestor (connections reused across invocations)."""
    global _default
    with _default_lock:
        if _default is None or _default.settings is not settings:
            _default = EventHubIngestor(settings)
        return _default
