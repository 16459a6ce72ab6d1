"""Kafka output bindings: what a function set on ``func.Out`` is produced after it returns.

As with the Kafka extension, a string that is a JSON object with a ``Value`` field is a KafkaEventData
envelope (``Key``, ``Headers`` and ``Topic`` optional); any other string or bytes is the message value.
Every message is acknowledged before the invocation counts as succeeded, so an output failure fails the
invocation (and is retried) before any checkpoint or commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from shared.devhost.functions import HostedFunction
from shared.errors import TransientError
from shared.settings import Settings


class OutputMessage(NamedTuple):
    topic: str | None
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


# The envelopes' decoder: msgspec's is about twice as fast as json.loads on these ~1 KB objects.
_decode = msgspec.json.Decoder().decode


class _Header(msgspec.Struct):
    Key: str
    Value: Any = ""


class _Envelope(msgspec.Struct):
    """A KafkaEventData envelope as functions usually write it (other fields, such as ``Offset``, ignored).

    The lower-case names are here only to notice them: such an envelope takes the general path."""

    Value: Any
    Key: Any = None
    Headers: list[_Header] | None = None
    Topic: Any = None
    value: Any = msgspec.UNSET
    key: Any = msgspec.UNSET
    topic: Any = msgspec.UNSET


# Typed: no dict per envelope. An envelope this does not take (lower-case names, a non-string header key,
# NaN) is read again by the general path below, so the result is the same either way.
_decode_envelope = msgspec.json.Decoder(_Envelope).decode


def _text(value: Any) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode("utf-8")


def _message(item: Any) -> OutputMessage:
    raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
    if raw[:1] != b"{":
        return OutputMessage(None, None, raw)
    try:
        envelope = _decode_envelope(raw)
    except msgspec.DecodeError:  # ValidationError included
        return _general(raw)
    if not (envelope.value is envelope.key is envelope.topic is msgspec.UNSET):
        return _general(raw)
    value, key, topic = envelope.Value, envelope.Key, envelope.Topic
    return OutputMessage(
        str(topic) if topic else None,
        None if key is None else _text(key),
        b"" if value is None else _text(value),
        tuple((h.Key, _text(h.Value)) for h in envelope.Headers) if envelope.Headers else (),
    )


def _general(raw: bytes) -> OutputMessage:
    parsed: Any = None
    try:
        parsed = _decode(raw)
    except msgspec.DecodeError:
        try:  # what the stricter decoder refuses and Python's accepts (NaN, Infinity)
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    if not (isinstance(parsed, dict) and ("Value" in parsed or "value" in parsed)):
        return OutputMessage(None, None, raw)
    inner = parsed.get("Value", parsed.get("value"))
    key = parsed.get("Key", parsed.get("key"))
    listed = parsed.get("Headers")
    headers = tuple(
        (str(h.get("Key")), _text(h.get("Value", "")))
        for h in (listed if isinstance(listed, list) else ())
        if isinstance(h, dict)
    )
    topic = parsed.get("Topic") or parsed.get("topic")
    return OutputMessage(
        str(topic) if topic else None,
        None if key is None else _text(key),
        b"" if inner is None else _text(inner),
        headers,
    )


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
                conf.update({"enable.idempotence": True, "linger.ms": 5})
                self._producer = Producer(conf)
            for m in messages:
                while True:
                    try:
                        self._producer.produce(
                            m.topic or binding.topic,
                            value=m.value,
                            key=m.key,
                            headers=list(m.headers) or None,
                            on_delivery=delivered,
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.1)
            remaining = self._producer.flush(30)
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
