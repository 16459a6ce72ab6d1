"""simulate targets: Kafka topic creation against a real broker; the Event Hubs target up to the SDK boundary
(the SDK's own ``EventData`` / ``EventDataBatch`` objects, then the CLI against a namespace nobody answers)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData, EventDataBatch
from azure.eventhub.amqp import AmqpAnnotatedMessage

from shared.errors import TerminalError, TransientError
from shared.settings import load_settings
from shared.simulate.model import Engagement, TrafficModel
from shared.simulate.targets import EventHubsTarget, create_topics
from tests.support.cli import base_env, run_cli

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# --------------------------------------------------------------------------------------- Kafka topics


def _admin(brokers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": brokers})


def test_creating_the_topics_twice_succeeds(kafka_brokers: str, unique_name: str) -> None:
    admin = _admin(kafka_brokers)
    topics = [f"{unique_name}-content", f"{unique_name}-engage"]
    try:
        create_topics(admin, topics, partitions=2)
        create_topics(admin, topics, partitions=2)  # the broker answers TOPIC_ALREADY_EXISTS: fine
        metadata = admin.list_topics(timeout=10).topics
        assert {t: len(metadata[t].partitions) for t in topics} == dict.fromkeys(topics, 2)
    finally:
        for future in admin.delete_topics(topics).values():
            future.result(timeout=30)


def test_a_broker_refusal_surfaces_as_a_terminal_error(kafka_brokers: str) -> None:
    from confluent_kafka import KafkaError, KafkaException

    with pytest.raises(
        TerminalError, match="cannot create topic bad topic!: Topic name is invalid"
    ) as caught:
        create_topics(_admin(kafka_brokers), ["bad topic!"], partitions=1)
    assert not isinstance(caught.value, TransientError)  # not "temporary; try again"
    cause = caught.value.__cause__
    assert isinstance(cause, KafkaException)
    assert cause.args[0].code() == KafkaError.TOPIC_EXCEPTION


# --------------------------------------------------------------------------------------- Event Hubs


class _RecordingBatch(EventDataBatch):
    """The SDK's batch (its own size accounting and partition key), remembering what was added."""

    def __init__(self, *, max_size_in_bytes: int, partition_key: str | None) -> None:
        super().__init__(max_size_in_bytes=max_size_in_bytes, partition_key=partition_key)
        self.events: list[EventData] = []
        self.partition_key = partition_key

    def add(self, event_data: EventData | AmqpAnnotatedMessage) -> None:
        assert isinstance(event_data, EventData)  # the target sends EventData
        super().add(event_data)
        self.events.append(event_data)


class _Producer:
    """``EventHubProducerClient`` at its boundary: ``create_batch`` as the SDK builds it for a hub whose
    largest message is ``max_size`` bytes, ``send_batch`` recording instead of sending."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.sent: list[_RecordingBatch] = []
        self.closed = False

    def create_batch(self, *, partition_key: str | None = None) -> _RecordingBatch:
        return _RecordingBatch(max_size_in_bytes=self.max_size, partition_key=partition_key)

    def send_batch(self, batch: _RecordingBatch) -> None:
        self.sent.append(batch)

    def close(self) -> None:
        self.closed = True


def _events(count: int, contents: int = 3) -> list[Engagement]:
    model = TrafficModel(seed=4, start=START, first_id=1)
    ids = [c.id for c in model.content(contents)]
    source = model.events(ids)
    return [next(source) for _ in range(count)]


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _copy(data: EventData) -> EventData:
    copy = EventData(data.body_as_str())
    copy.properties = dict(data.properties)
    return copy


def _target(producer: _Producer) -> EventHubsTarget:
    return EventHubsTarget(load_settings({}), "telemetry", client=producer)  # type: ignore[arg-type]


def test_eventhubs_batches_bodies_properties_partition_keys_and_size_splits() -> None:
    events = _events(60)
    producer = _Producer(max_size=2048)
    target = _target(producer)
    target.send_events(events)
    target.close()
    assert producer.closed

    by_key: dict[str, list[_RecordingBatch]] = defaultdict(list)
    for batch in producer.sent:
        assert 0 < len(batch) == len(batch.events)
        assert batch.size_in_bytes <= producer.max_size
        by_key[str(batch.partition_key)].append(batch)
    expected: dict[str, list[Engagement]] = defaultdict(list)
    for e in events:
        expected[e.content_id].append(e)
    assert set(by_key) == set(expected)

    for key, batches in by_key.items():
        sent = [data for batch in batches for data in batch.events]
        assert [json.loads(d.body_as_str()) for d in sent] == [e.row() for e in expected[key]]
        assert [d.properties for d in sent] == [
            {"event_type": e.event_type, "source": "streamduck-simulate"} for e in expected[key]
        ]
        assert {_text(d.partition_key) for d in sent} == {key}
        # split by size: every batch but the last of a key was full (its successor's first event did not fit)
        for full, following in itertools.pairwise(batches):
            probe = _RecordingBatch(max_size_in_bytes=producer.max_size, partition_key=key)
            for data in full.events:
                probe.add(_copy(data))
            with pytest.raises(ValueError):
                probe.add(_copy(following.events[0]))
    assert max(len(b) for b in by_key.values()) > 1, "no key needed a second batch"
    assert sum(len(b) for b in producer.sent) == 60


def test_an_event_larger_than_an_empty_batch_is_a_terminal_error() -> None:
    producer = _Producer(max_size=200)
    with pytest.raises(TerminalError, match="does not fit in an empty batch of Event Hub telemetry"):
        _target(producer).send_events(_events(1))
    assert producer.sent == []


@pytest.mark.slow  # the Event Hubs client retries the closed port before it gives up
def test_an_unreachable_namespace_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        EVENTHUB_CONNECTION_STRING=(
            "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=simulate;SharedAccessKey=c2VjcmV0;"
            "UseDevelopmentEmulator=true"
        ),
    )
    result = run_cli(
        "simulate", "--target", "eventhubs", "--hub", "telemetry", "--count", "5", "--rate", "0", "--json",
        env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.code == 4, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: eventhubs: cannot send to Event Hub telemetry: ConnectError: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
