"""What the dev host produces for a Kafka output binding's value, as the Kafka extension reads it.

The extension (``KafkaProducerAsyncCollector``) takes a string as a KafkaEventData envelope only when it is a
JSON object with all of ``Offset``, ``Partition``, ``Topic``, ``Timestamp``, ``Value`` and ``Headers``
(names as written, case-sensitive); anything else is sent as the value, unchanged. A function tested with the
dev host must see in Azure what it saw here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.devhost.outputs import ENVELOPE_FIELDS, OutputMessage, _general, output_messages

STAMP = "2026-12-06T09:27:37.808Z"
STAMP_MS = 1796549257808


def envelope(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Offset": -1,
        "Partition": -1,
        "Topic": "ignored",
        "Timestamp": STAMP,
        "Key": "8b5230ed",
        "Value": '{"id":1}',
        "Headers": [{"Key": "event_id", "Value": "1"}, {"Key": "event_version", "Value": "42"}],
    }
    return {**base, **fields}


def test_a_full_envelope_gives_key_value_headers_partition_and_time() -> None:
    assert output_messages([json.dumps(envelope()), json.dumps(envelope(Key=None, Partition=2))]) == [
        OutputMessage(b"8b5230ed", b'{"id":1}', (("event_id", b"1"), ("event_version", b"42")), -1, STAMP_MS),
        OutputMessage(None, b'{"id":1}', (("event_id", b"1"), ("event_version", b"42")), 2, STAMP_MS),
    ]


@pytest.mark.parametrize("missing", ENVELOPE_FIELDS)
def test_an_object_missing_any_envelope_field_is_sent_as_it_is(missing: str) -> None:
    text = json.dumps({k: v for k, v in envelope().items() if k != missing})
    assert output_messages([text]) == [OutputMessage(None, text.encode())]


def test_lower_case_names_are_not_an_envelope() -> None:
    text = json.dumps({k.lower(): v for k, v in envelope().items()})
    assert output_messages([text]) == [OutputMessage(None, text.encode())]


def test_values_that_are_not_envelopes_are_the_message_as_is() -> None:
    got = output_messages(["plain text", b"\xff\x00binary", '{"Key": "k", "Value": "v"}', " {", "[1, 2]"])
    assert got == [
        OutputMessage(None, b"plain text"),
        OutputMessage(None, b"\xff\x00binary"),
        OutputMessage(None, b'{"Key": "k", "Value": "v"}'),
        OutputMessage(None, b" {"),
        OutputMessage(None, b"[1, 2]"),
    ]
    assert output_messages(None) == []
    assert output_messages("one") == [OutputMessage(None, b"one")]


def test_values_the_extension_cannot_cast_send_the_whole_string() -> None:
    for odd in (
        envelope(Value={"a": 1}),
        envelope(Key=["k"]),
        envelope(Headers=[{"Key": "h", "Value": None}]),
        envelope(Headers=["junk"]),
        envelope(Headers=True),
        envelope(Partition="two"),
        envelope(Timestamp="yesterday"),
    ):
        text = json.dumps(odd)
        assert output_messages([text]) == [OutputMessage(None, text.encode())], odd


def test_scalars_are_cast_to_text_as_the_extension_does() -> None:
    (got,) = output_messages([json.dumps(envelope(Value=5, Key=True, Partition="3"))])
    assert (got.value, got.key, got.partition) == (b"5", b"True", 3)


def test_a_null_value_fails_the_invocation() -> None:
    with pytest.raises(ValueError, match="null Value"):
        output_messages([json.dumps(envelope(Value=None))])


_scalar = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6) | st.just(STAMP)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5,
)
_header = st.dictionaries(st.sampled_from(["Key", "Value", "key"]), _json, max_size=3)
_field_values = _json | st.lists(_header | _json, max_size=3)
_envelopes = st.dictionaries(
    st.sampled_from([*ENVELOPE_FIELDS, "Key", "value", "x"]), _field_values, max_size=8
).map(lambda d: {**envelope(), **d}) | st.dictionaries(
    st.sampled_from([*ENVELOPE_FIELDS, "Key"]), _field_values
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_envelopes, min_size=1, max_size=4))
def test_the_typed_fast_path_reads_every_string_as_the_general_path(envelopes: list[dict[str, Any]]) -> None:
    texts = [json.dumps(e) for e in envelopes]
    expected: list[OutputMessage | type[ValueError]] = []
    for t in texts:
        try:
            expected.append(_general(t.encode()))
        except ValueError:
            expected.append(ValueError)
    if ValueError in expected:
        with pytest.raises(ValueError):
            output_messages(texts)
    else:
        assert output_messages(texts) == expected


@pytest.mark.integration
def test_a_refused_message_fails_the_invocation_and_delivered_ones_are_on_the_topic(
    kafka_brokers: str,
) -> None:
    """Only failed deliveries are reported back (no callback per message), and a failure still fails the
    output binding, so the batch is retried before any commit."""
    import uuid

    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    from shared.devhost.functions import OutputBinding, TriggerKind
    from shared.devhost.outputs import OutputProducer
    from shared.errors import TransientError
    from shared.settings import load_settings
    from tests.devhost.support import hosted

    topic = f"outputs-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_brokers})
    small = NewTopic(topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "2000"})
    admin.create_topics([small])[topic].result(timeout=30)
    fn = hosted(
        TriggerKind.KAFKA,
        lambda events, out: None,
        source="in",
        outputs=(OutputBinding("out", "kafka", topic, kafka_brokers),),
    )
    producer = OutputProducer(fn, load_settings({"KAFKA_BROKERS": kafka_brokers}))
    try:
        producer.deliver({"out": [json.dumps(envelope(Value=f"v{i}")) for i in range(20)]})
        with pytest.raises(TransientError, match=r"output binding out: \d+ undelivered"):
            producer.deliver({"out": ["small", "x" * 5000]})
    finally:
        producer.close()
    consumer = Consumer(
        {"bootstrap.servers": kafka_brokers, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: list[bytes | None] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            got += [m.value() for m in consumer.consume(50, timeout=1.0) if m.error() is None]
        got += [m.value() for m in consumer.consume(50, timeout=1.0) if m.error() is None]
    finally:
        consumer.close()
        admin.delete_topics([topic])
    assert got[:20] == [f"v{i}".encode() for i in range(20)]
    assert b"x" * 5000 not in got
