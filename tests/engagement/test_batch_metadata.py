"""Trigger batches that cannot be positioned are refused, never applied with unknown offsets.

Without offsets the Redis watermark cannot recognise a redelivery, so applying such a batch would count a
replay twice. The batches here are real ``func.KafkaEvent`` objects whose metadata is unreadable or missing.
"""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta

from shared.engagement.batch import BatchMetadataError, TriggerBatch, records_from_events
from shared.errors import TerminalError

from .support import T0_MS, Env, dumps, engagement_row, iso


class _UnreadableDatum:
    """A metadata entry whose value the worker cannot convert (as header parsing errors in some bindings)."""

    @property
    def value(self) -> Any:
        raise ValueError("malformed header bytes")


def _events(values: list[bytes], trigger_metadata: dict[str, Any] | None, **positions: Any) -> list[Any]:
    """Events as the binding leaves them in batch mode: body only (plus ``positions``), metadata shared."""
    return [
        func.KafkaEvent(
            body=value,
            key=None,
            offset=positions.get("offset", [None] * len(values))[i],
            partition=positions.get("partition", [None] * len(values))[i],
            topic=positions.get("topic", [None] * len(values))[i],
            timestamp=None,
            trigger_metadata=trigger_metadata,
        )
        for i, value in enumerate(values)
    ]


def _arrays(n: int, topic: str, **override: meta.Datum) -> dict[str, Any]:
    arrays: dict[str, Any] = {
        "KeyArray": meta.Datum(json.dumps([None] * n), "json"),
        "OffsetArray": meta.Datum(SimpleNamespace(sint64=list(range(n))), "collection_sint64"),
        "PartitionArray": meta.Datum(json.dumps([0] * n), "json"),
        "TopicArray": meta.Datum(SimpleNamespace(string=[topic] * n), "collection_string"),
        "TimestampArray": meta.Datum(json.dumps([iso(T0_MS)] * n), "json"),
    }
    arrays.update(override)
    return arrays


def _values(n: int) -> list[bytes]:
    cid = str(uuid.uuid4())
    return [dumps(engagement_row(i + 1, cid, ts_ms=T0_MS - 30_000)) for i in range(n)]


def test_complete_metadata_positions_every_record() -> None:
    events = _events(_values(3), _arrays(3, "engagement_events.flat"))
    batch = TriggerBatch.from_events(events)
    assert batch.offsets == [0, 1, 2]
    assert batch.partitions == [0, 0, 0]
    assert batch.topics == ["engagement_events.flat"] * 3
    assert batch.keys == [None, None, None]  # records without a key stay without one


def test_metadata_that_cannot_be_read_is_raised_not_hidden() -> None:
    events = _events(_values(2), {"OffsetArray": _UnreadableDatum()})
    with pytest.raises(BatchMetadataError) as info:
        TriggerBatch.from_events(events)
    assert isinstance(info.value, TerminalError)
    assert isinstance(info.value.__cause__, ValueError)
    assert "malformed header bytes" in str(info.value)
    with pytest.raises(BatchMetadataError):
        records_from_events(events)


@pytest.mark.parametrize(
    ("array", "datum"),
    [
        ("OffsetArray", meta.Datum("[0, 1", "json")),  # not JSON
        ("PartitionArray", meta.Datum('{"0": 0}', "json")),  # not an array
        ("OffsetArray", meta.Datum(json.dumps([0, 1, 2]), "json")),  # wrong length
        ("TopicArray", meta.Datum(SimpleNamespace(int64=[1, 2]), "collection_int64")),  # unknown form
    ],
)
def test_unreadable_metadata_arrays_are_refused(array: str, datum: meta.Datum) -> None:
    events = _events(_values(2), _arrays(2, "engagement_events.flat", **{array: datum}))
    with pytest.raises(BatchMetadataError, match=array):
        TriggerBatch.from_events(events)


def test_records_without_a_position_are_refused() -> None:
    # no metadata at all, and the events carry no offsets
    with pytest.raises(BatchMetadataError, match="no offset"):
        TriggerBatch.from_events(_events(_values(2), None, topic=["t", "t"], partition=[0, 0]))
    # metadata without the offset array
    arrays = _arrays(2, "t")
    del arrays["OffsetArray"]
    with pytest.raises(BatchMetadataError, match="2 of 2 records have no offset"):
        TriggerBatch.from_events(_events(_values(2), arrays))
    # positions on the events themselves need no metadata
    batch = TriggerBatch.from_events(
        _events(_values(2), None, topic=["t", "t"], partition=[0, 0], offset=[7, 8])
    )
    assert batch.offsets == [7, 8]


def test_enrich_function_applies_nothing_of_a_batch_it_cannot_position(env: Env) -> None:
    s = env.settings
    env.create_topics(s.topic_content, s.topic_engage, s.topic_out)
    env.pipeline.warehouse.ensure_schema()
    values = _values(3)
    broken = _events(values, {**_arrays(3, s.topic_engage), "OffsetArray": _UnreadableDatum()})
    for _ in range(2):  # the host's retry fails the same way: a replay can never be counted twice
        with pytest.raises(BatchMetadataError):
            env.call("engagement_enrich", broken)
    lb = env.pipeline.leaderboard
    assert lb.watermark(s.topic_engage, 0) is None
    assert lb.top(60, 5, T0_MS + 60_000) == []
    assert env.pipeline.warehouse.query("SELECT count() FROM {db}.engagement_enriched")[0][0] == 0
    # the same records, positioned, are applied once however often they are delivered
    good = _events(values, _arrays(3, s.topic_engage))
    env.call("engagement_enrich", good)
    env.call("engagement_enrich", good)
    assert lb.watermark(s.topic_engage, 0) == 2
    assert lb.top(60, 5, T0_MS + 60_000) == [(json.loads(values[0])["content_id"], 90.0)]
