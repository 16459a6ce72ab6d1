"""The Kafka engagement functions' metrics for known batches (known and unknown content, malformed records, a
batch spanning partitions, late content), read with the real SDK. Real Redis and embedded ClickHouse (chDB)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import azure.functions as func
import pytest
from pydantic import SecretStr

from shared.demo.engagement import Collect
from shared.engagement.functions import Pipeline, on_content_batch, on_engagement_batch, use_pipeline
from shared.engagement.kafka_io import trigger_batch
from shared.errors import TransientError
from shared.settings import Settings, load_settings
from shared.telemetry import catalog
from tests.engagement.support import T0_MS, content_row, dumps, engagement_row, iso
from tests.telemetry.conftest import Recorded, attrs

C1 = str(uuid.UUID(int=101))
C2 = str(uuid.UUID(int=202))


@pytest.fixture
def settings(redis_url: str, chdb_path: Path, unique_name: str) -> Settings:
    return load_settings(
        {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"test:{unique_name}:",
            "CLICKHOUSE_CHDB_PATH": str(chdb_path),
            "CLICKHOUSE_DATABASE": f"metrics_{unique_name}",
            "TOPIC_CONTENT": f"content.flat.{unique_name}",
            "TOPIC_ENGAGE": f"engagement_events.flat.{unique_name}",
            "TOPIC_OUT": f"engagement_enriched.{unique_name}",
            "CONTENT_CACHE_TTL_SECONDS": "0",
        }
    )


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    pipeline = Pipeline(settings, clock=lambda: T0_MS / 1000)
    with use_pipeline(pipeline):
        yield pipeline


def events(
    topic: str, values: Sequence[bytes | None], partitions: list[int], *, newest_ms: int
) -> list[func.KafkaEvent]:
    """A trigger batch whose records are one second apart, the last one at ``newest_ms``."""
    n = len(values)
    return trigger_batch(
        values=values,
        topics=[topic] * n,
        partitions=partitions,
        offsets=list(range(n)),
        keys=[None] * n,
        timestamps=[iso(newest_ms - (n - 1 - i) * 1000) for i in range(n)],
    )


def test_known_batches_give_exact_counts_per_topic_partition_and_reason(
    settings: Settings, pipeline: Pipeline, recorded: Recorded
) -> None:
    content, engage = settings.topic_content, settings.topic_engage
    ts = T0_MS - 60_000
    on_content_batch(
        settings,
        events(content, [dumps(content_row(C1)), b"{not json"], [0, 0], newest_ms=T0_MS - 2_000),
        Collect(),
    )
    # One partition: 3 events of known content, 2 of unknown content, 1 malformed record.
    first = [dumps(engagement_row(i, C1, ts_ms=ts)) for i in range(1, 4)]
    first += [dumps(engagement_row(i, C2, ts_ms=ts)) for i in range(4, 6)]
    first.append(b"nope")
    on_engagement_batch(settings, events(engage, first, [2] * 6, newest_ms=T0_MS - 5_000), Collect())
    # Two partitions in one batch: partition 0 two known; partition 1 one unknown and one without event_type.
    missing = engagement_row(9, C2, ts_ms=ts)
    del missing["event_type"]
    second = [dumps(engagement_row(i, C1, ts_ms=ts)) for i in (6, 7)]
    second += [dumps(engagement_row(8, C2, ts_ms=ts)), dumps(missing)]
    on_engagement_batch(settings, events(engage, second, [0, 0, 1, 1], newest_ms=T0_MS - 1_000), Collect())
    # C2 arrives late: the three events that waited for it are re-enriched.
    on_content_batch(settings, events(content, [dumps(content_row(C2))], [0], newest_ms=T0_MS), Collect())
    recorded.collect()

    def at(topic: str, partition: int, **more: str) -> frozenset[tuple[str, str]]:
        return attrs(streamduck_topic=topic, streamduck_partition=str(partition), **more)

    assert recorded.by(catalog.KAFKA_RECORDS.name) == {
        at(content, 0): 3,
        at(engage, 2): 6,
        at(engage, 0): 2,
        at(engage, 1): 2,
    }
    assert recorded.by(catalog.KAFKA_ENRICHED.name) == {at(engage, 2): 3, at(engage, 0): 2}
    assert recorded.by(catalog.KAFKA_UNKNOWN_CONTENT.name) == {at(engage, 2): 2, at(engage, 1): 1}
    assert recorded.by(catalog.KAFKA_CONTENT.name) == {at(content, 0): 2}
    assert recorded.by(catalog.KAFKA_DEAD_LETTERS.name) == {
        at(content, 0, streamduck_reason="invalid_json"): 1,
        at(engage, 2, streamduck_reason="invalid_json"): 1,
        at(engage, 1, streamduck_reason="missing_field"): 1,
    }
    assert recorded.by(catalog.KAFKA_REENRICHED.name) == {attrs(streamduck_topic=engage): 3}

    # Lag: the pipeline's clock (T0) minus the newest record's Kafka timestamp, per batch and partition.
    assert recorded.histogram(catalog.KAFKA_LAG.name, **_where(engage, 2)).sum == 5.0
    # Partition 0's newest record of the second batch is its second one, 3 s before T0.
    assert recorded.histogram(catalog.KAFKA_LAG.name, **_where(engage, 0)).max == 3.0
    assert recorded.histogram(catalog.KAFKA_LAG.name, **_where(engage, 1)).max == 1.0
    content_lag = recorded.histogram(catalog.KAFKA_LAG.name, **_where(content, 0))
    assert (content_lag.count, content_lag.sum) == (2, 2.0)

    for topic, batches in ((engage, 2), (content, 2)):
        for metric in (
            catalog.KAFKA_BATCH_DURATION,
            catalog.KAFKA_CLICKHOUSE_DURATION,
            catalog.KAFKA_REDIS_DURATION,
        ):
            seconds = recorded.histogram(metric.name, streamduck_topic=topic)
            assert seconds.count == batches and 0 < seconds.sum < 60, (metric.name, topic, seconds)
    whole = recorded.histogram(catalog.KAFKA_BATCH_DURATION.name, streamduck_topic=engage).sum
    parts = sum(
        recorded.histogram(m.name, streamduck_topic=engage).sum
        for m in (catalog.KAFKA_CLICKHOUSE_DURATION, catalog.KAFKA_REDIS_DURATION)
    )
    assert whole > parts


def test_a_failing_batch_records_nothing(settings: Settings, recorded: Recorded) -> None:
    """Counts are of applied batches only: a batch that raises (the host retries it) is not counted twice."""
    down = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})
    batch = events(down.topic_engage, [dumps(engagement_row(1, C1, ts_ms=T0_MS))], [0], newest_ms=T0_MS)
    with use_pipeline(Pipeline(down, clock=lambda: T0_MS / 1000)), pytest.raises(TransientError):
        on_engagement_batch(down, batch, Collect())
    assert recorded.collect().counters == {}
    assert recorded.histograms == {}


def _where(topic: str, partition: int) -> dict[str, str]:
    return {"streamduck_topic": topic, "streamduck_partition": str(partition)}
