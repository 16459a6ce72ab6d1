"""Kafka trigger source: confluent-kafka consumer, ``func.KafkaEvent`` batches, commit after the function.

Mirrors the Kafka extension: the consumer group and topic come from the trigger binding; a batch holds up to
``maxBatchSize`` messages (host.json ``extensions.kafka.maxBatchSize``, default 64) collected for at most
``subscriberIntervalInSeconds``; offsets are committed only after the function returned (or, like the
extension's ``commitOnFailure``, after its retries were exhausted). A batch abandoned on shutdown is not
committed and is delivered again on the next start. Auto-commit is off, so a crash (even ``kill -9``)
replays at most the batch in flight; the sinks are idempotent, so the replay changes nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions.kafka import KafkaTriggerConverter
from azure.functions.meta import Datum

from shared.devhost.functions import HostedFunction
from shared.devhost.outputs import OutputProducer
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.errors import TransientError, describe_unreachable
from shared.kafkaconfig import client_config
from shared.settings import Settings

log = logging.getLogger("streamduck.devhost")


@dataclass(frozen=True)
class KafkaMessage:
    """What the dev host keeps of one consumed message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()


class _Collection:
    """Stand-in for the worker's protobuf collections (``.bytes``, ``.string``, ``.sint64``)."""

    def __init__(self, **items: list[Any]) -> None:
        for name, value in items.items():
            setattr(self, name, value)


def _timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", errors="replace")


def _headers(message: KafkaMessage) -> list[dict[str, str | None]]:
    return [
        {"Key": k, "Value": None if v is None else base64.b64encode(v).decode("ascii")}
        for k, v in message.headers
    ]


def to_kafka_events(messages: Sequence[KafkaMessage], *, data_type: str = "binary") -> list[func.KafkaEvent]:
    """The ``list[func.KafkaEvent]`` a cardinality-many function receives (the worker's own converter)."""
    metadata = {
        "KeyArray": Datum(json.dumps([_key(m.key) for m in messages]), "json"),
        "PartitionArray": Datum(json.dumps([m.partition for m in messages]), "json"),
        "OffsetArray": Datum(_Collection(sint64=[m.offset for m in messages]), "collection_sint64"),
        "TopicArray": Datum(_Collection(string=[m.topic for m in messages]), "collection_string"),
        "TimestampArray": Datum(json.dumps([_timestamp(m.timestamp_ms) for m in messages]), "json"),
        "HeadersArray": Datum(json.dumps([_headers(m) for m in messages]), "json"),
    }
    if data_type.lower() == "string":
        data = Datum(
            _Collection(string=[m.value.decode("utf-8", errors="replace") for m in messages]),
            "collection_string",
        )
    else:
        data = Datum(_Collection(bytes=[m.value for m in messages]), "collection_bytes")
    decoded = KafkaTriggerConverter.decode(data, trigger_metadata=metadata)
    if not isinstance(decoded, list):
        raise TypeError("the Kafka converter returned a single event for a batch")
    return decoded


def to_kafka_event(message: KafkaMessage) -> func.KafkaEvent:
    """The single ``func.KafkaEvent`` a cardinality-one Kafka function receives."""
    metadata = {
        "Key": Datum(_key(message.key), "string"),
        "Partition": Datum(message.partition, "int"),
        "Offset": Datum(message.offset, "int"),
        "Topic": Datum(message.topic, "string"),
        "Timestamp": Datum(_timestamp(message.timestamp_ms), "string"),
        "Headers": Datum(json.dumps(_headers(message)), "json"),
    }
    decoded = KafkaTriggerConverter.decode(Datum(message.value, "bytes"), trigger_metadata=metadata)
    if not isinstance(decoded, func.KafkaEvent):
        raise TypeError("the Kafka converter returned a batch for a single event")
    return decoded


@dataclass
class KafkaPhases:
    """Where a Kafka source's time went (seconds, summed over its batches): the benchmark's breakdown.

    ``fetch`` is the consumer call that returned messages and their conversion, ``build`` the trigger
    payload (``func.KafkaEvent`` objects), ``function`` the user function, ``output`` the output binding's
    produce and flush, ``commit`` the offset commit. ``first_fetch`` / ``last_commit`` are ``perf_counter``
    readings: from the start of the first fetch that returned messages to the end of the last commit.
    """

    batches: int = 0
    messages: int = 0
    fetch: float = 0.0
    build: float = 0.0
    function: float = 0.0
    function_cpu: float = 0.0  # the batch thread's CPU time in the function and its output binding
    output: float = 0.0
    commit: float = 0.0
    idle: float = 0.0  # consumer calls that returned nothing, between two batches
    lag: float = 0.0  # the lag reports' broker requests, between two batches
    first_fetch: float | None = None
    last_commit: float | None = None


@dataclass(frozen=True)
class KafkaBatching:
    max_batch_size: int = 64
    max_wait_seconds: float = 1.0


class KafkaSource:
    """Consumes one Kafka-triggered function's topic in its own thread."""

    def __init__(
        self,
        fn: HostedFunction,
        settings: Settings,
        batching: KafkaBatching,
        invoker: Invoker,
        stats: HostStats,
        stop: threading.Event,
        *,
        start_from: str = "earliest",
    ) -> None:
        self.fn = fn
        self.settings = settings
        self.batching = batching
        self.invoker = invoker
        self.stats = stats
        self.stop = stop
        self.start_from = start_from
        self.outputs = OutputProducer(fn, settings)
        self.phases = KafkaPhases()
        # Empty fetches and lag reports since the last batch: counted once another batch follows them.
        self._pending_idle = self._pending_lag = 0.0
        # (topic, partition) -> the offset this source last committed there (the lag report's base).
        self._committed: dict[tuple[str, int], int] = {}
        self._assigned: list[Any] = []
        self._lag_error: str | None = None  # why the last lag request failed (None: it succeeded)

    def consumer_config(self) -> dict[str, Any]:
        conf = client_config(self.settings, self.fn.connection)
        brokers = str(conf["bootstrap.servers"])

        def on_error(error: Any) -> None:
            # librdkafka retries by itself; until the source is connected, its last reason is what to show.
            sentence = describe_unreachable("kafka", brokers, str(error), variable="KAFKA_BROKERS")
            self.stats.unreached(self.fn.name, sentence)

        conf.update(
            {
                "error_cb": on_error,
                "group.id": self.fn.consumer_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.start_from,
                "max.poll.interval.ms": 900_000,
                "session.timeout.ms": 10_000,  # a crashed dev host frees its partitions within 10 s
            }
        )
        return conf

    def run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(self.consumer_config())

        def on_assign(c: Any, partitions: list[Any]) -> None:
            self._assigned = list(partitions)
            log.info("%s: assigned %s", self.fn.name, [p.partition for p in partitions])

        def on_revoke(c: Any, partitions: list[Any]) -> None:
            self._assigned = []
            self._committed.clear()  # the next owner commits from here on

        consumer.subscribe([self.fn.source], on_assign=on_assign, on_revoke=on_revoke)
        last_lag = last_probe = 0.0
        try:
            while not self.stop.is_set():
                if not self.stats.is_connected(self.fn.name) and time.monotonic() - last_probe > 1.0:
                    last_probe = time.monotonic()
                    self._probe(consumer)
                fetch_started = time.perf_counter()
                raw = consumer.consume(
                    num_messages=self.batching.max_batch_size, timeout=self.batching.max_wait_seconds
                )
                messages = self._messages(raw)
                if messages:
                    if self.phases.first_fetch is None:
                        self.phases.first_fetch = fetch_started
                    self.phases.fetch += time.perf_counter() - fetch_started
                    if not self._process(consumer, messages):
                        break
                elif self.phases.first_fetch is not None:
                    self._pending_idle += time.perf_counter() - fetch_started
                if time.monotonic() - last_lag > 2.0:
                    lag_started = time.perf_counter()
                    self._update_lag(consumer)
                    last_lag = time.monotonic()
                    if self.phases.first_fetch is not None:
                        self._pending_lag += time.perf_counter() - lag_started
        finally:
            consumer.close()
            self.outputs.close()

    def _probe(self, consumer: Any) -> None:
        """Mark the source connected once a broker answers (the topic may not exist yet: that is no outage)."""
        from confluent_kafka import KafkaException

        try:
            metadata = consumer.list_topics(timeout=1.0)
        except KafkaException:
            return  # error_cb has the reason; asked again in a second
        self.stats.connected(self.fn.name)
        if self.fn.source not in metadata.topics:
            log.warning("%s: topic %s does not exist yet; waiting for it", self.fn.name, self.fn.source)

    def _messages(self, raw: list[Any]) -> list[KafkaMessage]:
        from confluent_kafka import KafkaError

        messages: list[KafkaMessage] = []
        for m in raw:
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise TransientError(str(error), store="kafka")
                log.warning("%s: consumer error: %s", self.fn.name, error)
                self.stats.error(f"{self.fn.name}: {error}")
                continue
            headers = tuple((k, v) for k, v in (m.headers() or []))
            _, ts = m.timestamp()
            messages.append(
                KafkaMessage(
                    m.topic(), m.partition(), m.offset(), m.key(), m.value() or b"", int(ts), headers
                )
            )
        return messages

    def _process(self, consumer: Any, messages: list[KafkaMessage]) -> bool:
        from confluent_kafka import KafkaException, TopicPartition

        self.stats.touch()
        phases = self.phases
        started = time.perf_counter()
        data_type = str(self.fn.trigger.get("dataType", "binary"))
        if self.fn.many:
            units: list[tuple[list[KafkaMessage], Any]] = [
                (messages, to_kafka_events(messages, data_type=data_type))
            ]
        else:
            units = [([m], to_kafka_event(m)) for m in messages]
        phases.build += time.perf_counter() - started
        output_before = self.outputs.seconds
        for unit, payload in units:
            label = ",".join(sorted({str(m.partition) for m in unit}))
            started, cpu_started = time.perf_counter(), time.thread_time()
            outcome = self.invoker.invoke(self.fn, payload, deliver_outputs=self.outputs.deliver, label=label)
            invoked = time.perf_counter()
            phases.function_cpu += time.thread_time() - cpu_started
            if outcome.status == "abandoned":
                self.stats.batch_done(self.fn.name, label, len(unit), "", "abandoned")
                return False
            ends: dict[tuple[str, int], int] = {}
            for m in unit:
                ends[(m.topic, m.partition)] = max(ends.get((m.topic, m.partition), -1), m.offset + 1)
            try:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False
                )
                self._committed.update(ends)
            except KafkaException as exc:
                # Lost the partition (rebalance): the new owner replays from the last commit.
                log.warning("%s: commit failed, batch will be delivered again: %s", self.fn.name, exc)
            phases.last_commit = time.perf_counter()
            phases.commit += phases.last_commit - invoked
            phases.function += invoked - started
            phases.batches += 1
            phases.messages += len(unit)
            for (_, partition), end in ends.items():
                count = sum(1 for m in unit if m.partition == partition)
                self.stats.batch_done(self.fn.name, str(partition), count, str(end), outcome.status)
        output = self.outputs.seconds - output_before
        phases.function -= output
        phases.output += output
        phases.idle += self._pending_idle
        phases.lag += self._pending_lag
        self._pending_idle = self._pending_lag = 0.0
        return True

    def _update_lag(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException

        assigned = list(self._assigned)
        if not assigned:
            return
        try:
            # Between batches, without a broker round trip when the answer is known: the offsets this source
            # committed itself, and the high watermarks of the last fetch responses (librdkafka's cache).
            # Only a partition not committed here yet, or not fetched yet, is asked of the broker.
            unknown = [tp for tp in assigned if (tp.topic, tp.partition) not in self._committed]
            asked = consumer.committed(unknown, timeout=2) if unknown else []
            committed = {(tp.topic, tp.partition): tp.offset for tp in asked}
            committed.update(self._committed)
            lags: list[tuple[str, int]] = []
            for tp in assigned:
                position = committed.get((tp.topic, tp.partition), -1)
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0 or (position < 0 and low < 0):
                    low, high = consumer.get_watermark_offsets(tp, timeout=2, cached=False)
                lags.append((str(tp.partition), max(0, high - (position if position >= 0 else low))))
        except KafkaException as exc:
            # Only the broker requests are expected to fail here (timeout, broker down, rebalance): the lag is
            # a report, and consuming and committing go on, so the failure is logged with its reason and the
            # lag asked again on the next tick (the previous values stay; the source is not marked drained).
            # Anything else is a bug and propagates. One warning per streak of failures, not one per tick.
            reason = str(exc.args[0] if exc.args else exc)
            if self._lag_error is None:
                log.warning("%s: lag unavailable (asked again every 2 s): %s", self.fn.name, reason)
            self._lag_error = reason
            return
        for partition, lag in lags:
            self.stats.set_lag(self.fn.name, partition, lag)
        self.stats.ready(self.fn.name)
        if self._lag_error is not None:
            log.info("%s: lag available again", self.fn.name)
            self._lag_error = None
