"""Record-by-record decoding: one Debezium record becomes exactly one of a row (:class:`EngagementRow`), a
content change (:class:`ContentChange`), a dead letter (bad input, parked with its raw value, position and
reason) or, for engagement tombstones, nothing but a count (the ``d`` record before it already carried the
delete).

:func:`check_row` is the definition of a decoded engagement row; :func:`decode_engagement_rows` decodes a batch
with it, building the rows that pass fast checks inline (same result). The column path
(:mod:`~shared.engagement.decode_columns`) gives the same rows for the batches it takes.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, cast

import msgspec

from shared.engagement.batch import RawRecord, TriggerBatch
from shared.engagement.debezium import (
    CANONICAL_UUID,
    CONTENT_DECODER,
    ENGAGEMENT_DECODER,
    KIND_INVALID_JSON,
    KIND_INVALID_KEY,
    KIND_INVALID_VALUE,
    KIND_MISSING_FIELD,
    KIND_WRONG_TYPE,
    OPS,
    all_canonical_uuids,
    canonical_uuid,
    classify,
    decode_value,
    parse_content_key,
    parse_op,
)
from shared.engagement.records import (
    EVENT_TS,
    FIELD_NAMES,
    FIELDS,
    ROW_FIELDS,
    ContentChange,
    ContentInfo,
    DeadLetter,
    DecodedEngagements,
    EngagementColumns,
    EngagementRow,
    Kind,
)
from shared.engagement.timestamps import (
    MAX_TS_MS,
    MILLIS,
    SECOND_MS,
    iso_ms,
    iso_timestamp_ms,
    parse_timestamp_ms,
)
from shared.errors import BadInputError


def _generated(name: str, source: str) -> Any:
    """A function compiled from ``source`` (as ``namedtuple`` and ``dataclasses`` build theirs): attribute
    reads written out field by field, which the interpreter specialises, unlike ``getattr``/``attrgetter``."""
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<engagement {name}>", "exec"), namespace)  # noqa: S102 (source built from FIELDS)
    return namespace[name]


# The record's fields of a decoded wire struct, as a tuple in :class:`EngagementRow` order.
record_fields: Any = attrgetter(*FIELD_NAMES)
# ``row_values(position, op, event_ts_ms, version_ms, wire)``: the values of the row whose record fields are
# the wire's as is, as a plain tuple in :class:`EngagementRow` order.
row_values: Any = _generated(
    "row_values",
    "def row_values(position, op, event_ts_ms, version_ms, w):\n"
    "    return (position, op, event_ts_ms, version_ms, "
    + "".join(f"w.{name}, " for name in FIELD_NAMES)
    + ")\n",
)
# ``field_columns(structs)``: ``{name: [s.<name> for s in structs]}`` for every record field.
field_columns: Any = _generated(
    "field_columns",
    "def field_columns(structs):\n    return {"
    + "".join(f"{name!r}: [s.{name} for s in structs], " for name in FIELD_NAMES)
    + "}\n",
)
# Fields checked as uuids, as (name, whether it may be null); and where they sit in a row.
UUID_FIELDS: tuple[tuple[str, bool], ...] = tuple((f.name, f.optional) for f in FIELDS if f.kind is Kind.UUID)
_UUID_POSITIONS: tuple[int, ...] = tuple(ROW_FIELDS.index(name) for name, _ in UUID_FIELDS)
_FAST_OPS = frozenset(OPS)


def check_row(batch: TriggerBatch, i: int, wire: Any) -> EngagementRow:
    """The checked row of record ``i`` from its decoded wire struct. Raises :class:`BadInputError`."""
    values = dict(zip(FIELD_NAMES, record_fields(wire), strict=True))
    for name, _ in UUID_FIELDS:
        if values[name] is not None:
            values[name] = canonical_uuid(values[name], name)
    op = parse_op(wire.op, wire.deleted)
    raw_ts = values[EVENT_TS]
    event_ts_ms = iso_timestamp_ms(raw_ts) if isinstance(raw_ts, str) else parse_timestamp_ms(raw_ts)
    if event_ts_ms is None:
        raise BadInputError(f"event_ts {raw_ts!r} is not an ISO 8601 timestamp", kind=KIND_WRONG_TYPE)
    if not 0 <= event_ts_ms < MAX_TS_MS:
        raise BadInputError(f"event_ts {raw_ts!r} is out of range", kind=KIND_INVALID_VALUE)
    values[EVENT_TS] = iso_ms(event_ts_ms)
    version = wire.source_ts_ms if wire.source_ts_ms is not None else (batch.timestamp_ms(i) or event_ts_ms)
    return EngagementRow(
        position=i, op=op, event_ts_ms=event_ts_ms, version_ms=max(int(version), 0), **values
    )


def decode_engagement(record: RawRecord) -> EngagementRow | None:
    """One ``engagement_events.flat`` record; ``None`` for a tombstone. Raises :class:`BadInputError`."""
    if record.value is None:
        return None
    wire = decode_value(ENGAGEMENT_DECODER, record.value)
    return check_row(TriggerBatch.from_records([record]), 0, wire)


def decode_engagement_rows(batch: TriggerBatch) -> DecodedEngagements:
    """Every record of a batch, one by one; bad ones become dead letters, tombstones are counted.

    Rows whose ``__op`` is one of ``c u r d`` as is, with no ``__deleted`` flag and an ``event_ts`` text of a
    second already seen in canonical form, are built inline; their uuids are then checked for the batch at
    once. Any other row, and any row with a uuid not canonical, goes through :func:`check_row`, so the result
    equals :func:`decode_engagement`'s record by record.
    """
    rows: list[tuple[Any, ...]] = []  # in EngagementRow order
    dead: list[tuple[int, DeadLetter]] = []
    slow: list[tuple[int, Any]] = []
    tombstones = 0
    decode = ENGAGEMENT_DECODER.decode
    seconds = SECOND_MS
    millis_of = MILLIS
    fast_ops = _FAST_OPS
    row_of = row_values
    for i, value in enumerate(batch.values):
        if value is None:
            tombstones += 1
            continue
        try:
            wire = decode(value)
        except msgspec.ValidationError as exc:
            error = classify(exc)
            dead.append((i, DeadLetter(record=batch.record(i), reason=error.reason, kind=error.kind)))
            continue
        except msgspec.DecodeError as exc:
            reason = f"invalid JSON: {exc}"
            dead.append((i, DeadLetter(record=batch.record(i), reason=reason, kind=KIND_INVALID_JSON)))
            continue
        ts = wire.event_ts
        op = wire.op
        if type(ts) is str and len(ts) == 24 and wire.deleted is None and op in fast_ops:
            base = seconds.get(ts[:19])
            millis = millis_of.get(ts[20:23])
            if base is not None and millis is not None and ts[23] == "Z" and ts[19] == ".":
                version = wire.source_ts_ms
                if version is None:
                    version = batch.timestamp_ms(i) or base + millis
                rows.append(row_of(i, op, base + millis, version if version > 0 else 0, wire))
                continue
        slow.append((i, wire))
    if rows:
        ids: list[Any] = []
        for (_, optional), at in zip(UUID_FIELDS, _UUID_POSITIONS, strict=True):
            ids.extend([r[at] for r in rows if r[at] is not None] if optional else [r[at] for r in rows])
        if not all_canonical_uuids(ids):
            checked = CANONICAL_UUID
            passed = [
                r for r in rows if all(r[at] is None or checked(cast(str, r[at])) for at in _UUID_POSITIONS)
            ]
            if len(passed) < len(rows):
                kept = {r[0] for r in passed}
                slow.extend((r[0], decode(cast(bytes, batch.values[r[0]]))) for r in rows if r[0] not in kept)
                rows = passed
    if slow:
        for i, wire in slow:
            try:
                rows.append(check_row(batch, i, wire))
            except BadInputError as exc:
                dead.append((i, DeadLetter(record=batch.record(i), reason=exc.reason, kind=exc.kind)))
        rows.sort(key=_first)
        dead.sort(key=_first)
    return DecodedEngagements(
        columns=EngagementColumns.from_rows(rows), dead=[d for _, d in dead], tombstones=tombstones
    )


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def decode_content(record: RawRecord) -> ContentChange:
    """One ``content.flat`` record (upsert, ``d`` or tombstone). Raises :class:`BadInputError`."""
    if record.value is None:
        content_id = parse_content_key(record.key)
        if content_id is None:
            raise BadInputError(
                f'tombstone without a usable key ({record.key!r}); expected {{"id": uuid}} or a uuid',
                kind=KIND_INVALID_KEY,
            )
        # A tombstone has no source timestamp: the Kafka timestamp orders it against re-creates.
        return ContentChange(
            record=record, content_id=content_id, version=record.timestamp_ms or 0, info=None
        )
    row = decode_value(CONTENT_DECODER, record.value)
    op = parse_op(row.op, row.deleted)
    content_id = str(row.id)
    version = row.source_ts_ms if row.source_ts_ms is not None else (record.timestamp_ms or 0)
    if op == "d":
        return ContentChange(record=record, content_id=content_id, version=version, info=None)
    if row.title is None:
        raise BadInputError("Object missing required field `title`", kind=KIND_MISSING_FIELD)
    publish_ms = parse_timestamp_ms(row.publish_ts)
    if row.publish_ts is not None and publish_ms is None:
        raise BadInputError(
            f"publish_ts {row.publish_ts!r} is not an ISO 8601 timestamp", kind=KIND_WRONG_TYPE
        )
    info = ContentInfo(
        id=content_id,
        title=row.title,
        version=version,
        slug=row.slug,
        content_type=row.content_type,
        length_seconds=row.length_seconds,
        publish_ts_ms=publish_ms,
    )
    return ContentChange(record=record, content_id=content_id, version=version, info=info)
