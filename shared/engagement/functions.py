"""The engagement pipeline's handlers, called by the bindings in ``function_app.py``.

Contract of every batch handler (the host redelivers after crashes and rebalances, and may commit offsets
after a failure):

- bad input (invalid JSON, missing fields, wrong types, unknown event_type, unusable keys) is parked in the
  dead-letter table with its raw value, topic/partition/offset and reason; its neighbours still land;
- a store that is unavailable raises :class:`~shared.errors.TransientError`, so the retry policy holds the
  partition and runs the batch again; every write is idempotent (ClickHouse: row versions plus a
  deduplication token; Redis: versioned content, offset watermark in the same script as the scores), so a
  retry completes the batch without counting anything twice;
- enriched events are returned for the Kafka output binding, which publishes them only when the function
  succeeds: at least once, keyed by content id, with the event id and version in headers.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from shared.engagement.batch import KafkaEventLike, RawRecord, TriggerBatch, records_from_events
from shared.engagement.clickhouse import UnknownEvent, Warehouse
from shared.engagement.decode_columns import decode_engagements
from shared.engagement.decode_rows import decode_content
from shared.engagement.enrich_columns import EnrichedRows
from shared.engagement.enrich_rows import EnrichedBatch
from shared.engagement.leaderboard import LeaderboardEntry, PreparedScores, redis_stores, top_n_with_titles
from shared.engagement.records import ContentChange, DeadLetter, EngagementColumns
from shared.engagement.redis_io import redis_client
from shared.errors import BadInputError
from shared.settings import Settings
from shared.telemetry import metrics
from shared.telemetry.metrics import PartitionCounts

log = logging.getLogger("streamduck.engagement")

ENRICH_FUNCTION = "engagement_enrich"
CONTENT_FUNCTION = "engagement_content_cdc"

# One log line per batch. The dead-letter alert and the workbook tile (infra/app/observability.bicep,
# workbook.json) sum ``(\d+) dead-lettered`` over these lines and the Event Hubs ones, and take the first word
# as the source, so keep that wording and the function name first.
ENRICH_BATCH_LOG = (
    ENRICH_FUNCTION
    + " batch: %d records, %d enriched (%d unknown content), %d dead-lettered, %d already counted"
)
CONTENT_BATCH_LOG = (
    CONTENT_FUNCTION + " batch: %d records, %d changes, %d dead-lettered, %d events re-enriched"
)


class OutLike(Protocol):
    """``azure.functions.Out[list[str]]``."""

    def set(self, val: list[str]) -> None: ...


@dataclass(slots=True)
class BatchReport:
    """What one call did (logged, and returned to tests, the demo and the benchmark)."""

    records: int = 0
    changes: int = 0
    unknown_content: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    already_counted: int = 0
    reenriched: int = 0
    partitions_optimized: int = 0
    envelopes: list[str] = field(default_factory=list)


class Pipeline:
    """The stores of the engagement pipeline, built once per process from the settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis: redis.Redis | None = None,
        warehouse: Warehouse | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        client = (
            redis
            if redis is not None
            else redis_client(settings.redis_url.get_secret_value(), entra=settings.redis_entra_auth)
        )
        self.leaderboard, self.store = redis_stores(settings, client, cached=True)
        self.warehouse = warehouse if warehouse is not None else Warehouse.from_settings(settings)
        self.clock = clock
        self._helper_pool: ThreadPoolExecutor | None = None

    def _helper(self) -> ThreadPoolExecutor:
        if self._helper_pool is None:
            with _LOCK:
                if self._helper_pool is None:
                    self._helper_pool = ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="engagement-helper"
                    )
        return self._helper_pool

    def prepare_outputs(
        self, enriched: EnrichedRows, batch: TriggerBatch, columns: EngagementColumns
    ) -> PreparedScores:
        """The envelopes (kept on ``enriched``) and the packed leaderboard update of a batch's decoded rows
        ``columns`` (no I/O)."""
        enriched.write_envelopes()
        return self.leaderboard.prepare_columns(batch.topics, batch.partitions, batch.offsets, columns)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ----------------------------------------------------------------------------------- engagement

    def enrich(self, events: Sequence[KafkaEventLike]) -> BatchReport:
        """Enrich, store and count one trigger batch of ``engagement_events.flat``."""
        started = time.perf_counter()
        with gc_paused():
            return self.enrich_batch(TriggerBatch.from_events(events), started=started)

    def enrich_records(self, records: Sequence[RawRecord]) -> BatchReport:
        started = time.perf_counter()
        with gc_paused():
            return self.enrich_batch(TriggerBatch.from_records(records), started=started)

    def enrich_batch(self, batch: TriggerBatch, *, started: float | None = None) -> BatchReport:
        """Decode, look content up (one round trip), insert into ClickHouse, then count in Redis.

        The ClickHouse insert runs in this thread while the pipeline's helper thread writes the envelopes and
        sums and packs the leaderboard update: the engine does not hold the GIL while it writes the part, so
        the helper's Python work fits inside the insert, and the insert never waits for the GIL the helper
        holds to start (it would, up to the interpreter's switch interval, were the roles swapped). The Redis
        script runs only after the insert succeeded, so a failed insert leaves the leaderboard untouched. Both
        writes are idempotent, so the host's retry completes the batch.

        Once the batch is applied, its metrics are recorded (:func:`_record_enrich`); ``started`` is when the
        function began (default: now).
        """
        started = time.perf_counter() if started is None else started
        report = BatchReport(records=len(batch))
        decoded = decode_engagements(batch)
        columns = decoded.columns
        contents = self.store.get_many(columns["content_id"]) if len(columns) else {}
        enriched = EnrichedRows(columns, batch, contents, self.settings.topic_out)
        self.warehouse.ensure_schema()
        self.warehouse.insert_dead_letters(decoded.dead, function=ENRICH_FUNCTION)
        prepared = self._helper().submit(self.prepare_outputs, enriched, batch, columns)
        insert_started = time.perf_counter()
        try:
            self.warehouse.insert_enriched(enriched, scope="enrich")
        finally:
            update = prepared.result()
        update_started = time.perf_counter()
        report.already_counted = update.apply()
        update_ended = time.perf_counter()
        report.changes = len(columns)
        report.tombstones = decoded.tombstones
        report.unknown_content = enriched.unknown
        report.dead_letters = len(decoded.dead)
        report.envelopes = enriched.envelopes
        metrics.engagement_batch(
            self.settings.topic_engage,
            _enrich_counts(batch, enriched, decoded.dead),
            seconds=time.perf_counter() - started,
            clickhouse_seconds=update_started - insert_started,
            redis_seconds=update_ended - update_started,
            now_ms=self.now_ms(),
        )
        return report

    # ----------------------------------------------------------------------------------- content

    def content(self, events: Sequence[KafkaEventLike]) -> BatchReport:
        """Apply one trigger batch of ``content.flat`` and re-enrich the events that waited for it."""
        return self.content_records(records_from_events(events))

    def content_records(self, records: Sequence[RawRecord]) -> BatchReport:
        started = time.perf_counter()
        report = BatchReport(records=len(records))
        changes: list[ContentChange] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                changes.append(decode_content(record))
            except BadInputError as exc:
                dead.append(DeadLetter(record=record, reason=exc.reason, kind=exc.kind))
        self.warehouse.ensure_schema()
        store_started = time.perf_counter()
        self.store.apply(changes)
        store_ended = time.perf_counter()
        self.warehouse.insert_dead_letters(dead, function=CONTENT_FUNCTION)
        insert_started = time.perf_counter()
        self.warehouse.insert_content(changes)
        insert_ended = time.perf_counter()
        upserted = list(dict.fromkeys(c.content_id for c in changes if not c.deleted))
        batch = self._reenrich(upserted) if upserted else EnrichedBatch(self.settings.topic_out)
        report.changes = len(changes)
        report.tombstones = sum(1 for c in changes if c.record.value is None)
        report.dead_letters = len(dead)
        report.reenriched = len(batch)
        report.envelopes = batch.envelopes
        metrics.engagement_batch(
            self.settings.topic_content,
            _content_counts(records, changes, dead),
            seconds=time.perf_counter() - started,
            clickhouse_seconds=insert_ended - insert_started,
            redis_seconds=store_ended - store_started,
            now_ms=self.now_ms(),
            reenriched=_by_source_topic(batch),
        )
        return report

    def _reenrich(self, content_ids: Sequence[str] | None) -> EnrichedBatch:
        """Re-enrich stored unknown-content events whose content is now in the store."""
        since = self.now_ms() - self.settings.engagement_sweep_lookback_hours * 3_600_000
        batch = EnrichedBatch(self.settings.topic_out)
        if content_ids is not None:
            infos = self.store.get_many(content_ids, use_cache=False)
            known = [i for i, info in infos.items() if info is not None]
            if not known:
                return batch
            rows = self.warehouse.unknown_events(
                since_ms=since, limit=self.settings.engagement_sweep_limit, content_ids=known
            )
        else:
            rows = self.warehouse.unknown_events(since_ms=since, limit=self.settings.engagement_sweep_limit)
            infos = self.store.get_many({r.content_id for r in rows}, use_cache=False) if rows else {}
        for row in rows:
            info = infos.get(row.content_id)
            if info is not None:
                _add_unknown(batch, row, info)
        self.warehouse.insert_enriched(batch, scope="reenrich")
        return batch

    # ----------------------------------------------------------------------------------- timers

    def precompute_windows(self, now_ms: int | None = None) -> dict[int, int]:
        return self.leaderboard.precompute_windows(self.now_ms() if now_ms is None else now_ms)

    def upkeep(self, now_ms: int | None = None) -> BatchReport:
        """Sweep unknown-content events, then OPTIMIZE the recent partitions (bounded)."""
        at = self.now_ms() if now_ms is None else now_ms
        self.warehouse.ensure_schema()
        batch = self._reenrich(None)
        metrics.engagement_reenriched(_by_source_topic(batch))
        optimized = self.warehouse.optimize_recent(days=self.settings.clickhouse_optimize_days, now_ms=at)
        return BatchReport(
            reenriched=len(batch), partitions_optimized=len(optimized), envelopes=batch.envelopes
        )

    def top(self, *, minutes: int, n: int, now_ms: int | None = None) -> list[LeaderboardEntry]:
        return top_n_with_titles(self.leaderboard, self.store, minutes=minutes, n=n, now_ms=now_ms)


# --------------------------------------------------------------------------------------- metrics


def _enrich_counts(
    batch: TriggerBatch, enriched: EnrichedRows, dead: Sequence[DeadLetter]
) -> dict[tuple[str, int], PartitionCounts]:
    """Counts per (topic, partition) of an applied enrichment batch. A batch of one partition (the usual case)
    uses the batch's totals; one spanning partitions groups the enriched rows' columns in Arrow."""
    newest = batch.newest_timestamps_ms()
    counts = {key: PartitionCounts(newest_ms=ms) for key, ms in newest.items()}
    single = batch.single_partition()
    if single is not None:
        part = counts[single]
        part.received = len(batch)
        part.unknown_content = enriched.unknown
        part.enriched = len(enriched) - enriched.unknown
    else:
        for key, n in Counter(zip(batch.topics, batch.partitions, strict=True)).items():
            counts[key].received = n
        if len(enriched):
            grouped = (
                enriched.table.select(["source_topic", "source_partition", "content_known"])
                .group_by(["source_topic", "source_partition", "content_known"], use_threads=False)
                .aggregate([([], "count_all")])
            )
            for row in grouped.to_pylist():
                part = counts[(row["source_topic"], row["source_partition"])]
                if row["content_known"]:
                    part.enriched += row["count_all"]
                else:
                    part.unknown_content += row["count_all"]
    _count_dead(counts, dead)
    return counts


def _content_counts(
    records: Sequence[RawRecord], changes: Sequence[ContentChange], dead: Sequence[DeadLetter]
) -> dict[tuple[str, int], PartitionCounts]:
    """Counts per (topic, partition) of an applied content batch (decoded record by record anyway)."""
    counts: dict[tuple[str, int], PartitionCounts] = {}
    for record in records:
        key = (record.topic, record.partition)
        part = counts.get(key)
        if part is None:
            part = counts[key] = PartitionCounts()
        part.received += 1
        stamp = record.timestamp_ms
        if stamp is not None and (part.newest_ms is None or stamp > part.newest_ms):
            part.newest_ms = stamp
    for change in changes:
        counts[(change.record.topic, change.record.partition)].content_applied += 1
    _count_dead(counts, dead)
    return counts


def _count_dead(counts: dict[tuple[str, int], PartitionCounts], dead: Sequence[DeadLetter]) -> None:
    for letter in dead:
        key = (letter.record.topic, letter.record.partition)
        part = counts.get(key)
        if part is None:
            part = counts[key] = PartitionCounts()
        part.dead_letters[letter.kind] = part.dead_letters.get(letter.kind, 0) + 1


def _by_source_topic(batch: EnrichedBatch) -> dict[str, int]:
    """Re-enriched events by the topic they came from (a handful of rows, not the hot path)."""
    return dict(Counter(batch.column("source_topic"))) if len(batch) else {}


def _add_unknown(batch: EnrichedBatch, row: UnknownEvent, info: Any) -> None:
    batch.add(
        row,
        content=info,
        engagement_version_ms=row.engagement_version_ms,
        deleted=False,
        source_topic=row.source_topic,
        source_partition=row.source_partition,
        source_offset=row.source_offset,
    )


# --------------------------------------------------------------------------------------- process wiring


class _GcPause:
    """Who paused the cyclic garbage collector (batches may run in several threads at once)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.disabled = False


_GC = _GcPause()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch runs; it resumes when the last running batch ends.

    A batch allocates tens of thousands of short-lived tuples and strings that reference counting frees at
    once; with the collector on, those allocations also trigger collections that walk the whole heap (a
    fifth of the batch's time, measured). A batch creates no reference cycles. A collector that was already
    disabled by someone else stays disabled.
    """
    with _GC.lock:
        if _GC.depth == 0 and gc.isenabled():
            gc.disable()
            _GC.disabled = True
        _GC.depth += 1
    try:
        yield
    finally:
        with _GC.lock:
            _GC.depth -= 1
            if _GC.depth == 0 and _GC.disabled:
                _GC.disabled = False
                gc.enable()


_PIPELINES: dict[int, Pipeline] = {}
_OVERRIDE: list[Pipeline] = []
_LOCK = threading.Lock()


def pipeline_for(settings: Settings) -> Pipeline:
    """The process's pipeline for these settings (built on first use, so indexing stays cheap)."""
    if _OVERRIDE:
        return _OVERRIDE[-1]
    with _LOCK:
        pipeline = _PIPELINES.get(id(settings))
        if pipeline is None:
            pipeline = _PIPELINES[id(settings)] = Pipeline(settings)
        return pipeline


@contextmanager
def use_pipeline(pipeline: Pipeline) -> Iterator[Pipeline]:
    """Run the function entry points against ``pipeline`` (tests, the demo and the benchmark)."""
    _OVERRIDE.append(pipeline)
    try:
        yield pipeline
    finally:
        _OVERRIDE.remove(pipeline)


def _publish(out: OutLike | None, envelopes: list[str]) -> None:
    if out is not None and envelopes:
        out.set(envelopes)


def on_engagement_batch(
    settings: Settings, events: Sequence[KafkaEventLike], out: OutLike | None
) -> BatchReport:
    report = pipeline_for(settings).enrich(events)
    _publish(out, report.envelopes)
    log.info(
        ENRICH_BATCH_LOG,
        report.records,
        report.changes,
        report.unknown_content,
        report.dead_letters,
        report.already_counted,
    )
    return report


def on_content_batch(
    settings: Settings, events: Sequence[KafkaEventLike], out: OutLike | None
) -> BatchReport:
    report = pipeline_for(settings).content(events)
    _publish(out, report.envelopes)
    log.info(
        CONTENT_BATCH_LOG,
        report.records,
        report.changes,
        report.dead_letters,
        report.reenriched,
    )
    return report


def on_windows_timer(settings: Settings) -> dict[int, int]:
    with metrics.job_run(metrics.JOB_LEADERBOARD_WINDOWS) as run:
        sizes = pipeline_for(settings).precompute_windows()
        run.count("windows_built", len(sizes))
    log.info("leaderboard windows rebuilt: %s", sizes)
    return sizes


def on_upkeep_timer(settings: Settings, out: OutLike | None) -> BatchReport:
    with metrics.job_run(metrics.JOB_CLICKHOUSE_UPKEEP) as run:
        report = pipeline_for(settings).upkeep()
        _publish(out, report.envelopes)
        run.count("events_reenriched", report.reenriched)
        run.count("partitions_optimized", report.partitions_optimized)
    log.info("upkeep: %d events re-enriched", report.reenriched)
    return report
