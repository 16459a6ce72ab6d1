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
from typing import Any, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.engagement.cdc import ContentInfo, EngagementColumns, TriggerBatch, iso_ms

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
    return _token(scope, len(ids), array("q", ids).tobytes(), array("Q", versions).tobytes())


def _token(scope: str, n: int, ids: bytes, versions: bytes) -> str:
    """The token of ``n`` rows from their ids (native int64) and versions (native uint64) as bytes."""
    digest = hashlib.blake2b(scope.encode(), digest_size=20)
    digest.update(ids)
    digest.update(versions)
    return f"{scope}:{n}:{digest.hexdigest()}"


class EnrichedRows:
    """The hot path's enriched rows of one trigger batch (see :func:`~shared.engagement.cdc.decode_engagements`).

    Everything is computed column by column in Arrow and numpy, with no per-row Python: content is joined by
    content id (``index_in`` then ``take``), seconds and percent in integer arithmetic, the version from the
    joined content version. The ClickHouse table is ready first, so the insert can start before the
    envelopes exist; :meth:`write_envelopes` then concatenates each envelope from column pieces, with the
    value already escaped as the JSON string it is inside the envelope (the template's quotes are written
    escaped, every free-text field is encoded then escaped, once per distinct content and device). Equal,
    value for value and byte for byte, to :class:`EnrichedBatch` built with :meth:`EnrichedBatch.add`
    (tested).
    """

    __slots__ = (
        "_arrays",
        "_cols",
        "_deleted",
        "_duration",
        "_id_values",
        "_known",
        "_ops",
        "_position",
        "_secs",
        "_version_values",
        "envelopes",
        "out_topic",
        "table",
        "unknown",
    )

    def __init__(
        self,
        columns: EngagementColumns,
        batch: TriggerBatch,
        contents: Mapping[str, ContentInfo | None],
        out_topic: str,
    ) -> None:
        self.out_topic = out_topic
        self.envelopes: list[str] = []
        self._cols = columns
        known = {cid: info for cid, info in contents.items() if info is not None}
        self._known = known
        n = len(columns)
        ids = np.array(columns.ids, dtype=np.int64) if n else np.empty(0, np.int64)
        content_ids = pa.array(columns.content_ids, pa.string())
        position = pc.index_in(content_ids, value_set=pa.array(list(known), pa.string()))
        infos = list(known.values())
        self.unknown = position.null_count
        self._position = position

        def joined(values: list[Any], dtype: pa.DataType) -> pa.Array:
            return pc.take(pa.array(values, dtype), position)

        content_version = joined([max(i.version, 0) for i in infos], pa.int64())
        versions_ms = np.array(columns.versions_ms, dtype=np.int64) if n else np.empty(0, np.int64)
        known_mask = pc.is_valid(position)
        versions = (
            np.maximum(versions_ms, content_version.fill_null(-1).to_numpy()).astype(np.uint64)
            << np.uint64(1)
        ) | known_mask.to_numpy(zero_copy_only=False).astype(np.uint64)
        self._id_values = ids
        self._version_values = versions
        length = joined([i.length_seconds for i in infos], pa.int64())
        duration = pa.array(columns.durations, pa.int64())
        self._duration = duration
        has_duration = duration.is_valid().to_numpy(zero_copy_only=False)
        millis = duration.fill_null(0).to_numpy()
        secs_centis = pa.array((millis + 5) // 10, pa.int64(), mask=~has_duration)
        secs = decimal_array(secs_centis)
        lengths = length.fill_null(0).to_numpy()
        usable = has_duration & (lengths > 0)
        divisor = np.where(usable, lengths, 1)
        pct_centis = np.minimum((millis * 20 + divisor) // (divisor * 2), PCT_MAX_CENTIS)
        pct = decimal_array(pa.array(pct_centis, pa.int64(), mask=~usable))
        ops = pa.array(columns.ops, pa.string())
        deleted = pc.equal(ops, "d")
        self._deleted = deleted
        self._ops = ops
        self._secs = secs_centis
        if n == len(batch):
            topics, partitions, offsets = batch.topics, batch.partitions, batch.offsets
        else:
            index = columns.index
            topics = [batch.topics[i] for i in index]
            partitions = [batch.partitions[i] for i in index]
            offsets = [batch.offsets[i] for i in index]
        arrays = [
            pa.array(ids, pa.int64()),
            content_ids,
            pa.array(columns.user_ids, pa.string()),
            pa.array(columns.event_types, pa.string()),
            pa.array(columns.event_ts_ms, pa.timestamp("ms", tz="UTC")),
            duration.cast(pa.int32()),
            pa.array(columns.devices, pa.string()),
            known_mask,
            joined([i.content_type for i in infos], pa.string()),
            length.cast(pa.int32()),
            joined([i.title for i in infos], pa.string()),
            secs,
            pct,
            pa.array(topics, pa.string()),
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(versions, pa.uint64()),
            deleted.cast(pa.uint8()),
        ]
        self._arrays = arrays
        self.table = pa.Table.from_arrays(arrays, names=list(ENRICHED_COLUMN_NAMES))

    def __len__(self) -> int:
        return len(self._cols)

    @property
    def versions(self) -> list[int]:
        return [int(v) for v in self._version_values]

    def to_arrow(self) -> pa.Table:
        return self.table

    def dedup_token(self, scope: str) -> str:
        """The same token :meth:`EnrichedBatch.dedup_token` gives for the same rows."""
        return _token(scope, len(self), self._id_values.tobytes(), self._version_values.tobytes())

    def score_totals(self) -> pa.Table:
        """Leaderboard deltas of the batch: ``minute`` (epoch minute of ``event_ts``), ``member`` (content id)
        and ``centis`` (engagement seconds in hundredths, negative for deletes), summed per minute and member
        and non-zero; rows without a duration and updates (``u``) score nothing."""
        c = self._cols
        secs = self._secs
        scored = pa.table(
            {
                "minute": pa.array(np.array(c.event_ts_ms, dtype=np.int64) // 60_000, pa.int64()),
                "member": self._arrays[1],
                "centis": pc.if_else(self._deleted, pc.negate(secs), secs),
            }
        ).filter(pc.and_(secs.is_valid(), pc.not_equal(self._ops, "u")))
        totals = scored.group_by(["minute", "member"], use_threads=False).aggregate([("centis", "sum")])
        totals = totals.rename_columns(["minute", "member", "centis"])
        return totals.filter(pc.not_equal(totals["centis"], 0))

    def scores(self) -> list[tuple[int, int, str, int]]:
        """The per-record leaderboard scores ``(record index, minute, member, centis)`` (the general form)."""
        c = self._cols
        result: list[tuple[int, int, str, int]] = []
        for i, op, content_id, ts_ms, duration in zip(
            c.index, c.ops, c.content_ids, c.event_ts_ms, c.durations, strict=True
        ):
            if duration is not None and op != "u":
                centis = (duration + 5) // 10
                if centis:
                    result.append((i, ts_ms // 60_000, content_id, -centis if op == "d" else centis))
        return result

    def write_envelopes(self) -> list[str]:
        """The output envelopes (one per row, in order); also kept in :attr:`envelopes`."""
        if self.envelopes or not len(self):
            return self.envelopes
        table = dict(zip(ENRICHED_COLUMN_NAMES, self._arrays, strict=True))
        c = self._cols
        position = self._position
        string = pa.string()
        bodies = pa.array([_content_body(info) for info in self._known.values()], string)
        body = pc.fill_null(pc.take(bodies, position), _UNKNOWN_BODY)
        devices = pc.dictionary_encode(table["device"])
        device_texts = [
            _DEVICE_JSON.get(d) or _device_json(d) for d in cast(list[str], devices.dictionary.to_pylist())
        ]
        device = pc.fill_null(pc.take(pa.array(device_texts, string), devices.indices), "null")

        def quoted(values: pa.Array) -> pa.Array:
            return pc.fill_null(pc.binary_join_element_wise(r"\"", values, r"\"", ""), "null")

        ids = pc.cast(table["id"], string)
        versions = pc.cast(table["version"], string)
        cids = table["content_id"]
        event_ts = pa.array(c.event_ts, string)
        topic_json = _encode(self.out_topic).decode()
        pieces: list[Any] = [
            f'{{"Offset":-1,"Partition":-1,"Topic":{topic_json},"Timestamp":"',
            event_ts,
            '","Key":"',
            cids,
            r'","Value":"{\"id\":',
            ids,
            r",\"content_id\":\"",
            cids,
            r"\",\"user_id\":",
            quoted(table["user_id"]),
            r",\"event_type\":\"",
            table["event_type"],
            r"\",\"event_ts\":\"",
            event_ts,
            r"\",\"duration_ms\":",
            pc.fill_null(pc.cast(self._duration, string), "null"),
            r",\"device\":",
            device,
            ",",
            body,
            r",\"engagement_seconds\":",
            quoted(pc.cast(table["engagement_seconds"], string)),
            r",\"engagement_pct\":",
            quoted(pc.cast(table["engagement_pct"], string)),
            r",\"deleted\":",
            pc.if_else(self._deleted, "true", "false"),
            r",\"version\":",
            versions,
            r'}","Headers":[{"Key":"event_id","Value":"',
            ids,
            '"},{"Key":"event_version","Value":"',
            versions,
            '"}]}',
        ]
        joined = pc.binary_join_element_wise(*pieces, "")
        self.envelopes = cast(list[str], joined.to_pylist())
        return self.envelopes
