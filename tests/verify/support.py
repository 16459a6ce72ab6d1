"""Shared pieces of the verify tests: an Event Hubs sender that feeds the real function, Kafka offsets."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from azure.eventhub import EventData

from shared.settings import EventHubMapping
from tests.support.cli import ROOT


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class FeederSender:
    """A :class:`shared.verify.eventhubs.EventSender` that hands the events verify built to the real
    ``eventhub_to_motherduck_N`` in another process (tests/verify/ehfeed.py), as the Functions host would."""

    def __init__(self, env: Mapping[str, str], folder: Path) -> None:
        self.env = dict(env)
        self.folder = folder
        self.sent: list[tuple[int, list[EventData]]] = []

    def send(self, mapping: EventHubMapping, events: Sequence[EventData]) -> None:
        self.sent.append((mapping.index, list(events)))
        feed(
            self.env,
            self.folder,
            mapping.function_name,
            [
                (
                    b"".join(cast(Iterable[bytes], e.body)),
                    {str(_text(k)): _text(v) for k, v in (e.properties or {}).items()},
                )
                for e in events
            ],
        )

    def close(self) -> None:
        return None


def feed(
    env: Mapping[str, str], folder: Path, function: str, events: Sequence[tuple[bytes, Mapping[str, Any]]]
) -> None:
    """Run tests/verify/ehfeed.py for ``events`` (body, application properties); fails the test on error."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / f"feed-{len(list(folder.glob('feed-*.json')))}.json"
    spec.write_text(
        json.dumps(
            {
                "function": function,
                "events": [
                    {"body": base64.b64encode(body).decode(), "properties": dict(props)}
                    for body, props in events
                ],
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.verify.ehfeed", str(spec)],
        env=dict(env),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def committed(brokers: str, group: str, topic: str) -> int:
    """Messages of ``topic`` the consumer group has committed (sum over partitions)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=5)
        if topic not in metadata.topics or not metadata.topics[topic].partitions:
            return 0
        parts = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=5))
    finally:
        consumer.close()


def high_watermarks(brokers: str, topic: str) -> int:
    """Messages in ``topic`` (sum of the partitions' high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "streamduck-tests-offsets"})
    try:
        metadata = consumer.list_topics(topic, timeout=5)
        if topic not in metadata.topics:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
            for p in metadata.topics[topic].partitions
        )
    finally:
        consumer.close()
