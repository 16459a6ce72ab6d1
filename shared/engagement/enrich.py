"""Enrichment: an engagement row joined with its content, as JSON for the enriched topic and columns for
ClickHouse.

Definitions (all integer arithmetic, no floating point):

- ``engagement_seconds`` = ``duration_ms / 1000`` rounded half up to 2 decimals; ``null`` when
  ``duration_ms`` is null (clicks carry no duration).
- ``engagement_pct`` = ``duration_ms / (10 * length_seconds)``, i.e. the share of the content's length that
  was engaged, in percent, rounded half up to 2 decimals and clamped to ``[0, 100]``. It is computed from
  ``duration_ms`` (not from the rounded seconds). ``null`` when the content is unknown, its
  ``length_seconds`` is null or 0 (newsletters), or ``duration_ms`` is null.
- ``version`` = ``max(engagement version, content version) * 2 + content_known``. The engagement version is
  Debezium's ``__source_ts_ms`` (else the Kafka timestamp), the content version its ``__source_ts_ms``.
  A re-delivered event gets the same version (ClickHouse keeps one row); an event re-enriched once its content
  arrives, a newer content version or a later change of the row gets a higher one (ClickHouse keeps it).

The hot path (:class:`EnrichedRows`) computes the ClickHouse columns in Arrow and writes the output envelope
of an :class:`EnrichedEvent` with one string template: every free-text field goes through msgspec's encoder,
everything else is a number, a canonical uuid or a fixed literal, so the text equals that of encoding the
structs (tested).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.engagement.cdc import ContentInfo, EngagementRow, TriggerBatch, iso_ms

PCT_MAX_CENTIS = 10_000  # 100.00 %


def engagement_centis(duration_ms: int | None) -> int | None:
    """Engagement seconds in hundredths (``duration_ms / 1000`` rounded half up to 2 decimals)."""
    if duration_ms is None:
        return None
    return (duration_ms + 5) // 10


def engagement_pct_centis(duration_ms: int | None, length_seconds: int | None) -> int | None:
    """Engagement percent in hundredths, rounded half up and clamped to ``[0, 100.00]``."""
    if duration_ms is None or not length_seconds or length_seconds <= 0:
        return None
    # pct = duration_ms / 1000 / length * 100 = duration_ms / (10 * length); in hundredths: * 100.
    numerator = duration_ms * 10
    pct = (2 * numerator + length_seconds) // (2 * length_seconds)
    return max(0, min(PCT_MAX_CENTIS, pct))


def format_centis(value: int | None) -> str | None:
    """``1234`` -> ``"12.34"``: exact 2-decimal text, as the earlier pipeline published it."""
    if value is None:
        return None
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 100}.{value % 100:02d}"


def row_version(engagement_version_ms: int, content_version_ms: int | None, known: bool) -> int:
    base = (
        engagement_version_ms
        if content_version_ms is None
        else max(engagement_version_ms, content_version_ms)
    )
    return (max(base, 0) << 1) | (1 if known else 0)


class EnrichedEvent(msgspec.Struct, frozen=True):
    """The value published to ``engagement_enriched`` (keyed by ``content_id``)."""

    id: int
    content_id: str
    user_id: str | None
    event_type: str
    event_ts: str
    duration_ms: int | None
    device: str | None
    content_known: bool
    content_type: str | None
    length_seconds: int | None
    title: str | None
    engagement_seconds: str | None
    engagement_pct: str | None
    deleted: bool
    version: int


class _Header(msgspec.Struct, frozen=True):
    Key: str
    Value: str


class _OutEnvelope(msgspec.Struct, frozen=True):
    """The Kafka extension's event shape for string output: key, value and headers of one message."""

    Offset: int
    Partition: int
    Topic: str
    Timestamp: str
    Key: str
    Value: str
    Headers: list[_Header]


HEADER_EVENT_ID = "event_id"
HEADER_EVENT_VERSION = "event_version"

_encode = msgspec.json.Encoder().encode

# ClickHouse column order of ``engagement_enriched`` as inserted (``ingested_at`` has a default).
ENRICHED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("id", pa.int64()),
    ("content_id", pa.string()),
    ("user_id", pa.string()),
    ("event_type", pa.string()),
    ("event_ts", pa.timestamp("ms", tz="UTC")),
    ("duration_ms", pa.int32()),
    ("device", pa.string()),
    ("content_known", pa.bool_()),
    ("content_type", pa.string()),
    ("length_seconds", pa.int32()),
    ("title", pa.string()),
    ("engagement_seconds", pa.decimal128(18, 2)),
    ("engagement_pct", pa.decimal128(18, 2)),
    ("source_topic", pa.string()),
    ("source_partition", pa.int32()),
    ("source_offset", pa.int64()),
    ("version", pa.uint64()),
    ("is_deleted", pa.uint8()),
)
ENRICHED_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in ENRICHED_COLUMNS)


# The content part of an enriched value, escaped as inside the envelope's ``Value`` string.
_UNKNOWN_BODY = r"\"content_known\":false,\"content_type\":null,\"length_seconds\":null,\"title\":null"
_DEVICE_JSON: dict[str, str] = {}


def _escaped_json(value: str | None) -> str:
    """``value`` as JSON, escaped once more as it appears inside a JSON string."""
    return _encode(value).decode().replace("\\", "\\\\").replace('"', '\\"')


def _device_json(device: str) -> str:
    text = _escaped_json(device)
    if len(_DEVICE_JSON) > 10_000:
        _DEVICE_JSON.clear()
    _DEVICE_JSON[device] = text
    return text


_CONTENT_BODY: dict[ContentInfo, str] = {}


def _content_body(info: ContentInfo) -> str:
    """The escaped content part of an enriched value of known content (cached by value)."""
    body = _CONTENT_BODY.get(info)
    if body is None:
        length = "null" if info.length_seconds is None else str(info.length_seconds)
        body = (
            rf"\"content_known\":true,\"content_type\":{_escaped_json(info.content_type)},"
            rf"\"length_seconds\":{length},\"title\":{_escaped_json(info.title)}"
        )
        if len(_CONTENT_BODY) > 100_000:
            _CONTENT_BODY.clear()
        _CONTENT_BODY[info] = body
    return body


def decimal_array(centis: Sequence[int | None] | pa.Array) -> pa.Array:
    """A ``decimal128(18, 2)`` Arrow array from values in hundredths, without ``Decimal`` objects."""
    ints = centis.cast(pa.int64()) if isinstance(centis, pa.Array) else pa.array(centis, pa.int64())
    validity = ints.buffers()[0] if ints.null_count else None
    data = ints.fill_null(0).to_numpy(zero_copy_only=False) if ints.null_count else ints.to_numpy()
    wide = np.empty((len(ints), 2), dtype=np.int64)
    wide[:, 0] = data
    wide[:, 1] = data >> 63
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(ints), [validity, pa.py_buffer(wide.tobytes())])


class EnrichedBatch:
    """Enriched rows of one batch, kept as columns (ClickHouse) and JSON envelopes (the enriched topic)."""

    __slots__ = ("_cols", "envelopes", "out_topic", "unknown")

    def __init__(self, out_topic: str) -> None:
        self.out_topic = out_topic
        self._cols: list[list[Any]] = [[] for _ in ENRICHED_COLUMNS]
        self.envelopes: list[str] = []
        self.unknown = 0

    def __len__(self) -> int:
        return len(self._cols[0])

    def add(
        self,
        *,
        id: int,
        content_id: str,
        user_id: str | None,
        event_type: str,
        event_ts_ms: int,
        duration_ms: int | None,
        device: str | None,
        content: ContentInfo | None,
        engagement_version_ms: int,
        deleted: bool,
        source_topic: str,
        source_partition: int,
        source_offset: int,
    ) -> None:
        known = content is not None
        secs = engagement_centis(duration_ms)
        length: int | None
        pct: int | None
        title: str | None
        ctype: str | None
        if content is not None:
            length = content.length_seconds
            pct = engagement_pct_centis(duration_ms, length)
            version = row_version(engagement_version_ms, content.version, True)
            title, ctype = content.title, content.content_type
        else:
            self.unknown += 1
            length = pct = None
            title = ctype = None
            version = row_version(engagement_version_ms, None, False)
        c = self._cols
        c[0].append(id)
        c[1].append(content_id)
        c[2].append(user_id)
        c[3].append(event_type)
        c[4].append(event_ts_ms)
        c[5].append(duration_ms)
        c[6].append(device)
        c[7].append(known)
        c[8].append(ctype)
        c[9].append(length)
        c[10].append(title)
        c[11].append(secs)
        c[12].append(pct)
        c[13].append(source_topic)
        c[14].append(source_partition)
        c[15].append(source_offset)
        c[16].append(version)
        c[17].append(1 if deleted else 0)
        event_ts = iso_ms(event_ts_ms)
        value = _encode(
            EnrichedEvent(
                id=id,
                content_id=content_id,
                user_id=user_id,
                event_type=event_type,
                event_ts=event_ts,
                duration_ms=duration_ms,
                device=device,
                content_known=known,
                content_type=ctype,
                length_seconds=length,
                title=title,
                engagement_seconds=format_centis(secs),
                engagement_pct=format_centis(pct),
                deleted=deleted,
                version=version,
            )
        )
        self.envelopes.append(
            _encode(
                _OutEnvelope(
                    Offset=-1,
                    Partition=-1,
                    Topic=self.out_topic,
                    Timestamp=event_ts,
                    Key=content_id,
                    Value=value.decode(),
                    Headers=[_Header(HEADER_EVENT_ID, str(id)), _Header(HEADER_EVENT_VERSION, str(version))],
                )
            ).decode()
        )

    def column(self, name: str) -> list[Any]:
        return self._cols[ENRICHED_COLUMN_NAMES.index(name)]

    def to_arrow(self) -> pa.Table:
        arrays: list[pa.Array] = []
        for (name, dtype), values in zip(ENRICHED_COLUMNS, self._cols, strict=True):
            if name in ("engagement_seconds", "engagement_pct"):
                arrays.append(decimal_array(values))
            else:
                arrays.append(pa.array(values, dtype))
        return pa.Table.from_arrays(arrays, names=list(ENRICHED_COLUMN_NAMES))

    def dedup_token(self, scope: str) -> str:
        """A deterministic ``insert_deduplication_token``: the same ids and versions give the same token."""
        return dedup_token(scope, self._cols[0], self._cols[16])


def dedup_token(scope: str, ids: Sequence[int], versions: Sequence[int]) -> str:
    digest = hashlib.blake2b(scope.encode(), digest_size=20)
    digest.update(array("q", ids).tobytes())
    digest.update(array("Q", versions).tobytes())
    return f"{scope}:{len(ids)}:{digest.hexdigest()}"


class EnrichedRows:
    """The hot path's enriched rows of one trigger batch (see :func:`~shared.engagement.cdc.decode_engagements`).

    The ClickHouse table is computed column by column in Arrow (content joined by position with ``take``,
    seconds, percent and their decimal text in compute kernels), so the insert can start before the
    envelopes exist; :meth:`write_envelopes` then writes them, with the value already escaped as the JSON
    string it is inside the envelope (the template's quotes are written escaped, every free-text field is
    encoded then escaped, once per distinct content and device). Equal, value for value and byte for byte,
    to :class:`EnrichedBatch` built with :meth:`EnrichedBatch.add` (tested).
    """

    __slots__ = (
        "_bodies",
        "_pct",
        "_rows",
        "_secs",
        "envelopes",
        "ids",
        "out_topic",
        "table",
        "unknown",
        "versions",
    )

    def __init__(
        self,
        rows: list[EngagementRow],
        batch: TriggerBatch,
        contents: Mapping[str, ContentInfo | None],
        out_topic: str,
    ) -> None:
        self.out_topic = out_topic
        self.envelopes: list[str] = []
        self._rows = rows
        known: dict[str, ContentInfo] = {}
        for cid in dict.fromkeys(r[3] for r in rows):
            info = contents.get(cid)
            if info is not None:
                known[cid] = info
        self._bodies = {cid: _content_body(info) for cid, info in known.items()}
        if not rows:
            self.ids: Sequence[int] = ()
            self.versions: list[int] = []
            self.unknown = 0
            self.table = pa.Table.from_arrays(
                [pa.array([], dtype) for _, dtype in ENRICHED_COLUMNS], names=list(ENRICHED_COLUMN_NAMES)
            )
            self._secs: list[str | None] = []
            self._pct: list[str | None] = []
            return
        index, ops, ids, cids, uids, types, ts_ms, _, durations, devices, versions_ms = zip(
            *rows, strict=True
        )
        content_version = {cid: max(info.version, 0) for cid, info in known.items()}
        version_of = content_version.get
        self.ids = ids
        self.versions = [
            v << 1 if (cv := version_of(cid)) is None else ((v if v > cv else cv) << 1) | 1
            for cid, v in zip(cids, versions_ms, strict=True)
        ]
        content_ids = pa.array(cids, pa.string())
        infos = list(known.values())
        position_of = {cid: i for i, cid in enumerate(known)}.get
        position = pa.array([position_of(cid) for cid in cids], pa.int32())
        self.unknown = position.null_count

        def joined(values: list[Any], dtype: pa.DataType) -> pa.Array:
            return pc.take(pa.array(values, dtype), position)

        length = joined([i.length_seconds for i in infos], pa.int64())
        duration = pa.array(durations, pa.int64())
        secs = decimal_array(pc.divide(pc.add(duration, 5), 10))
        usable = pc.if_else(pc.greater(length, 0), length, pa.scalar(None, pa.int64()))
        pct = pc.divide(pc.add(pc.multiply(duration, 20), usable), pc.multiply(usable, 2))
        pct = decimal_array(pc.if_else(pc.greater(pct, PCT_MAX_CENTIS), PCT_MAX_CENTIS, pct))
        self._secs = pc.cast(secs, pa.string()).to_pylist()
        self._pct = pc.cast(pct, pa.string()).to_pylist()
        if len(rows) == len(batch):
            topics, partitions, offsets = batch.topics, batch.partitions, batch.offsets
        else:
            topics = [batch.topics[i] for i in index]
            partitions = [batch.partitions[i] for i in index]
            offsets = [batch.offsets[i] for i in index]
        arrays = [
            pa.array(ids, pa.int64()),
            content_ids,
            pa.array(uids, pa.string()),
            pa.array(types, pa.string()),
            pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
            duration.cast(pa.int32()),
            pa.array(devices, pa.string()),
            pc.is_valid(position),
            joined([i.content_type for i in infos], pa.string()),
            length.cast(pa.int32()),
            joined([i.title for i in infos], pa.string()),
            secs,
            pct,
            pa.array(topics, pa.string()),
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(self.versions, pa.uint64()),
            pc.equal(pa.array(ops, pa.string()), "d").cast(pa.uint8()),
        ]
        self.table = pa.Table.from_arrays(arrays, names=list(ENRICHED_COLUMN_NAMES))

    def __len__(self) -> int:
        return len(self._rows)

    def to_arrow(self) -> pa.Table:
        return self.table

    def dedup_token(self, scope: str) -> str:
        """The same token :meth:`EnrichedBatch.dedup_token` gives for the same rows."""
        return dedup_token(scope, self.ids, self.versions)

    def write_envelopes(self) -> list[str]:
        """The output envelopes (one per row, in order); also kept in :attr:`envelopes`."""
        if self.envelopes or not self._rows:
            return self.envelopes
        bodies = self._bodies
        devices = _DEVICE_JSON
        topic_json = _encode(self.out_topic).decode()
        envelope = self.envelopes.append
        for row, version, secs, pct in zip(self._rows, self.versions, self._secs, self._pct, strict=True):
            _, op, id_, cid, uid, event_type, _, event_ts, duration, device, _ = row
            uid_json = "null" if uid is None else rf"\"{uid}\""
            duration_json = "null" if duration is None else duration
            device_json = "null" if device is None else (devices.get(device) or _device_json(device))
            secs_json = "null" if secs is None else rf"\"{secs}\""
            pct_json = "null" if pct is None else rf"\"{pct}\""
            deleted = "true" if op == "d" else "false"
            envelope(
                rf'{{"Offset":-1,"Partition":-1,"Topic":{topic_json},"Timestamp":"{event_ts}","Key":"{cid}",'
                rf'"Value":"{{\"id\":{id_},\"content_id\":\"{cid}\",\"user_id\":{uid_json},'
                rf"\"event_type\":\"{event_type}\",\"event_ts\":\"{event_ts}\",\"duration_ms\":{duration_json},"
                rf"\"device\":{device_json},{bodies.get(cid, _UNKNOWN_BODY)},\"engagement_seconds\":{secs_json},"
                rf"\"engagement_pct\":{pct_json},\"deleted\":{deleted},\"version\":{version}}}"
                rf'","Headers":[{{"Key":"event_id","Value":"{id_}"}},{{"Key":"event_version","Value":"{version}"}}]}}'
            )
        return self.envelopes
