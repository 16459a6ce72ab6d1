"""Kafka output bindings: what a function set on ``func.Out`` is produced after it returns.

As the Kafka extension does (``KafkaProducerAsyncCollector``), a string that is a JSON object with every field
of :data:`ENVELOPE_FIELDS` is a KafkaEventData envelope: its ``Value``, optional ``Key``, ``Headers``,
``Partition`` and ``Timestamp`` make the message, which goes to the binding's topic; any other string (a
JSON object missing one of them included), and any bytes, is the message value as is. Every message is
acknowledged before the invocation counts as succeeded, so an output failure fails the invocation (and is
retried) before any checkpoint or commit. This is stricter than the extension: since 3.7.0 it produces without
waiting for the broker and only logs a failed delivery (``KafkaProducerEntity``, ``KafkaProducer.Produce``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec

from shared.devhost.functions import HostedFunction
from shared.errors import TransientError
from shared.settings import Settings


class OutputMessage(NamedTuple):
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int = -1  # -1: the partitioner chooses
    timestamp_ms: int = 0  # 0: the time it is produced


# The fields a JSON string must all have to be read as a KafkaEventData envelope, as the extension checks
# them (KafkaProducerAsyncCollector: case-sensitive); ``Key`` is optional. Anything else is the value as is.
ENVELOPE_FIELDS = ("Offset", "Partition", "Topic", "Timestamp", "Value", "Headers")

# Untyped, for the general path: msgspec's decoder is about twice as fast as json.loads on ~1 KB objects.
_decode = msgspec.json.Decoder().decode


class _Header(msgspec.Struct):
    Key: str
    Value: str


class _Envelope(msgspec.Struct):
    """An envelope as functions usually write it: strings, a number partition, string headers."""

    Offset: Any
    Partition: int
    Topic: Any
    Timestamp: str
    Value: str
    Headers: list[_Header]
    Key: str | None = None


# Typed: no dict per envelope. What it does not take is read again by the general path, with the same result.
_decode_envelope = msgspec.json.Decoder(_Envelope).decode


class _NotAnEnvelope(Exception):
    """One of the extension's casts would fail: the whole string is the value."""


def _message(item: Any) -> OutputMessage:
    if not isinstance(item, str):
        return OutputMessage(None, bytes(item))
    raw = item.encode("utf-8")
    if raw[:1] != b"{":
        return OutputMessage(None, raw)
    try:
        e = _decode_envelope(raw)
    except msgspec.DecodeError:  # ValidationError included
        return _general(raw)
    try:
        return OutputMessage(
            None if e.Key is None else e.Key.encode("utf-8"),
            e.Value.encode("utf-8"),
            tuple((h.Key, h.Value.encode("utf-8")) for h in e.Headers),
            e.Partition,
            _timestamp_ms(e.Timestamp),
        )
    except _NotAnEnvelope:
        return OutputMessage(None, raw)


def _general(raw: bytes) -> OutputMessage:
    """Any string: an envelope when it is a JSON object with every :data:`ENVELOPE_FIELDS` whose values the
    extension can cast (``(string)`` Value, Key and header fields, ``(int)`` Partition, ``(DateTime)``
    Timestamp, an array of objects as Headers); otherwise the string itself is the value."""
    try:
        parsed = _decode(raw)
    except msgspec.DecodeError:
        try:  # what the stricter decoder refuses and Python's accepts (NaN, Infinity)
            parsed = json.loads(raw)
        except ValueError:
            return OutputMessage(None, raw)
    if not isinstance(parsed, dict) or not all(name in parsed for name in ENVELOPE_FIELDS):
        return OutputMessage(None, raw)
    try:
        if parsed["Value"] is None:
            raise ValueError("a Kafka output envelope has a null Value (the extension refuses to send it)")
        headers = parsed["Headers"]
        if not isinstance(headers, list) or not all(isinstance(h, dict) for h in headers):
            raise _NotAnEnvelope
        key = parsed.get("Key")
        return OutputMessage(
            None if key is None else _string(key).encode("utf-8"),
            _string(parsed["Value"]).encode("utf-8"),
            tuple((_string(h.get("Key")), _string(h.get("Value")).encode("utf-8")) for h in headers),
            _int(parsed["Partition"]),
            _timestamp_ms(parsed["Timestamp"]),
        )
    except _NotAnEnvelope:
        return OutputMessage(None, raw)


def _string(value: Any) -> str:
    """Json.NET's ``(string)`` cast of a JSON value: text of a scalar; an object, array or null fails."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise _NotAnEnvelope


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _NotAnEnvelope
    try:
        return int(value)
    except ValueError:
        raise _NotAnEnvelope from None


def _timestamp_ms(value: Any) -> int:
    """The envelope's ``Timestamp`` as the message's time; 0 (the time it is produced) before 1970."""
    if not isinstance(value, str):
        raise _NotAnEnvelope
    return _text_ms(value)


@lru_cache(maxsize=1024)  # a batch's envelopes share a few timestamps
def _text_ms(value: str) -> int:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _NotAnEnvelope from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ms = (parsed - _EPOCH) // timedelta(milliseconds=1)
    return ms if ms > 0 else 0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def output_messages(value: Any) -> list[OutputMessage]:
    """The messages for what a function set on a Kafka output binding."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [_message(item) for item in items]


class OutputProducer:
    """Produces a function's Kafka outputs and waits for every acknowledgement."""

    def __init__(self, fn: HostedFunction, settings: Settings) -> None:
        self.fn = fn
        self.settings = settings
        self._producer: Any = None
        self.seconds = 0.0  # time spent producing and flushing (the dev host's breakdown)
        self.flush_seconds = 0.0  # of which waiting for the acknowledgements

    def deliver(self, outputs: Mapping[str, Any]) -> None:
        started = time.perf_counter()
        try:
            self._deliver(outputs)
        finally:
            self.seconds += time.perf_counter() - started

    def _deliver(self, outputs: Mapping[str, Any]) -> None:
        from confluent_kafka import Producer

        from shared.kafkaconfig import client_config

        failures: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        for binding in self.fn.outputs:
            if binding.type != "kafka" or binding.topic is None:
                continue
            messages = output_messages(outputs.get(binding.name))
            if not messages:
                continue
            if self._producer is None:
                conf = client_config(self.settings, binding.brokers)
                # Reports for failed messages only: no Python callback per delivered message.
                conf.update({"enable.idempotence": True, "linger.ms": 5, "delivery.report.only.error": True})
                self._producer = Producer(conf)
            for m in messages:
                while True:
                    try:
                        self._producer.produce(
                            binding.topic,
                            value=m.value,
                            key=m.key,
                            partition=m.partition,
                            timestamp=m.timestamp_ms,
                            headers=list(m.headers) or None,
                            on_delivery=delivered,
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.1)
            flushed = time.perf_counter()
            remaining = self._producer.flush(30)
            self.flush_seconds += time.perf_counter() - flushed
            if remaining or failures:
                # Drop what is still queued: the retry produces the whole output again (consumers dedupe).
                self._producer.purge()
                self._producer.flush(0)
                raise TransientError(
                    f"output binding {binding.name}: {remaining} undelivered, errors: {failures[:3]}",
                    store="kafka",
                )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
