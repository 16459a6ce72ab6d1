"""The batch decoder and envelope writer of the enrichment hot path give exactly what the per-record
reference paths give (``decode_engagement`` and ``EnrichedBatch.add``, which encode msgspec structs)."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast, get_args

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.engagement.batch import RawRecord, TriggerBatch
from shared.engagement.decode_columns import decode_clean, decode_engagements
from shared.engagement.decode_rows import decode_engagement, decode_engagement_rows
from shared.engagement.enrich_columns import EnrichedRows
from shared.engagement.enrich_rows import EnrichedBatch
from shared.engagement.records import (
    EVENT_TYPES,
    FIELD_NAMES,
    FIELDS,
    ContentInfo,
    DecodedEngagements,
    EngagementRow,
    Field,
    Kind,
)
from shared.engagement.timestamps import iso_ms, iso_timestamp_ms
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


def _row(i: int, change: EngagementRow) -> EngagementRow:
    """What a decoded batch holds for record ``i``, from the record decoder."""
    return change._replace(position=i)


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
    assert decoded.rows == expected_rows
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
    by_id = {r.id: r for r in decoded.rows}
    assert by_id[9].content_id == CID[1]  # canonicalised
    assert by_id[10].user_id == UID
    assert by_id[12].event_ts == "2026-03-01T23:58:00.500Z"  # event_ts as published
    # a second pass reads the timestamps through the cache and must not change anything
    assert decode_engagements(trigger(VALUES)).rows == decoded.rows


def reference_batch(
    batch: TriggerBatch, decoded: DecodedEngagements, contents: dict[str, ContentInfo] | None = None
) -> EnrichedBatch:
    """The record-by-record enrichment of ``decoded``: what the column path must reproduce."""
    contents = CONTENT if contents is None else contents
    reference = EnrichedBatch("engagement_enriched")
    for r in decoded.rows:
        reference.add(
            r,
            content=contents.get(r.content_id),
            engagement_version_ms=r.version_ms,
            deleted=r.deleted,
            source_topic=batch.topics[r.position],
            source_partition=batch.partitions[r.position],
            source_offset=batch.offsets[r.position],
        )
    return reference


def test_envelopes_and_columns_match_the_struct_encoding() -> None:
    batch = trigger(VALUES)
    decoded = decode_engagements(batch)
    fast = EnrichedRows(decoded.columns, batch, CONTENT, "engagement_enriched")
    fast.write_envelopes()
    reference = reference_batch(batch, decoded)
    assert fast.envelopes == reference.envelopes
    assert fast.unknown == reference.unknown == sum(1 for r in decoded.rows if r.content_id not in CONTENT)
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
    assert decode_clean(batch) is not None  # the column path decodes this batch
    decoded = decode_engagements(batch)
    assert not decoded.dead and decoded.tombstones == 0
    expected = []
    for i, record in enumerate(batch.records()):
        change = decode_engagement(record)
        assert change is not None
        expected.append(_row(i, change))
    assert decoded.rows == expected
    assert [r.event_ts for r in decoded.rows] == [iso_ms(r.event_ts_ms) for r in decoded.rows]
    # any record the column checks do not pass sends the whole batch to the record-by-record path
    for odd in (
        row(50, __op="C"),
        row(52, event_ts=T0),
        row(53, user_id=UID.upper()),
    ):
        mixed = trigger([*CLEAN, json.dumps(odd).encode()])
        assert decode_clean(mixed) is None
        assert decode_engagements(mixed).rows[: len(CLEAN)] == decoded.rows


def test_debezium_timestamps_of_any_precision_take_the_column_path() -> None:
    """Debezium writes 0 to 9 fraction digits, as the value needs: a batch mixing them is still decoded by
    column, to the milliseconds (truncated) and canonical texts of the record path."""
    stamps = [
        "2026-03-01T23:58:00Z",
        "2026-03-01T23:58:00.6Z",
        "2026-03-01T23:58:00.65Z",
        "2026-03-01T23:58:00.650Z",
        "2026-03-01T23:58:00.6507Z",
        "2026-03-01T23:58:00.600717Z",
        "2026-03-01T23:58:00.999999999Z",
        "2031-07-15T08:09:10.011000001Z",
    ]
    batch = trigger([json.dumps(row(70 + i, event_ts=t)).encode() for i, t in enumerate(stamps)])
    clean = decode_clean(batch)
    assert clean is not None
    assert [r.event_ts for r in clean.rows] == [
        "2026-03-01T23:58:00.000Z",
        "2026-03-01T23:58:00.600Z",
        "2026-03-01T23:58:00.650Z",
        "2026-03-01T23:58:00.650Z",
        "2026-03-01T23:58:00.650Z",
        "2026-03-01T23:58:00.600Z",
        "2026-03-01T23:58:00.999Z",
        "2031-07-15T08:09:10.011Z",
    ]
    expected = [_row(i, cast(EngagementRow, decode_engagement(r))) for i, r in enumerate(batch.records())]
    assert clean.rows == expected
    # not UTC, an empty fraction, a non-ASCII digit: the record path decides
    for odd in ("2026-03-01T23:58:00.6+00:00", "2026-03-01T23:58:00.Z", "2026-03-01T23:58:00.650\u0661Z"):
        mixed = trigger(
            [
                *(json.dumps(row(70, event_ts=t)).encode() for t in stamps),
                json.dumps(row(80, event_ts=odd)).encode(),
            ]
        )
        assert decode_clean(mixed) is None


def test_debezium_deletes_rewritten_with_a_deleted_flag_take_the_column_path() -> None:
    """``delete.handling.mode=rewrite`` marks every row ``__deleted`` "true" or "false": a batch with deletes
    is still decoded by column, and a flag that says true makes the row a delete, as the record path does."""
    rows = [
        row(90, __op="c", __deleted="false"),
        row(91, __op="d", __deleted="true"),
        row(92, __op="u", __deleted="TRUE"),
        row(93, __op="r", __deleted=True),
        row(94, __op="u", __deleted="false"),
    ]
    batch = trigger([json.dumps(r).encode() for r in rows])
    clean = decode_clean(batch)
    assert clean is not None
    assert [r.op for r in clean.rows] == ["c", "d", "d", "d", "u"]
    expected = [_row(i, cast(EngagementRow, decode_engagement(r))) for i, r in enumerate(batch.records())]
    assert clean.rows == expected


def test_clean_envelopes_columns_and_scores_match_the_reference() -> None:
    batch = trigger(CLEAN)
    decoded = decode_engagements(batch)
    fast = EnrichedRows(decoded.columns, batch, CONTENT, "engagement_enriched")
    fast.write_envelopes()
    reference = reference_batch(batch, decoded)
    assert fast.envelopes == reference.envelopes
    assert fast.to_arrow().equals(reference.to_arrow())
    assert fast.dedup_token("enrich") == reference.dedup_token("enrich")
    assert fast.versions == reference.column("version")


# --------------------------------------------------------------------------------------- any batch

_MISSING = object()  # a field left out of the row
_POOL = [*CID, str(uuid.UUID(int=99, version=4))]


def _uuid_forms(pool: list[str]) -> st.SearchStrategy[Any]:
    canonical = st.sampled_from(pool)
    return st.one_of(
        canonical,
        canonical.map(str.upper),
        canonical.map(lambda u: u.replace("-", "")),
        st.sampled_from(["not-a-uuid", "", 123, None, _MISSING]),
    )


# Seconds 1970 .. 2100, often a few known ones: the decoders read those through their cache (see the test).
_KNOWN_SECONDS = (0, T0 // 1000, T0 // 1000 + 1)
_SECONDS = st.one_of(st.sampled_from(_KNOWN_SECONDS), st.integers(0, 4_102_444_800))
# Debezium's ZonedTimestamp: a UTC second and as many fraction digits as the value needs (none, 1 to 9).
_DEBEZIUM_TS = st.builds(
    lambda s, nanos: iso_ms(s * 1000)[:19] + (f".{nanos:09d}".rstrip("0").rstrip(".")) + "Z",
    _SECONDS,
    st.one_of(st.integers(0, 999_999_999), st.integers(0, 999).map(lambda ms: ms * 1_000_000)),
)
_EVENT_TS = st.one_of(
    _DEBEZIUM_TS,
    _SECONDS.map(lambda s: iso_ms(s * 1000)[:19] + ".Z"),
    _SECONDS.map(lambda s: iso_ms(s * 1000)[:19] + ".5000\u0661Z"),
    st.builds(
        lambda s, ms: iso_ms(s * 1000 + ms),
        st.sampled_from([T0 // 1000, T0 // 1000 + 1]),
        st.integers(0, 999),
    ),
    st.builds(lambda s, ms: iso_ms(s * 1000 + ms), _SECONDS, st.integers(0, 999)),
    _SECONDS.map(lambda s: iso_ms(s * 1000)[:19] + "Z"),
    _SECONDS.map(lambda s: iso_ms(s * 1000)[:19].replace("T", " ") + ".500+00:00"),
    st.integers(-(10**15), 10**16),
    st.sampled_from(
        ["1969-12-31T23:59:59.999Z", "yesterday", "", "2026-03-01T23:58:00.123z", None, _MISSING]
    ),
)


def _good(field: Field) -> st.SearchStrategy[Any]:
    """Good values of a record field by its kind (a field with no strategy of its own below)."""
    good: st.SearchStrategy[Any] = {
        Kind.NUMBER: st.integers(0, 2**31 - 1),
        Kind.UUID: st.sampled_from(_POOL),
        Kind.LABEL: st.sampled_from(get_args(field.wire) or ("",)),
        Kind.TEXT: st.text(max_size=8),
        Kind.TIMESTAMP: st.builds(lambda s, ms: iso_ms(s * 1000 + ms), _SECONDS, st.integers(0, 999)),
    }[field.kind]
    return st.one_of(good, st.sampled_from([None, _MISSING])) if field.optional else good


def _any(field: Field) -> st.SearchStrategy[Any]:
    """Good values of a record field by its kind and bad ones of every kind."""
    return st.one_of(_good(field), st.sampled_from(["?", 5, 1.5, -1, None, _MISSING, [], {}]))


# Every field of the record, good values and bad ones of every kind.
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **{f.name: _any(f) for f in FIELDS},
    "id": st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(["7", 1.5, None, _MISSING])),
    "content_id": _uuid_forms(_POOL),
    "user_id": _uuid_forms([UID, _POOL[0]]),
    "event_type": st.one_of(
        st.sampled_from(EVENT_TYPES), st.sampled_from(["share", "PLAY", 5, None, _MISSING])
    ),
    "event_ts": _EVENT_TS,
    "duration_ms": st.one_of(
        st.none(), st.integers(0, 2**31 - 1), st.sampled_from([-1, 2**31, "12", 1.5, _MISSING])
    ),
    "device": st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["ios", 5, _MISSING])),
    "__op": st.sampled_from(["c", "u", "r", "d", "C", "D", "x", "", 1, _MISSING]),
    "__deleted": st.sampled_from(["true", "false", "TRUE", True, False, None, 1, _MISSING]),
    "__source_ts_ms": st.one_of(st.integers(-(10**13), 10**13), st.sampled_from([None, "1", _MISSING])),
}
# The same fields with good values only: such batches go through the column path.
_CLEAN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **{f.name: _good(f) for f in FIELDS},
    "id": st.integers(-(2**63), 2**63 - 1),
    "content_id": st.sampled_from(_POOL),
    "user_id": st.sampled_from([UID, None, _MISSING]),
    "event_type": st.sampled_from(EVENT_TYPES),
    "event_ts": st.one_of(
        st.builds(lambda s, ms: iso_ms(s * 1000 + ms), _SECONDS, st.integers(0, 999)), _DEBEZIUM_TS
    ),
    "duration_ms": st.one_of(st.none(), st.integers(0, 2**31 - 1), st.just(_MISSING)),
    "device": st.one_of(st.none(), st.text(max_size=8), st.just(_MISSING)),
    "__op": st.sampled_from(["c", "u", "r", "d", _MISSING]),
    "__deleted": st.sampled_from(["false", False, None, "true", "TRUE", True, "yes", _MISSING, _MISSING]),
    "__source_ts_ms": st.one_of(
        st.integers(-(10**13), 10**13),
        st.sampled_from([None, _MISSING, 0, 2**63 - 1, -(2**63)]),
        st.integers(-(2**63), 2**63 - 1),
    ),
}


def _value(fields: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in fields.items() if v is not _MISSING}).encode()


_ANY_VALUE = st.one_of(
    st.fixed_dictionaries(_FIELD_VALUES).map(_value),
    st.sampled_from([None, b"{broken", b"[1]", b'"text"', b"{}", b""]),
    st.binary(max_size=12),
)
_CLEAN_VALUE = st.fixed_dictionaries(_CLEAN_VALUES).map(_value)
_CONTENT_INFO = st.builds(
    ContentInfo,
    id=st.just(""),
    title=st.text(max_size=8),
    version=st.one_of(
        st.integers(-(10**13), 10**13),
        st.sampled_from([-(2**63), -1, 0, 2**63 - 1]),
        st.integers(-(2**63), 2**63 - 1),
    ),
    content_type=st.one_of(st.none(), st.sampled_from(["podcast", "newsletter", "video"])),
    length_seconds=st.one_of(st.none(), st.integers(0, 10**6)),
)


@st.composite
def _one_odd(draw: st.DrawFn) -> bytes:
    """A good record with one field of any value (or left out)."""
    fields = draw(st.fixed_dictionaries(_CLEAN_VALUES))
    name = draw(st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(sorted(_FIELD_VALUES))))
    fields[name] = draw(_FIELD_VALUES[name])
    return _value(fields)


@st.composite
def _batches(draw: st.DrawFn) -> tuple[TriggerBatch, dict[str, ContentInfo]]:
    """Batches of good records (the column path), of good records and one odd one (the record path with
    its inline checks), or of any records."""
    mode = draw(st.sampled_from(["clean", "one odd", "any"]))
    values: list[bytes | None] = draw(st.lists(_ANY_VALUE if mode == "any" else _CLEAN_VALUE, max_size=25))
    if mode == "one odd":
        values.insert(draw(st.integers(0, len(values))), draw(_one_odd()))
    n = len(values)
    stamps = draw(
        st.lists(
            st.one_of(st.sampled_from(["2026-03-01T23:58:30.000Z", "", None]), st.integers(0, 10**13)),
            min_size=n,
            max_size=n,
        )
    )
    batch = TriggerBatch(
        values=[v or None for v in values],
        topics=["engagement_events.flat"] * n,
        partitions=draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)),
        offsets=list(range(n)),
        keys=[None] * n,
        timestamps=stamps,
    )
    known = draw(st.dictionaries(st.sampled_from(_POOL), _CONTENT_INFO, max_size=len(_POOL)))
    return batch, {cid: msgspec.structs.replace(info, id=cid) for cid, info in known.items()}


# Good records and one whose uuids are not canonical, at a time the per-second cache knows.
_ODD_UUIDS = trigger(
    [
        *CLEAN[:3],
        json.dumps(
            row(60, content_id=CID[1].upper(), user_id=UID.replace("-", ""), event_ts=iso_ms(T0))
        ).encode(),
    ]
)


@settings(max_examples=300, deadline=None)
@example((_ODD_UUIDS, CONTENT))
@given(_batches())
def test_both_paths_agree_on_any_batch(case: tuple[TriggerBatch, dict[str, ContentInfo]]) -> None:
    """Any batch, of any records good or bad: the batch decoder gives the record decoder's rows, dead letters
    and tombstone count, and the column enricher the row enricher's envelopes, ClickHouse rows (unknown
    content included) and token (the leaderboard reads the decoded rows, compared above)."""
    batch, contents = case
    for (
        second
    ) in _KNOWN_SECONDS:  # the per-second cache knows these (rows of such times take the inline path)
        assert iso_timestamp_ms(iso_ms(second * 1000)) == second * 1000
    expected_rows: list[EngagementRow] = []
    expected_dead: list[tuple[int, str, str]] = []
    tombstones = 0
    for i, record in enumerate(batch.records()):
        try:
            change = decode_engagement(record)
        except BadInputError as exc:
            expected_dead.append((record.offset, exc.kind, exc.reason))
            continue
        if change is None:
            tombstones += 1
        else:
            expected_rows.append(_row(i, change))
    decoded = decode_engagements(batch)
    assert decoded.rows == expected_rows
    assert [(d.record.offset, d.kind, d.reason) for d in decoded.dead] == expected_dead
    assert [d.record for d in decoded.dead] == [batch.record(offset) for offset, _, _ in expected_dead]
    assert decoded.tombstones == tombstones
    by_rows = decode_engagement_rows(batch)
    assert by_rows.rows == expected_rows
    assert [(d.record, d.kind, d.reason) for d in by_rows.dead] == [
        (d.record, d.kind, d.reason) for d in decoded.dead
    ]
    clean = decode_clean(batch)
    if clean is not None:
        assert clean.rows == expected_rows and not expected_dead and not tombstones

    fast = EnrichedRows(decoded.columns, batch, contents, "engagement_enriched")
    table = fast.to_arrow()
    fast.write_envelopes()
    reference = reference_batch(batch, decoded, contents)
    assert fast.envelopes == reference.envelopes
    assert table.equals(reference.to_arrow())
    assert fast.unknown == reference.unknown == sum(1 for r in expected_rows if r.content_id not in contents)
    assert table.column("content_known").to_pylist() == [r.content_id in contents for r in expected_rows]
    assert fast.dedup_token("enrich") == reference.dedup_token("enrich")
    assert fast.versions == reference.column("version")
    # the version, computed independently: engagement ms, then content ms, then known over unknown
    assert fast.versions == [
        r.version_ms * 2**65
        + ((contents[r.content_id].version + 2**63) * 2 + 1 if r.content_id in contents else 0)
        for r in expected_rows
    ]
    for envelope, r in zip(fast.envelopes, expected_rows, strict=True):
        value = json.loads(json.loads(envelope)["Value"])
        assert {k: value[k] for k in FIELD_NAMES} == {k: getattr(r, k) for k in FIELD_NAMES}
