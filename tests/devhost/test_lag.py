"""The dev host's lag reports: an expected broker failure is logged with its reason; anything else propagates."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the typed home of confluent_kafka.admin.NewTopic

from shared.devhost.eventhubs import EventHubSource
from shared.devhost.functions import HostedFunction, TriggerKind
from shared.devhost.kafka import KafkaBatching, KafkaSource
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.settings import load_settings
from tests.devhost.support import hosted

UNREACHABLE = "127.0.0.1:1"


def lagged(kind: TriggerKind) -> HostedFunction:
    return hosted(kind, lambda events: None, name="lagged")


def kafka_source(stats: HostStats) -> KafkaSource:
    fn = lagged(TriggerKind.KAFKA)
    stop = threading.Event()
    return KafkaSource(fn, load_settings({}), KafkaBatching(), Invoker(stop), stats, stop)


def consumer(brokers: str) -> Any:
    return Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"lag-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "socket.connection.setup.timeout.ms": 1000,
            "log_level": 0,
        },
        logger=logging.getLogger("tests.kafka.client"),
    )


def test_kafka_lag_failure_is_a_warning_with_the_reason_once_per_streak(
    caplog: pytest.LogCaptureFixture, kafka_brokers: str
) -> None:
    stats = HostStats()
    source = kafka_source(stats)
    source._assigned = [TopicPartition("topic", 0)]
    down = consumer(UNREACHABLE)
    try:
        with caplog.at_level(logging.DEBUG, logger="streamduck.devhost"):
            source._update_lag(down)  # the broker does not answer: KafkaException inside
            source._update_lag(down)
    finally:
        down.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    message = warnings[0].getMessage()
    assert message.startswith("lagged: lag unavailable (asked again every 2 s): ")
    assert "KafkaError" in message or "Timed out" in message or "transport" in message.lower(), message
    assert stats.ready_count() == 0  # not reported as connected and drained

    # The broker answers again: the lag is reported and the recovery said once.
    topic = f"lag-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_brokers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    source._assigned = [TopicPartition(topic, 0)]
    up = consumer(kafka_brokers)
    caplog.clear()
    try:
        with caplog.at_level(logging.INFO, logger="streamduck.devhost"):
            source._update_lag(up)
    finally:
        up.close()
        admin.delete_topics([topic])
    assert [r.getMessage() for r in caplog.records] == ["lagged: lag available again"]
    assert stats.ready_count() == 1
    assert {p.partition: p.lag for p in stats.snapshot()} == {"0": 0}


def test_kafka_lag_bug_is_not_swallowed() -> None:
    source = kafka_source(HostStats())
    source._assigned = [TopicPartition("topic", 0)]
    closed = consumer(UNREACHABLE)
    closed.close()
    with pytest.raises(RuntimeError):  # a closed consumer is a bug in the caller, not a broker outage
        source._update_lag(closed)


class _Context:
    """The part of azure.eventhub's PartitionContext that the lag reads."""

    def __init__(self, properties: dict[str, Any] | Exception, received: int | None) -> None:
        self._properties = properties
        self._last_received_event = type("Received", (), {"sequence_number": received})()
        self.partition_id = "3"

    @property
    def last_enqueued_event_properties(self) -> dict[str, Any]:
        if isinstance(self._properties, Exception):
            raise self._properties
        return self._properties


def eventhub_source(stats: HostStats) -> EventHubSource:
    source = EventHubSource.__new__(EventHubSource)  # the lag needs only the function and the stats
    source.fn = lagged(TriggerKind.EVENT_HUB)
    source.stats = stats
    return source


def test_eventhub_lag_from_the_received_annotations() -> None:
    stats = HostStats()
    eventhub_source(stats)._update_lag(_Context({"sequence_number": 120}, received=100))
    assert {p.partition: p.lag for p in stats.snapshot()} == {"3": 20}


def test_eventhub_lag_failure_propagates() -> None:
    source = eventhub_source(HostStats())
    with pytest.raises(ValueError, match="bad annotation"):
        source._update_lag(_Context(ValueError("bad annotation"), received=100))
