"""Helpers of the engagement tests: the test environment, Kafka round trips, function calls, row builders."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shared.appindex import indexed_functions
from shared.demo.engagement import Collect
from shared.engagement.functions import Pipeline, use_pipeline
from shared.engagement.kafka_io import batch_from_messages, produce_envelopes, trigger_batch
from shared.settings import Settings

# 2026-03-01 23:58:00 UTC: close to a minute, hour, day and month boundary.
T0_MS = 1_772_409_480_000


@dataclass
class Env:
    """Everything one test works with."""

    settings: Settings
    brokers: str
    clock: list[float] = field(default_factory=lambda: [T0_MS / 1000])
    _pipeline: Pipeline | None = None
    produced: dict[str, int] = field(default_factory=dict)

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(self.settings, clock=lambda: self.clock[0])
        return self._pipeline

    # ----------------------------------------------------------------------------------- Kafka

    def create_topics(self, *names: str, partitions: int = 1) -> None:
        admin = AdminClient({"bootstrap.servers": self.brokers})
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
        for future in futures.values():
            future.result(timeout=30)

    def produce(
        self, topic: str, rows: Sequence[tuple[str | None, bytes | None]], partition: int = 0
    ) -> None:
        producer = Producer({"bootstrap.servers": self.brokers, "linger.ms": 5})
        for key, value in rows:
            producer.produce(
                topic, value=value, key=key.encode() if key is not None else None, partition=partition
            )
        assert producer.flush(30) == 0

    def consume(self, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.brokers,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while len(messages) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                messages.append(message)
            # nothing beyond the expected count
            extra = consumer.poll(1.0)
            assert extra is None or extra.error() is not None, "more messages than expected"
        finally:
            consumer.close()
        assert len(messages) == count, f"{topic}: consumed {len(messages)} of {count}"
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))

    def publish(self, envelopes: Sequence[str]) -> None:
        """What the Kafka extension does with the output binding after the function returns."""
        if envelopes:
            producer = Producer({"bootstrap.servers": self.brokers, "linger.ms": 5})
            produce_envelopes(producer, envelopes)

    def send(self, topic: str, rows: Sequence[tuple[str | None, bytes | None]]) -> list[func.KafkaEvent]:
        """Produce rows to the real broker, consume them back and return them as a trigger batch."""
        before = self.produced.get(topic, 0)
        self.produce(topic, rows)
        self.produced[topic] = before + len(rows)
        messages = self.consume(topic, before + len(rows))[before:]
        return batch_from_messages(messages)

    # ----------------------------------------------------------------------------------- functions

    def call(
        self, name: str, events: list[func.KafkaEvent] | None = None, *, publish: bool = True
    ) -> list[str]:
        """Call a function of ``function_app`` the way the worker does, then publish its output."""
        function = app_function(name)
        out = Collect()
        with use_pipeline(self.pipeline):
            if events is None:
                kwargs: dict[str, Any] = {"timer": func.TimerRequest(past_due=False)}
                if "out" in function.__code__.co_varnames:
                    kwargs["out"] = out
                function(**kwargs)
            else:
                function(events=events, out=out)
        if publish:
            self.publish(out.items)
        return out.items


def app_functions() -> dict[str, Any]:
    """``function_app``'s functions by name, from the process-wide index the demo and benchmark share
    (``get_functions()`` may be called only once per app)."""
    import function_app

    return indexed_functions(function_app.app)


def app_function(name: str) -> Callable[..., Any]:
    """The plain callable of a registered function, as the worker invokes it."""
    fn = app_functions().get(name)
    assert fn is not None, f"function {name} is not registered"
    user_function: Callable[..., Any] = fn.get_user_function()
    return user_function


# --------------------------------------------------------------------------------------- row builders


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def content_row(
    content_id: str,
    *,
    title: str = "Title",
    content_type: str = "video",
    length_seconds: int | None = 600,
    op: str = "c",
    version: int = T0_MS - 3_600_000,
) -> dict[str, Any]:
    return {
        "id": content_id,
        "slug": f"slug-{content_id[:8]}",
        "title": title,
        "content_type": content_type,
        "length_seconds": length_seconds,
        "publish_ts": "2025-08-27T10:00:00Z",
        "__op": op,
        "__table": "content",
        "__source_ts_ms": version,
    }


def engagement_row(
    event_id: int,
    content_id: str,
    *,
    ts_ms: int,
    duration_ms: int | None = 30_000,
    event_type: str = "play",
    op: str = "c",
    version: int | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "content_id": content_id,
        "user_id": str(uuid.UUID(int=event_id + 1)),
        "event_type": event_type,
        "event_ts": iso(ts_ms),
        "duration_ms": duration_ms,
        "device": "ios",
        "raw_payload": {"ab_bucket": "A"},
        "__op": op,
        "__table": "engagement_events",
        "__source_ts_ms": version if version is not None else ts_ms + 50,
    }


def dumps(row: dict[str, Any]) -> bytes:
    return json.dumps(row).encode()


def local_batch(
    topic: str, values: Sequence[bytes | None], *, first_offset: int = 0, keys: Any = None
) -> Any:
    """A trigger batch without the broker (for tests of decoding and of stores only)."""
    n = len(values)
    return trigger_batch(
        values=values,
        topics=[topic] * n,
        partitions=[0] * n,
        offsets=list(range(first_offset, first_offset + n)),
        keys=keys if keys is not None else [None] * n,
        timestamps=[iso(T0_MS)] * n,
    )
