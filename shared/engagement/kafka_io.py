"""Kafka adapter: trigger batches as the Python worker builds them, publishing of output envelopes, and
the one place where confluent-kafka exceptions are translated.

In Azure the Kafka extension does both ends: it hands the functions ``func.KafkaEvent`` batches and publishes
what they set on the output binding. The helpers here do the same outside the host, for the demo, the
benchmark, the tests and operators replaying records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.kafka import KafkaTriggerConverter

from shared.errors import StreamDuckError, TerminalError, TransientError

STORE = "kafka"


def translate_kafka_error(exc: BaseException) -> StreamDuckError:
    """The StreamDuck error for a confluent-kafka exception (retriable -> transient)."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(exc, StreamDuckError):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        if error.retriable() or error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            return TransientError(str(error), store=STORE, cause=exc)
        return TerminalError(f"kafka: {error}")
    if isinstance(exc, BufferError | OSError):
        return TransientError(f"{type(exc).__name__}: {exc}", store=STORE, cause=exc)
    return TerminalError(f"kafka: {type(exc).__name__}: {exc}")


@contextmanager
def kafka_errors() -> Iterator[None]:
    from confluent_kafka import KafkaException

    try:
        yield
    except (KafkaException, BufferError, OSError) as exc:
        raise translate_kafka_error(exc) from exc


def trigger_batch(
    *,
    values: Sequence[bytes | None],
    topics: Sequence[str],
    partitions: Sequence[int],
    offsets: Sequence[int],
    keys: Sequence[str | None],
    timestamps: Sequence[str],
) -> list[func.KafkaEvent]:
    """``func.KafkaEvent`` objects built by the library's own trigger converter from the data and metadata
    arrays the host sends for ``cardinality: many, dataType: binary`` (``KeyArray``, ``OffsetArray``, ...)."""
    n = len(values)
    if not all(len(seq) == n for seq in (topics, partitions, offsets, keys, timestamps)):
        raise ValueError("values and metadata arrays must have the same length")
    data = meta.Datum(SimpleNamespace(bytes=[v or b"" for v in values]), "collection_bytes")
    trigger_metadata = {
        "KeyArray": meta.Datum(json.dumps(list(keys)), "json"),
        "OffsetArray": meta.Datum(SimpleNamespace(sint64=list(offsets)), "collection_sint64"),
        "PartitionArray": meta.Datum(json.dumps(list(partitions)), "json"),
        "TopicArray": meta.Datum(SimpleNamespace(string=list(topics)), "collection_string"),
        "TimestampArray": meta.Datum(json.dumps(list(timestamps)), "json"),
        "HeadersArray": meta.Datum(json.dumps([[] for _ in range(n)]), "json"),
    }
    events = KafkaTriggerConverter.decode(data, trigger_metadata=trigger_metadata)
    return list(events) if isinstance(events, list) else [events]


def batch_from_messages(messages: Sequence[Any]) -> list[func.KafkaEvent]:
    """A trigger batch from consumed ``confluent_kafka.Message`` objects."""
    from datetime import UTC, datetime

    def ts(message: Any) -> str:
        _, millis = message.timestamp()
        return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat().replace("+00:00", "Z")

    return trigger_batch(
        values=[m.value() for m in messages],
        topics=[m.topic() for m in messages],
        partitions=[m.partition() for m in messages],
        offsets=[m.offset() for m in messages],
        keys=[m.key().decode("utf-8", "replace") if m.key() is not None else None for m in messages],
        timestamps=[ts(m) for m in messages],
    )


def produce_envelopes(producer: Any, envelopes: Sequence[str], *, timeout: float = 30.0) -> int:
    """Publish output-binding envelopes the way the Kafka extension does (key, value, headers); returns count.

    Raises :class:`TransientError` when delivery fails or does not finish within ``timeout``.
    """
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    with kafka_errors():
        for text in envelopes:
            envelope = json.loads(text)
            headers = [(h["Key"], str(h["Value"]).encode()) for h in envelope.get("Headers") or []]
            key = envelope.get("Key")
            producer.produce(
                envelope["Topic"],
                value=envelope["Value"].encode(),
                key=key.encode() if key is not None else None,
                headers=headers,
                on_delivery=delivered,
            )
            producer.poll(0)
        remaining = producer.flush(timeout)
    if remaining or failures:
        raise TransientError(
            f"{remaining} envelopes undelivered, {len(failures)} failed: {failures[:3]}", store=STORE
        )
    return len(envelopes)
