"""What the dev host produces for a Kafka output binding's value: KafkaEventData envelopes and plain values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.devhost.outputs import OutputMessage, _general, output_messages


def test_an_envelope_gives_topic_key_value_and_headers() -> None:
    envelope = {
        "Offset": -1,
        "Partition": -1,
        "Topic": "enriched",
        "Timestamp": "2026-12-06T09:27:37.808Z",
        "Key": "8b5230ed",
        "Value": '{"id":1}',
        "Headers": [{"Key": "event_id", "Value": "1"}, {"Key": "event_version", "Value": "42"}],
    }
    assert output_messages([json.dumps(envelope)]) == [
        OutputMessage("enriched", b"8b5230ed", b'{"id":1}', (("event_id", b"1"), ("event_version", b"42")))
    ]


def test_values_that_are_not_envelopes_are_the_message_as_is() -> None:
    got = output_messages(["plain text", b"\xff\x00binary", '{"no_value": 1}', " {not json", "[1, 2]"])
    assert got == [
        OutputMessage(None, None, b"plain text"),
        OutputMessage(None, None, b"\xff\x00binary"),
        OutputMessage(None, None, b'{"no_value": 1}'),
        OutputMessage(None, None, b" {not json"),
        OutputMessage(None, None, b"[1, 2]"),
    ]
    assert output_messages(None) == []
    assert output_messages("one") == [OutputMessage(None, None, b"one")]


def test_lower_case_names_and_non_string_values_are_read_as_the_extension_reads_them() -> None:
    got = output_messages(
        [
            '{"value": "v", "key": "k", "topic": "t"}',
            '{"Value": {"a": 1}, "Key": 7}',
            '{"Value": null, "Headers": [{"Key": 1, "Value": null}, "junk"]}',
            '{"Value": NaN}',
            '{"Value": "x", "topic": "lower", "Topic": ""}',
        ]
    )
    assert got == [
        OutputMessage("t", b"k", b"v"),
        OutputMessage(None, b"7", b'{"a": 1}'),
        OutputMessage(None, None, b"", (("1", b"null"),)),
        OutputMessage(None, None, b"NaN"),
        OutputMessage("lower", None, b"x"),
    ]


_names = st.sampled_from(["Value", "value", "Key", "key", "Topic", "topic", "Headers", "Offset", "x"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_header = st.dictionaries(st.sampled_from(["Key", "Value", "key"]), _json, max_size=2)
_envelope = st.dictionaries(
    _names, _json | st.lists(_header | _json, max_size=3) | st.text(max_size=8), max_size=6
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_envelope, min_size=1, max_size=5))
def test_the_typed_fast_path_reads_every_envelope_as_the_general_path(
    envelopes: list[dict[str, Any]],
) -> None:
    texts = [json.dumps(e) for e in envelopes]
    assert output_messages(texts) == [_general(t.encode()) for t in texts]
