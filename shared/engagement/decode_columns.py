"""Column-by-column decoding, the hot path: :func:`decode_engagements` decodes a whole :class:`TriggerBatch`
into :class:`EngagementColumns` (no per-record objects) with checks made for the batch at once (canonical uuids,
the usual ``YYYY-MM-DDTHH:MM:SS.mmmZ`` timestamps read through a per-second cache). A batch that does not pass
them goes record by record (:func:`~shared.engagement.decode_rows.decode_engagement_rows`), so both give the
same rows and the same dead letters.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec

from shared.engagement.batch import TriggerBatch
from shared.engagement.debezium import ENGAGEMENT_DECODER, OPS, all_canonical_uuids, not_deleted
from shared.engagement.decode_rows import UUID_FIELDS, decode_engagement_rows, field_columns
from shared.engagement.records import EVENT_TS, DecodedEngagements, EngagementColumns
from shared.engagement.timestamps import canonical_stamps_ms, utc_stamps_ms

_FAST_OPS = frozenset(OPS)


def decode_engagements(batch: TriggerBatch) -> DecodedEngagements:
    """Decode every record of a batch; bad ones become dead letters, tombstones are counted.

    A batch of well-formed records (the usual case) is decoded column by column by :func:`decode_clean`; any
    other batch record by record, with the same result either way.
    """
    clean = decode_clean(batch)
    if clean is not None:
        return clean
    return decode_engagement_rows(batch)


def decode_clean(batch: TriggerBatch) -> DecodedEngagements | None:
    """The columns of a batch whose every record passes the fast checks, else ``None``.

    The checks, for the whole batch at once: every record decodes, none is a tombstone, every ``__op`` is
    one of ``c u r d`` as is (a ``__deleted`` flag that says true makes it ``d``), every ``event_ts`` is a UTC
    ``YYYY-MM-DDTHH:MM:SS[.f...]Z`` text of 1970 or later (Debezium's ``ZonedTimestamp``; canonical
    ``...SS.mmmZ`` texts, as :func:`iso_ms` writes them, are checked for the batch at once), every uuid is
    canonical. For those rows :func:`~shared.engagement.decode_rows.check_row` only rewrites ``event_ts`` in
    its canonical form, as done here, so the result is the record path's.
    """
    values = batch.values
    n = len(values)
    if not n or None in values:
        return None
    decode = ENGAGEMENT_DECODER.decode
    try:
        structs: list[Any] = [decode(cast(bytes, value)) for value in values]
    except msgspec.DecodeError:  # ValidationError included
        return None
    ops = [s.op for s in structs]
    if not _FAST_OPS.issuperset(ops):
        return None
    if not all(not_deleted(flag) for flag in {s.deleted for s in structs}):
        # Debezium's ``delete.handling.mode=rewrite``: a ``__deleted`` flag that says true makes the row a delete
        ops = [op if not_deleted(s.deleted) else "d" for op, s in zip(ops, structs, strict=True)]
    fields: dict[str, list[Any]] = field_columns(structs)
    texts = fields[EVENT_TS]
    if {type(t) for t in texts} != {str}:
        return None
    stamps = cast(list[str], texts)
    ts_ms = canonical_stamps_ms(stamps)
    if ts_ms is None:
        # Texts of other lengths (Debezium writes 0 to 9 fraction digits): read one by one, then published
        # in their canonical ``...SS.mmmZ`` form, as the record path does.
        general = utc_stamps_ms(stamps)
        if general is None:
            return None
        ts_ms, fields[EVENT_TS] = general
    uuids: list[str] = []
    for name, optional in UUID_FIELDS:
        uuids.extend([u for u in fields[name] if u is not None] if optional else fields[name])
    if not all_canonical_uuids(uuids):
        return None
    sources = [s.source_ts_ms for s in structs]
    if None in sources:
        timestamp_ms = batch.timestamp_ms
        sources = [v if v is not None else (timestamp_ms(i) or ts_ms[i]) for i, v in enumerate(sources)]
    versions = [v if v > 0 else 0 for v in cast(list[int], sources)]
    columns = EngagementColumns(
        {"position": range(n), "op": ops, "event_ts_ms": ts_ms, "version_ms": versions, **fields}
    )
    return DecodedEngagements(columns=columns, dead=[], tombstones=0)
