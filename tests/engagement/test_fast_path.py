"""The batch decoder and envelope writer of the enrichment hot path give exactly what the per-record
reference paths give (``decode_engagement`` and ``EnrichedBatch.add``, which encode msgspec structs)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared.engagement.cdc import (
    ContentInfo,
    DecodedEngagements,
    EngagementChange,
    RawRecord,
    TriggerBatch,
    _decode_clean,
    decode_engagement,
    decode_engagements,
    iso_ms,
)
from shared.engagement.enrich import EnrichedBatch, EnrichedRows
from shared.errors import BadInputError

T0 = 1_772_409_480_000  # 2026-03-01 23:58:00 UTC
CID = [str(uuid.UUID(int=i * 7919 + 1, version=4)) for i in range(5)]
UID = str(uuid.UUID(int=123456789, version=4))


def row(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": i,
        "content_id": CID[i % len(CID)],
        "user_id": UID,
        "event_type": "play",
        "event_ts": "2026-03-01T23:58:00.123Z",
        "duration_ms": 12_345 + i,
        "device": "ios",
        "__op": "c",
        "__table": "engagement_events",
        "__source_ts_ms": T0 + i,
    }
    base.update(overrides)
    return base


VALUES: list[bytes | None] = [
    json.dumps(r).encode() if r is not None else None
    for r in [
        row(1),
        row(2, duration_ms=None, event_type="click"),
        row(3, user_id=None, device=None),
        row(4, device='we"ird\\dev\nice \u00e9 \U0001f600 \x01'),
        row(5, __op="d"),
        row(6, __op="u"),
        row(7, __op="R"),
        row(8, __deleted="true"),
        row(9, content_id=CID[1].upper()),
        row(10, user_id=UID.replace("-", "")),
        row(11, event_ts="2026-03-01T23:59:59Z"),
        row(12, event_ts="2026-03-01 23:58:00.500+00:00"),
        row(13, event_ts=T0 + 13),
        row(14, __source_ts_ms=None),
        row(15, duration_ms=10_000_000),
        row(16, event_ts="1969-12-31T23:59:59.000Z"),
        row(17, content_id="not-a-uuid"),
        row(18, event_type="share"),
        row(19, duration_ms=-1),
        None,
        row(20, event_ts="2026-03-02T00:00:00.000Z"),
        row(21, event_ts="yesterday"),
        row(22, content_id=CID[4]),
    ]
] + [b"{broken", b"[1]", b'{"id": 1}']

CONTENT = {
    CID[0]: ContentInfo(
        id=CID[0], title='Say "hi" \\ now\n\u00e9', version=T0 - 1, content_type="video", length_seconds=600
    ),
    CID[1]: ContentInfo(id=CID[1], title="Newsletter", version=T0 + 50, content_type="newsletter"),
    CID[2]: ContentInfo(id=CID[2], title="Short", version=T0, content_type="podcast", length_seconds=7),
    CID[3]: ContentInfo(id=CID[3], title="Zero", version=0, content_type=None, length_seconds=0),
}


def trigger(values: list[bytes | None]) -> TriggerBatch:
    n = len(values)
    return TriggerBatch(
        values=values,
        topics=["engagement_events.flat"] * n,
        partitions=[3] * n,
        offsets=list(range(100, 100 + n)),
        keys=[None] * n,
        timestamps=["2026-03-01T23:58:30.000Z"] * n,
    )


def _row(i: int, change: EngagementChange) -> tuple[Any, ...]:
    """What a decoded batch holds for record ``i`` (without the event time text), from the record decoder."""
    return (
        i,
        change.op,
        change.id,
        change.content_id,
        change.user_id,
        change.event_type,
        change.event_ts_ms,
        change.duration_ms,
        change.device,
        change.version_ms,
    )


def test_batch_decoder_matches_the_record_decoder() -> None:
    batch = trigger(VALUES)
    decoded = decode_engagements(batch)
    expected_rows, expected_dead, tombstones = [], [], 0
    for i, record in enumerate(batch.records()):
        try:
            change = decode_engagement(record)
        except BadInputError as exc:
            expected_dead.append((record.offset, exc.kind))
            continue
        if change is None:
            tombstones += 1
            continue
        expected_rows.append(_row(i, change))
    assert [(r[:7] + r[8:]) for r in decoded.rows] == expected_rows
    assert [(d.record.offset, d.kind) for d in decoded.dead] == expected_dead
    assert decoded.tombstones == tombstones == 1
    assert [kind for _, kind in expected_dead] == [
        "invalid_value",  # 1969
        "invalid_value",  # bad uuid
        "unknown_event_type",
        "invalid_value",  # negative duration
        "wrong_type",  # "yesterday"
        "invalid_json",
        "not_an_object",
        "missing_field",
    ]
    by_id = {r[2]: r for r in decoded.rows}
    assert by_id[9][3] == CID[1]  # canonicalised
    assert by_id[10][4] == UID
    assert by_id[12][7] == "2026-03-01T23:58:00.500Z"  # event_ts as published
    # a second pass reads the timestamps through the cache and must not change anything
    assert decode_engagements(trigger(VALUES)).rows == decoded.rows


def reference_batch(batch: TriggerBatch, decoded: DecodedEngagements) -> EnrichedBatch:
    """The record-by-record enrichment of ``decoded``: what the column path must reproduce."""
    reference = EnrichedBatch("engagement_enriched")
    for i, op, id_, cid, uid, event_type, ts_ms, _, duration, device, version_ms in decoded.rows:
        reference.add(
            id=id_,
            content_id=cid,
            user_id=uid,
            event_type=event_type,
            event_ts_ms=ts_ms,
            duration_ms=duration,
            device=device,
            content=CONTENT.get(cid),
            engagement_version_ms=version_ms,
            deleted=op == "d",
            source_topic=batch.topics[i],
            source_partition=batch.partitions[i],
            source_offset=batch.offsets[i],
        )
    return reference


def test_envelopes_and_columns_match_the_struct_encoding() -> None:
    batch = trigger(VALUES)
    decoded = decode_engagements(batch)
    fast = EnrichedRows(decoded.columns, batch, CONTENT, "engagement_enriched")
    fast.write_envelopes()
    reference = reference_batch(batch, decoded)
    assert fast.envelopes == reference.envelopes
    assert fast.unknown == reference.unknown == sum(1 for r in decoded.rows if r[3] not in CONTENT)
    assert fast.to_arrow().equals(reference.to_arrow())
    assert fast.dedup_token("enrich") == reference.dedup_token("enrich")
    values = [json.loads(json.loads(e)["Value"]) for e in fast.envelopes]
    assert {v["engagement_pct"] for v in values if v["id"] == 15} == {"100.00"}  # clamped
    assert next(v for v in values if v["id"] == 4)["device"] == 'we"ird\\dev\nice \u00e9 \U0001f600 \x01'


def test_records_round_trip_through_the_trigger_batch() -> None:
    records = [
        RawRecord(topic="t", partition=0, offset=5, key="k", value=b"{}", timestamp_ms=T0),
        RawRecord(topic="t", partition=1, offset=-1, key=None, value=None, timestamp_ms=None),
    ]
    assert TriggerBatch.from_records(records).records() == records


CLEAN: list[bytes | None] = [
    json.dumps(r).encode()
    for r in [
        row(31),
        row(32, duration_ms=None, event_type="click"),
        row(33, user_id=None, device=None),
        row(34, device='we"ird\\dev\nice \u00e9 \U0001f600 \x01'),
        row(35, __op="d"),
        row(36, __op="u"),
        row(37, __deleted="false"),
        row(38, __source_ts_ms=None),
        row(39, duration_ms=10_000_000, content_id=CID[2]),
        row(40, event_ts="2026-03-02T00:00:00.000Z", __op="r"),
        row(41, content_id=CID[4], duration_ms=4),
        row(42, content_id=CID[3], __op="d", duration_ms=777),
        row(43, event_ts="2031-07-15T08:09:10.011Z"),
    ]
]


def test_clean_batches_are_decoded_by_column_as_the_record_decoder_does() -> None:
    batch = trigger(CLEAN)
    assert _decode_clean(batch) is not None  # the column path decodes this batch
    decoded = decode_engagements(batch)
    assert not decoded.dead and decoded.tombstones == 0
    expected = []
    for i, record in enumerate(batch.records()):
        change = decode_engagement(record)
        assert change is not None
        expected.append(_row(i, change))
    assert [(r[:7] + r[8:]) for r in decoded.rows] == expected
    assert [r[7] for r in decoded.rows] == [iso_ms(r[6]) for r in decoded.rows]
    # any record the column checks do not pass sends the whole batch to the record-by-record path
    for odd in (
        row(50, __op="C"),
        row(51, __deleted="TRUE"),
        row(52, event_ts=T0),
        row(53, user_id=UID.upper()),
    ):
        mixed = trigger([*CLEAN, json.dumps(odd).encode()])
        assert _decode_clean(mixed) is None
        assert decode_engagements(mixed).rows[: len(CLEAN)] == decoded.rows


def test_clean_envelopes_columns_and_scores_match_the_reference() -> None:
    batch = trigger(CLEAN)
    decoded = decode_engagements(batch)
    fast = EnrichedRows(decoded.columns, batch, CONTENT, "engagement_enriched")
    fast.write_envelopes()
    reference = reference_batch(batch, decoded)
    expected_totals: dict[tuple[int, str], int] = {}
    for _, op, _, cid, _, _, ts_ms, _, duration, _, _ in decoded.rows:
        if duration is not None and op != "u":
            key = (ts_ms // 60_000, cid)
            centis = (duration + 5) // 10
            expected_totals[key] = expected_totals.get(key, 0) + (-centis if op == "d" else centis)
    assert fast.envelopes == reference.envelopes
    assert fast.to_arrow().equals(reference.to_arrow())
    assert fast.dedup_token("enrich") == reference.dedup_token("enrich")
    assert fast.versions == reference.column("version")
    totals = fast.score_totals().to_pylist()
    assert {(t["minute"], t["member"]): t["centis"] for t in totals} == {
        k: v for k, v in expected_totals.items() if v
    }
    assert len(totals) == len({k for k, v in expected_totals.items() if v})
    summed: dict[tuple[int, str], int] = {}
    for _, minute, member, centis in fast.scores():
        summed[(minute, member)] = summed.get((minute, member), 0) + centis
    assert {k: v for k, v in summed.items() if v} == {k: v for k, v in expected_totals.items() if v}
