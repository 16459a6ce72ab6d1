"""Kafka trigger source: confluent-kafka consumer, ``func.KafkaEvent`` batches, offsets stored after the function.

Mirrors the Kafka extension (``KafkaListener`` and ``FunctionExecutorBase``). A subscriber thread consumes
the binding's topic in its consumer group and cuts batches of up to ``maxBatchSize`` messages collected for
at most ``subscriberIntervalInSeconds``; it hands them to an executor thread through a bounded channel of
``executorChannelCapacity`` batches (host.json ``extensions.kafka``, defaults 64, 1 s and 1), so the next
batch is fetched while the function runs. The executor calls the function, publishes its Kafka outputs and
waits for their acknowledgements (the extension does not wait: see ``shared.devhost.outputs``), and only then
**stores** the batch's offsets (also after the retries of a failing batch are exhausted, like the extension's
``commitOnFailure``); the consumer commits what was stored every ``autoCommitIntervalMs`` (default 200 ms),
on a rebalance and on shutdown. These are the extension's own settings (``EnableAutoCommit`` on,
``EnableAutoOffsetStore`` off, ``StoreOffset`` after the function):
https://learn.microsoft.com/azure/azure-functions/functions-bindings-kafka#hostjson-settings

So a commit never covers a message whose function has not returned. A graceful stop finishes the batch in
flight, stores and commits it; a batch abandoned on shutdown is not stored and is delivered again. A crash
(even ``kill -9``) replays the batch in flight plus those finished in the last auto-commit interval; the
sinks are idempotent, so the replay changes nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import azure.functions as func
from azure.functions.kafka import KafkaTriggerConverter
from azure.functions.meta import Datum

from shared.devhost.functions import HostedFunction
from shared.devhost.outputs import OutputProducer
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.engagement.timestamps import iso_ms  # the extension's UTC text with milliseconds
from shared.errors import TransientError, describe_unreachable
from shared.kafkaconfig import client_config
from shared.settings import Settings

log = logging.getLogger("streamduck.devhost")

# The longest single consumer call while a batch is being collected: finished batches' offsets are stored
# between calls, so at most this much later than their function returned.
_SLICE = 0.05
# How many recent batches the per-batch timings keep (the benchmark's medians).
_RECENT = 10_000


class KafkaMessage(NamedTuple):
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
        "TimestampArray": Datum(json.dumps([iso_ms(m.timestamp_ms) for m in messages]), "json"),
        "HeadersArray": Datum(json.dumps([_headers(m) if m.headers else [] for m in messages]), "json"),
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
        "Timestamp": Datum(iso_ms(message.timestamp_ms), "string"),
        "Headers": Datum(json.dumps(_headers(message)), "json"),
    }
    decoded = KafkaTriggerConverter.decode(Datum(message.value, "bytes"), trigger_metadata=metadata)
    if not isinstance(decoded, func.KafkaEvent):
        raise TypeError("the Kafka converter returned a batch for a single event")
    return decoded


@dataclass
class KafkaPhases:
    """Where a Kafka source's time went (seconds, summed over its batches): the benchmark's breakdown.

    On the subscriber thread: ``fetch`` is the consumer call that returned messages and their conversion,
    ``build`` the trigger payload (``func.KafkaEvent`` objects), ``channel_full`` the wait for room in the
    executor's channel. On the executor thread: ``function`` is the user function, ``output`` the output
    binding's produce and flush, ``commit`` storing the offsets, ``starved`` the wait for the next batch.
    The two threads overlap, so the phases add up to more than the elapsed time. ``first_fetch`` /
    ``last_commit`` are ``perf_counter`` readings: from the start of the first fetch that returned messages
    to the end of the last offset store.
    """

    batches: int = 0
    messages: int = 0
    fetch: float = 0.0
    build: float = 0.0
    channel_full: float = 0.0
    function: float = 0.0
    function_cpu: float = 0.0  # the executor thread's CPU time in the function and its output binding
    output: float = 0.0
    output_flush: float = 0.0  # of ``output``, the wait for the broker's acknowledgements
    commit: float = 0.0
    starved: float = 0.0
    idle: float = 0.0  # consumer calls that returned nothing, between two batches
    lag: float = 0.0  # the lag reports' broker requests, between two batches
    first_fetch: float | None = None
    last_commit: float | None = None
    # Per batch (a unit of a cardinality-one function counts as one): function and output binding seconds,
    # of the last batches only (a dev host may run for days).
    function_each: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))
    output_each: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))


@dataclass(frozen=True)
class KafkaBatching:
    """host.json ``extensions.kafka``: the settings the dev host honours, with the extension's defaults."""

    max_batch_size: int = 64
    max_wait_seconds: float = 1.0
    executor_channel_capacity: int = 1
    auto_commit_interval_ms: int = 200

    @classmethod
    def from_host_json(cls, section: Mapping[str, Any], *, max_batch_size: int) -> KafkaBatching:
        """The extension's settings from host.json (names are case-insensitive there, as in the host)."""
        lowered = {str(k).lower(): v for k, v in section.items()}
        return cls(
            max_batch_size=max_batch_size,
            max_wait_seconds=float(lowered.get("subscriberintervalinseconds", 1)),
            executor_channel_capacity=max(1, int(lowered.get("executorchannelcapacity", 1))),
            auto_commit_interval_ms=int(lowered.get("autocommitintervalms", 200)),
        )


_Ends = dict[tuple[str, int], int]  # (topic, partition) -> the next offset to read there


@dataclass
class KafkaBatch:
    """One cut of the subscriber: the payloads the function is called with, each with its messages."""

    units: list[tuple[list[KafkaMessage], Any]]
    partitions: frozenset[tuple[str, int]] = field(default_factory=frozenset)


class _Channel:
    """The bounded channel between subscriber and executor (the extension's ``ExecutorChannelCapacity``)."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[KafkaBatch] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._finished: list[_Ends] = []  # offsets the executor is done with, not stored yet

    def put(self, batch: KafkaBatch, stop: Callable[[], bool], store: Callable[[list[_Ends]], None]) -> bool:
        """Wait for room, then queue ``batch``; False (not queued) once closed or ``stop()``. While it waits,
        the offsets of the batches the executor finishes are handed to ``store`` (the subscriber's thread)."""
        while True:
            with self._cond:
                while (
                    len(self._items) >= self._capacity
                    and not self._closed
                    and not stop()
                    and not self._finished
                ):
                    self._cond.wait(0.1)
                finished, self._finished = self._finished, []
                room, ended = len(self._items) < self._capacity, self._closed or stop()
                if room and not ended:
                    self._items.append(batch)
                    self._cond.notify_all()
            if finished:
                store(finished)
            if ended:
                return False
            if room:
                return True

    def finish(self, ends: _Ends) -> None:
        """The executor ran a batch: ``ends`` (the next offset per partition) may be stored."""
        with self._cond:
            self._finished.append(ends)
            self._cond.notify_all()

    def take_finished(self) -> list[_Ends]:
        with self._cond:
            finished, self._finished = self._finished, []
            return finished

    def get(self) -> KafkaBatch | None:
        """The next batch, marked in flight until :meth:`done`; None once the channel is closed and empty."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            batch = self._items.popleft()
            self._busy = True
            self._cond.notify_all()
            return batch

    def done(self) -> None:
        """The batch from the last :meth:`get` has finished (its offsets are stored, or it was given up)."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no batch is in flight; False when ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def discard(self, partitions: set[tuple[str, int]]) -> int:
        """Drop the queued batches that hold any of ``partitions`` (revoked: the new owner reads them)."""
        with self._cond:
            kept = [b for b in self._items if not (b.partitions & partitions)]
            dropped = len(self._items) - len(kept)
            self._items = deque(kept)
            self._cond.notify_all()
            return dropped

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class KafkaSource:
    """Consumes one Kafka-triggered function's topic: a subscriber thread and an executor thread."""

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
        # (topic, partition) -> the offset this source last stored there (the lag report's base).
        self._stored: dict[tuple[str, int], int] = {}
        self._assigned: list[Any] = []
        self._lag_error: str | None = None  # why the last lag request failed (None: it succeeded)
        self._channel = _Channel(batching.executor_channel_capacity)
        self._halted = threading.Event()  # the executor ended: a batch was abandoned, or a bug
        self._executor_error: BaseException | None = None

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
                # The extension's ConsumerConfig: offsets stored by hand after the function, committed
                # by the client every AutoCommitIntervalMs, on a rebalance and on close.
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.commit.interval.ms": self.batching.auto_commit_interval_ms,
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
            self._revoke(c, partitions)

        consumer.subscribe([self.fn.source], on_assign=on_assign, on_revoke=on_revoke)
        # Every consumer call stays on this thread: the client serializes calls from several threads, so an
        # offset store from the executor would wait behind this thread's fetch. The executor hands the
        # offsets of each finished batch over, and this thread stores them between fetches.
        executor = threading.Thread(target=self._execute, name=f"executor-{self.fn.name}", daemon=True)
        executor.start()
        try:
            self._subscribe(consumer)
        except BaseException:
            # The host stops when a source fails: say so now, so that a batch the executor keeps retrying is
            # abandoned (not stored) and the join below returns.
            self.stop.set()
            raise
        finally:
            self._channel.close()
            executor.join()  # the batch in flight finishes (a failing one is abandoned on shutdown)
            try:
                self._store(consumer, self._channel.take_finished())
                consumer.close()  # commits the stored offsets
            finally:
                self.outputs.close()
        if self._executor_error is not None:
            raise self._executor_error

    def _subscribe(self, consumer: Any) -> None:
        """The subscriber: fetch, cut batches, hand them to the executor until stopped or halted."""
        last_lag = last_probe = 0.0
        halted = self._halted.is_set

        def store(finished: list[_Ends]) -> None:
            self._store(consumer, finished)

        while not self.stop.is_set() and not halted():
            if not self.stats.is_connected(self.fn.name) and time.monotonic() - last_probe > 1.0:
                last_probe = time.monotonic()
                self._probe(consumer)
            fetch_started = time.perf_counter()
            messages = self._fetch(consumer)
            if messages:
                if self.phases.first_fetch is None:
                    self.phases.first_fetch = fetch_started
                built = time.perf_counter()
                self.phases.fetch += built - fetch_started
                batch = self._build(messages)
                queued = time.perf_counter()
                self.phases.build += queued - built
                if not self._channel.put(batch, lambda: self.stop.is_set() or halted(), store):
                    break  # shutting down: the batch was not run, nothing stored, it is delivered again
                self.phases.channel_full += time.perf_counter() - queued
            elif self.phases.first_fetch is not None:
                self._pending_idle += time.perf_counter() - fetch_started
            if time.monotonic() - last_lag > 2.0:
                lag_started = time.perf_counter()
                self._update_lag(consumer)
                last_lag = time.monotonic()
                if self.phases.first_fetch is not None:
                    self._pending_lag += time.perf_counter() - lag_started

    def _fetch(self, consumer: Any) -> list[KafkaMessage]:
        """Up to ``maxBatchSize`` messages collected for at most ``subscriberIntervalInSeconds``, as the
        extension cuts a batch; between short consumer calls, the offsets of finished batches are stored."""
        size = self.batching.max_batch_size
        deadline = time.monotonic() + self.batching.max_wait_seconds
        messages: list[KafkaMessage] = []
        while True:
            self._store(consumer, self._channel.take_finished())
            remaining = deadline - time.monotonic()
            raw = consumer.consume(
                num_messages=size - len(messages), timeout=max(0.0, min(remaining, _SLICE))
            )
            messages.extend(self._messages(raw))
            if len(messages) >= size or remaining <= _SLICE or self.stop.is_set():
                return messages

    def _store(self, consumer: Any, finished: list[_Ends]) -> None:
        """Store the offsets of batches whose function returned (the client commits them)."""
        from confluent_kafka import KafkaException, TopicPartition

        if not finished:
            return
        started = time.perf_counter()
        ends: _Ends = {}
        for batch_ends in finished:
            for tp, end in batch_ends.items():
                ends[tp] = max(ends.get(tp, -1), end)
        try:
            consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()])
            self._stored.update(ends)
        except KafkaException as exc:
            # The partition was revoked meanwhile: its new owner replays from the last commit.
            log.warning("%s: offsets not stored, the batch will be delivered again: %s", self.fn.name, exc)
        self.phases.last_commit = time.perf_counter()
        self.phases.commit += self.phases.last_commit - started

    def _revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """A rebalance takes ``partitions``: drop their queued batches, let the one in flight finish (up to
        30 s), store and commit, so the new owner replays nothing that finished here."""
        from confluent_kafka import KafkaError, KafkaException

        revoked = {(p.topic, p.partition) for p in partitions}
        dropped = self._channel.discard(revoked)
        if not self._channel.wait_idle(30):
            log.warning("%s: the batch in flight did not finish before the rebalance", self.fn.name)
        self._store(consumer, self._channel.take_finished())
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("%s: commit on rebalance failed, the new owner replays: %s", self.fn.name, exc)
        self._assigned = []
        self._stored.clear()  # the next owner commits from here on
        log.info(
            "%s: revoked %s (%d queued batches left to the new owner)", self.fn.name, sorted(revoked), dropped
        )

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
        append = messages.append
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
            headers = m.headers()
            append(
                KafkaMessage(
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    m.key(),
                    m.value() or b"",
                    m.timestamp()[1],
                    tuple(headers) if headers else (),
                )
            )
        return messages

    def _build(self, messages: list[KafkaMessage]) -> KafkaBatch:
        data_type = str(self.fn.trigger.get("dataType", "binary"))
        if self.fn.many:
            units: list[tuple[list[KafkaMessage], Any]] = [
                (messages, to_kafka_events(messages, data_type=data_type))
            ]
        else:
            units = [([m], to_kafka_event(m)) for m in messages]
        return KafkaBatch(units, frozenset((m.topic, m.partition) for m in messages))

    def _execute(self) -> None:
        """The executor: run each batch and publish its outputs; then its offsets may be stored."""
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                batch = self._channel.get()
                if batch is None:
                    return
                try:
                    if self.stop.is_set():
                        return  # not started: nothing stored, delivered again
                    if self.phases.batches:  # not the wait for the group join before the first batch
                        self.phases.starved += time.perf_counter() - started
                    if not self._run_batch(batch):
                        self._halted.set()
                        return
                finally:
                    self._channel.done()
        except BaseException as exc:  # noqa: BLE001 - handed to the source's thread, which re-raises it
            self._executor_error = exc
            self._halted.set()

    def _run_batch(self, batch: KafkaBatch) -> bool:
        self.stats.touch()
        phases = self.phases
        output_before, flush_before = self.outputs.seconds, self.outputs.flush_seconds
        for unit, payload in batch.units:
            label = ",".join(sorted({str(m.partition) for m in unit}))
            started, cpu_started = time.perf_counter(), time.thread_time()
            unit_output = self.outputs.seconds
            outcome = self.invoker.invoke(self.fn, payload, deliver_outputs=self.outputs.deliver, label=label)
            took, unit_output = time.perf_counter() - started, self.outputs.seconds - unit_output
            phases.function += took
            phases.function_each.append(took - unit_output)
            phases.output_each.append(unit_output)
            phases.function_cpu += time.thread_time() - cpu_started
            if outcome.status == "abandoned":
                self.stats.batch_done(self.fn.name, label, len(unit), "", "abandoned")
                return False
            ends: _Ends = {}
            counts: dict[tuple[str, int], int] = {}
            for m in unit:
                tp = (m.topic, m.partition)
                ends[tp] = max(ends.get(tp, -1), m.offset + 1)
                counts[tp] = counts.get(tp, 0) + 1
            self._channel.finish(ends)
            phases.batches += 1
            phases.messages += len(unit)
            for tp, end in ends.items():
                self.stats.batch_done(self.fn.name, str(tp[1]), counts[tp], str(end), outcome.status)
        output = self.outputs.seconds - output_before
        phases.function -= output
        phases.output += output
        phases.output_flush += self.outputs.flush_seconds - flush_before
        phases.idle += self._pending_idle
        phases.lag += self._pending_lag
        self._pending_idle = self._pending_lag = 0.0
        return True

    def _topic_missing(self, consumer: Any) -> bool:
        """Whether the broker says the topic does not exist (a consumer's metadata request creates none)."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            topic = consumer.list_topics(self.fn.source, timeout=2).topics.get(self.fn.source)
        except KafkaException:
            return False  # no answer: not known to be missing; asked again on the next tick
        return topic is None or (
            topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        )

    def _update_lag(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException

        assigned = list(self._assigned)
        if not assigned:
            if self._topic_missing(consumer):
                self.stats.ready(self.fn.name)  # nothing to read: drained (``--exit-when-idle`` may stop)
            return
        stored = dict(self._stored)  # the executor thread adds to it
        try:
            # Between batches, without a broker round trip when the answer is known: the offsets this source
            # stored itself, and the high watermarks of the last fetch responses (librdkafka's cache).
            # Only a partition not stored here yet, or not fetched yet, is asked of the broker.
            unknown = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
            asked = consumer.committed(unknown, timeout=2) if unknown else []
            committed = {(tp.topic, tp.partition): tp.offset for tp in asked}
            committed.update(stored)
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
