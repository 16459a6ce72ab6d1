"""Every OpenTelemetry metric StreamDuck emits: one definition per metric, read by the code that records it,
by the dev host's views and by the drift test that holds the workbook and the alerts to these names.

Names are what Application Insights shows in ``customMetrics`` (``name``) and Log Analytics in ``AppMetrics``
(``Name``); attribute keys become ``customDimensions`` / ``Properties`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


# Attribute keys.
MAPPING = "streamduck.mapping"  # Event Hubs mapping: its function name, e.g. eventhub_to_motherduck_1
PARTITION = "streamduck.partition"  # Event Hubs partition id or Kafka partition number, as text
TOPIC = "streamduck.topic"  # Kafka topic
REASON = "streamduck.reason"  # dead-letter reason, e.g. invalid_json, oversized
JOB = "streamduck.job"  # timer job: compaction, leaderboard_windows, clickhouse_upkeep
ACTION = "streamduck.action"  # what a timer job did, e.g. rows_deleted, partitions_optimized
OUTCOME = "streamduck.outcome"  # ok | error


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]


# --- Event Hubs -> MotherDuck, per mapping and partition ------------------------------------------------
EH_RECEIVED = Metric(
    "streamduck.eventhubs.events.received", Kind.COUNTER, "{event}",
    "Events delivered to the function, replays included.", (MAPPING, PARTITION),
)  # fmt: skip
EH_WRITTEN = Metric(
    "streamduck.eventhubs.events.written", Kind.COUNTER, "{event}",
    "Events written to the mapping's table (committed with the watermark).", (MAPPING, PARTITION),
)  # fmt: skip
EH_DEAD_LETTERED = Metric(
    "streamduck.eventhubs.events.dead_lettered", Kind.COUNTER, "{event}",
    "Events parked in the dead-letter table, by reason.", (MAPPING, PARTITION, REASON),
)  # fmt: skip
EH_REPLAYED = Metric(
    "streamduck.eventhubs.events.replayed", Kind.COUNTER, "{event}",
    "Events skipped because the watermark shows they were committed before (host replays).", (MAPPING, PARTITION),
)  # fmt: skip
EH_BATCH_DURATION = Metric(
    "streamduck.eventhubs.batch.duration", Kind.HISTOGRAM, "s",
    "Time the function took for one batch, decode to commit.", (MAPPING,),
)  # fmt: skip
EH_LAG = Metric(
    "streamduck.eventhubs.lag", Kind.HISTOGRAM, "s",
    "End-to-end lag: commit time minus the newest event's enqueued time, per batch.", (MAPPING, PARTITION),
)  # fmt: skip
EH_WATERMARK = Metric(
    "streamduck.eventhubs.watermark", Kind.GAUGE, "{sequence_number}",
    "Highest sequence number committed per partition.", (MAPPING, PARTITION),
)  # fmt: skip

# --- Kafka engagement pipeline, per topic and partition -------------------------------------------------
KAFKA_RECORDS = Metric(
    "streamduck.engagement.records.received", Kind.COUNTER, "{record}",
    "CDC records delivered to a Kafka-triggered function.", (TOPIC, PARTITION),
)  # fmt: skip
KAFKA_ENRICHED = Metric(
    "streamduck.engagement.records.enriched", Kind.COUNTER, "{record}",
    "Engagement events enriched with known content and published.", (TOPIC, PARTITION),
)  # fmt: skip
KAFKA_UNKNOWN_CONTENT = Metric(
    "streamduck.engagement.records.unknown_content", Kind.COUNTER, "{record}",
    "Engagement events whose content was not known yet (kept, re-enriched when it arrives).", (TOPIC, PARTITION),
)  # fmt: skip
KAFKA_REENRICHED = Metric(
    "streamduck.engagement.records.reenriched", Kind.COUNTER, "{record}",
    "Events re-enriched after their late content arrived (content function and upkeep sweep).", (TOPIC,),
)  # fmt: skip
KAFKA_CONTENT = Metric(
    "streamduck.engagement.content.applied", Kind.COUNTER, "{record}",
    "Content changes applied to the content store and the ClickHouse dimension.", (TOPIC, PARTITION),
)  # fmt: skip
KAFKA_DEAD_LETTERS = Metric(
    "streamduck.engagement.dead_letters", Kind.COUNTER, "{record}",
    "CDC records parked in the ClickHouse dead-letter table, by reason.", (TOPIC, PARTITION, REASON),
)  # fmt: skip
KAFKA_BATCH_DURATION = Metric(
    "streamduck.engagement.batch.duration", Kind.HISTOGRAM, "s",
    "Time a Kafka-triggered function took for one batch.", (TOPIC,),
)  # fmt: skip
KAFKA_CLICKHOUSE_DURATION = Metric(
    "streamduck.engagement.clickhouse.insert.duration", Kind.HISTOGRAM, "s",
    "Time of one batch's ClickHouse insert.", (TOPIC,),
)  # fmt: skip
KAFKA_REDIS_DURATION = Metric(
    "streamduck.engagement.redis.update.duration", Kind.HISTOGRAM, "s",
    "Time of one batch's Redis update (content store or leaderboard script).", (TOPIC,),
)  # fmt: skip
KAFKA_LAG = Metric(
    "streamduck.engagement.lag", Kind.HISTOGRAM, "s",
    "End-to-end lag: processing time minus the newest record's Kafka timestamp, per batch.", (TOPIC, PARTITION),
)  # fmt: skip

# --- Timer jobs ---------------------------------------------------------------------------------------------
JOB_RUNS = Metric(
    "streamduck.job.runs", Kind.COUNTER, "{run}",
    "Timer job runs, by outcome.", (JOB, OUTCOME),
)  # fmt: skip
JOB_DURATION = Metric(
    "streamduck.job.duration", Kind.HISTOGRAM, "s",
    "Time a timer job took.", (JOB,),
)  # fmt: skip
JOB_ITEMS = Metric(
    "streamduck.job.items", Kind.COUNTER, "{item}",
    "What a timer job did: rows deleted, tables compacted, partitions optimized, windows built, events re-enriched.",
    (JOB, ACTION),
)  # fmt: skip

ALL: tuple[Metric, ...] = (
    EH_RECEIVED, EH_WRITTEN, EH_DEAD_LETTERED, EH_REPLAYED, EH_BATCH_DURATION, EH_LAG, EH_WATERMARK,
    KAFKA_RECORDS, KAFKA_ENRICHED, KAFKA_UNKNOWN_CONTENT, KAFKA_REENRICHED, KAFKA_CONTENT, KAFKA_DEAD_LETTERS,
    KAFKA_BATCH_DURATION, KAFKA_CLICKHOUSE_DURATION, KAFKA_REDIS_DURATION, KAFKA_LAG,
    JOB_RUNS, JOB_DURATION, JOB_ITEMS,
)  # fmt: skip

NAMES: frozenset[str] = frozenset(m.name for m in ALL)
