"""Decoding of Debezium ``ExtractNewRecordState`` records of ``content.flat`` and ``engagement_events.flat``.

The earlier connector (``unwrap`` with ``add.fields=op,table,source.ts_ms``) writes flat JSON rows of the
Postgres tables with three extra fields: ``__op`` (``c`` create, ``u`` update, ``r`` snapshot read, ``d``
delete), ``__table`` and ``__source_ts_ms``. Keys come as ``{"id": "<uuid>"}`` (content), a bare uuid or a
JSON-quoted uuid (engagement, keyed by ``content_id``); all three are accepted. A tombstone is a record with
no value; ``__op = d`` records carry the deleted row (``delete.handling.mode=rewrite``).

Each record becomes exactly one of: a change (:class:`EngagementChange`, :class:`ContentChange`), a
:class:`DeadLetter` (bad input, parked with its raw value, position and reason) or, for engagement tombstones,
nothing but a count (the ``d`` record before it already carried the delete). Nothing here touches a store.

Records reach the functions either as raw values (``dataType: binary``) or wrapped by the Kafka extension in
its event envelope (``{"Offset", "Partition", "Topic", "Timestamp", "Key", "Value", "Headers"}``, which
the extension produces for string-typed values); both are unwrapped here. The key, topic, partition and
offset are read from the event and, where the Python binding left them empty (a known bug leaves ``key`` as
``None`` in batch mode), from the batch metadata arrays. A batch whose records cannot all be positioned (topic,
partition and offset), or whose metadata is needed but unreadable, raises :class:`BatchMetadataError`: without
offsets the Redis watermark could not recognise a redelivery, so such a batch is never applied.

Hot path: :func:`decode_engagements` decodes a whole :class:`TriggerBatch` (columns, no per-record objects)
into row tuples with fast checks (canonical uuids checked for the batch at once, the usual
``YYYY-MM-DDTHH:MM:SS.mmmZ`` timestamps read through a per-second cache) and hands any record that does not
pass them to the general decoder, so both give the same rows and the same dead letters.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, cast

import msgspec

from shared.errors import BadInputError, TerminalError

EVENT_TYPES: tuple[str, ...] = ("play", "pause", "finish", "click")
CONTENT_TYPES: tuple[str, ...] = ("podcast", "newsletter", "video")
OPS: tuple[str, ...] = ("c", "u", "r", "d")

# Kinds of bad input, as stored in the dead-letter table's ``kind`` column.
KIND_INVALID_JSON = "invalid_json"
KIND_NOT_AN_OBJECT = "not_an_object"
KIND_MISSING_FIELD = "missing_field"
KIND_WRONG_TYPE = "wrong_type"
KIND_UNKNOWN_EVENT_TYPE = "unknown_event_type"
KIND_INVALID_VALUE = "invalid_value"
KIND_INVALID_KEY = "invalid_key"
BAD_INPUT_KINDS: tuple[str, ...] = (
    KIND_INVALID_JSON,
    KIND_NOT_AN_OBJECT,
    KIND_MISSING_FIELD,
    KIND_WRONG_TYPE,
    KIND_UNKNOWN_EVENT_TYPE,
    KIND_INVALID_VALUE,
    KIND_INVALID_KEY,
)

_INT32_MAX = 2**31 - 1


class BatchMetadataError(TerminalError):
    """A trigger batch that cannot be positioned: its metadata is unreadable, or some record's topic, partition
    or offset is unknown. Nothing of the batch is applied (the function fails; the host holds the partition)."""


class KafkaEventLike(Protocol):
    """What the decoder reads from an ``azure.functions.KafkaEvent``."""

    def get_body(self) -> bytes: ...

    @property
    def key(self) -> str | None: ...

    @property
    def offset(self) -> int | None: ...

    @property
    def partition(self) -> int | None: ...

    @property
    def topic(self) -> str | None: ...

    @property
    def timestamp(self) -> str | None: ...

    @property
    def metadata(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as delivered: value bytes (``None`` for a tombstone) and where it came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that can never be loaded, parked with its raw value, position and reason."""

    record: RawRecord
    reason: str
    kind: str


@dataclass(frozen=True, slots=True)
class EngagementChange:
    """One decoded ``engagement_events`` row. ``version_ms`` orders changes of the same row."""

    record: RawRecord
    op: str
    id: int
    content_id: str
    user_id: str | None
    event_type: str
    event_ts_ms: int
    duration_ms: int | None
    device: str | None
    version_ms: int

    @property
    def deleted(self) -> bool:
        return self.op == "d"


class ContentInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """The content attributes enrichment needs; stored as JSON in the shared content store."""

    id: str
    title: str
    version: int
    slug: str | None = None
    content_type: str | None = None
    length_seconds: int | None = None
    publish_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ContentChange:
    """An upsert (``info`` set) or delete (``info`` is ``None``) of one content row."""

    record: RawRecord
    content_id: str
    version: int
    info: ContentInfo | None

    @property
    def deleted(self) -> bool:
        return self.info is None


# --------------------------------------------------------------------------------------- wire structs

_NonNegInt32 = Annotated[int, msgspec.Meta(ge=0, le=_INT32_MAX)]


class _EngagementRow(msgspec.Struct, gc=False):
    """The fields of an ``engagement_events`` row that enrichment reads; uuids are checked after decoding."""

    id: int
    content_id: str
    event_type: Literal["play", "pause", "finish", "click"]
    event_ts: str | int
    user_id: str | None = None
    duration_ms: _NonNegInt32 | None = None
    device: str | None = None
    op: str = msgspec.field(default="c", name="__op")
    source_ts_ms: int | None = msgspec.field(default=None, name="__source_ts_ms")
    deleted: str | bool | None = msgspec.field(default=None, name="__deleted")


class _ContentRow(msgspec.Struct):
    id: uuid.UUID
    title: str | None = None
    slug: str | None = None
    content_type: Literal["podcast", "newsletter", "video"] | None = None
    length_seconds: _NonNegInt32 | None = None
    publish_ts: str | int | None = None
    op: str = msgspec.field(default="c", name="__op")
    source_ts_ms: int | None = msgspec.field(default=None, name="__source_ts_ms")
    deleted: str | bool | None = msgspec.field(default=None, name="__deleted")


class _Envelope(msgspec.Struct):
    Value: str | None = None
    Key: str | None = None
    Offset: int | None = None
    Partition: int | None = None
    Topic: str | None = None
    Timestamp: str | None = None


_ENGAGEMENT_DECODER = msgspec.json.Decoder(_EngagementRow)
_CONTENT_DECODER = msgspec.json.Decoder(_ContentRow)
_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)
_ENVELOPE_PREFIX = b'{"Offset":'


# --------------------------------------------------------------------------------------- records


def _meta_list(metadata: Mapping[str, Any] | None, name: str) -> list[Any] | None:
    """A metadata array as a list, whatever form the worker gave it (JSON text or a protobuf collection).

    ``None`` means the host did not send the array (no metadata, or no entry ``name``); the caller decides
    whether the batch can do without it. An array that is present but unreadable (not JSON, not a list, an
    unknown collection type) raises :class:`BatchMetadataError`.
    """
    if not metadata:
        return None
    value = metadata.get(name)
    if value is None:
        return None
    if isinstance(value, str | bytes):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise BatchMetadataError(f"trigger metadata {name} is not JSON: {exc}") from exc
        if not isinstance(parsed, list):
            raise BatchMetadataError(f"trigger metadata {name} is not an array: {type(parsed).__name__}")
        return parsed
    if isinstance(value, list):
        return value
    for attr in ("sint64", "string", "bytes", "double"):
        items = getattr(value, attr, None)
        if items is not None:
            return list(items)
    raise BatchMetadataError(f"trigger metadata {name} has an unreadable form: {type(value).__name__}")


def parse_timestamp_ms(value: object) -> int | None:
    """Epoch milliseconds from an ISO 8601 string (``Z`` or offset; naive means UTC) or an epoch number.

    Numbers are read by magnitude: seconds, milliseconds or microseconds since the epoch.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        if abs(number) >= 1e14:  # microseconds
            return int(number // 1000)
        if abs(number) >= 1e11:  # milliseconds
            return int(number)
        return int(number * 1000)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("/Date("):  # .NET JSON date
            digits = text[6:].split(")")[0].split("+")[0]
            return int(digits) if digits.lstrip("-").isdigit() else None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _dt_ms(parsed)
    return None


def _dt_ms(parsed: datetime) -> int:
    whole = int(parsed.replace(microsecond=0).timestamp())
    return whole * 1000 + parsed.microsecond // 1000


_ISO_SECONDS: dict[int, str] = {}


def iso_ms(epoch_ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC) of epoch milliseconds."""
    seconds, millis = divmod(epoch_ms, 1000)
    prefix = _ISO_SECONDS.get(seconds)
    if prefix is None:
        if len(_ISO_SECONDS) > 100_000:
            _ISO_SECONDS.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _ISO_SECONDS[seconds] = prefix
    return f"{prefix}.{millis:03d}Z"


# ``YYYY-MM-DDTHH:MM:SS`` -> epoch ms of that second, for seconds since 1970 already parsed in full. Only
# texts exactly as :func:`iso_ms` writes them are kept, so a text read through the cache is canonical.
_SECOND_MS: dict[str, int] = {}
_MILLIS: dict[str, int] = {f"{i:03d}": i for i in range(1000)}


def iso_timestamp_ms(text: str) -> int | None:
    """:func:`parse_timestamp_ms` of a string; ``...SS.mmmZ`` texts of a second already seen skip the parse."""
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        millis = _MILLIS.get(text[20:23])
        if millis is not None:
            base = _SECOND_MS.get(text[:19])
            if base is not None:
                return base + millis
            value = parse_timestamp_ms(text)
            if value is not None and value >= 0 and iso_ms(value) == text:
                if len(_SECOND_MS) > 100_000:
                    _SECOND_MS.clear()
                _SECOND_MS[text[:19]] = value - millis
            return value
    return parse_timestamp_ms(text)


def _header_list(raw: object) -> list[Any]:
    return raw if isinstance(raw, list) else []


class TriggerBatch:
    """One trigger batch as columns: value bytes (``None`` for a tombstone) and position of each record.

    Timestamps are kept as delivered and parsed only when asked for (:meth:`timestamp_ms`): the hot path needs
    them only for records without ``__source_ts_ms`` and for dead letters.
    """

    __slots__ = ("_parsed", "_timestamps", "keys", "offsets", "partitions", "topics", "values")

    def __init__(
        self,
        *,
        values: list[bytes | None],
        topics: list[str],
        partitions: list[int],
        offsets: list[int],
        keys: list[str | None],
        timestamps: list[Any],
    ) -> None:
        self.values = values
        self.topics = topics
        self.partitions = partitions
        self.offsets = offsets
        self.keys = keys
        self._timestamps = timestamps
        self._parsed: dict[int, int | None] = {}

    def __len__(self) -> int:
        return len(self.values)

    def timestamp_ms(self, i: int) -> int | None:
        """The Kafka timestamp of record ``i`` in epoch milliseconds (``None`` when absent or unreadable)."""
        if i in self._parsed:
            return self._parsed[i]
        raw = self._timestamps[i]
        value = raw if type(raw) is int else parse_timestamp_ms(raw)
        self._parsed[i] = value
        return value

    def single_partition(self) -> tuple[str, int] | None:
        """The batch's one (topic, partition) when every record has the same (two C-level counts), else
        ``None`` (an empty batch or one spanning partitions)."""
        topics, partitions = self.topics, self.partitions
        n = len(partitions)
        if n and topics.count(topics[0]) == n and partitions.count(partitions[0]) == n:
            return topics[0], partitions[0]
        return None

    def newest_timestamps_ms(self) -> dict[tuple[str, int], int | None]:
        """The newest Kafka timestamp (epoch ms) of each (topic, partition) of the batch.

        A batch of one partition whose timestamps are all numbers or all text takes one ``max`` over them and
        parses only the newest (the extension writes every timestamp in the same ISO 8601 form, whose text
        order is time order); any other batch (mixed or missing timestamps: ``max`` refuses to compare them)
        parses each timestamp.
        """
        single = self.single_partition()
        if single is not None:
            try:
                newest = max(self._timestamps)
            except TypeError:
                pass
            else:
                return {single: newest if type(newest) is int else parse_timestamp_ms(newest)}
        newest_by: dict[tuple[str, int], int | None] = {}
        for i, key in enumerate(zip(self.topics, self.partitions, strict=True)):
            stamp = self.timestamp_ms(i)
            current = newest_by.get(key)
            if current is None or (stamp is not None and stamp > current):
                newest_by[key] = stamp
        return newest_by

    def record(self, i: int) -> RawRecord:
        return RawRecord(
            topic=self.topics[i],
            partition=self.partitions[i],
            offset=self.offsets[i],
            key=self.keys[i],
            value=self.values[i],
            timestamp_ms=self.timestamp_ms(i),
        )

    def records(self) -> list[RawRecord]:
        return [self.record(i) for i in range(len(self.values))]

    @classmethod
    def from_records(cls, records: Sequence[RawRecord]) -> TriggerBatch:
        return cls(
            values=[r.value for r in records],
            topics=[r.topic for r in records],
            partitions=[r.partition for r in records],
            offsets=[r.offset for r in records],
            keys=[r.key for r in records],
            timestamps=[r.timestamp_ms for r in records],
        )

    @classmethod
    def from_events(cls, events: Sequence[KafkaEventLike]) -> TriggerBatch:
        """Columns of a trigger batch, unwrapping extension envelopes (see :func:`records_from_events`).

        Raises :class:`BatchMetadataError` when the batch cannot be positioned (see the module docstring).
        """
        n = len(events)
        values: list[bytes | None] = [event.get_body() or None for event in events]
        keys: list[Any] = [event.key for event in events]
        topics: list[Any] = [event.topic for event in events]
        partitions: list[Any] = [event.partition for event in events]
        offsets: list[Any] = [event.offset for event in events]
        timestamps: list[Any] = [event.timestamp for event in events]
        columns = (keys, topics, partitions, offsets, timestamps)
        if _ENVELOPE_PREFIX in b"".join(filter(None, values)):  # else no record is wrapped
            for i, value in enumerate(values):
                if value is not None and value.startswith(_ENVELOPE_PREFIX):
                    _unwrap(i, value, values, columns)
        if n and any(None in column for column in columns):
            _fill_from_metadata(events[0], columns, n)
        for column, name in ((topics, "topic"), (partitions, "partition"), (offsets, "offset")):
            missing = column.count(None)
            if missing:
                raise BatchMetadataError(
                    f"{missing} of {n} records have no {name} (not on the event, its envelope or the trigger "
                    "metadata); a batch that cannot be positioned is not applied"
                )
        return cls(
            values=values,
            topics=topics if _all_of(topics, str) else [str(t) for t in topics],
            partitions=partitions if _all_of(partitions, int) else [int(p) for p in partitions],
            offsets=offsets if _all_of(offsets, int) else [int(o) for o in offsets],
            keys=keys
            if {type(k) for k in keys} <= {str, type(None)}
            else [k if isinstance(k, str) or k is None else str(k) for k in keys],
            timestamps=timestamps,
        )


def _all_of(column: list[Any], kind: type) -> bool:
    """Whether every value of ``column`` is exactly of type ``kind`` (so converting it would change nothing)."""
    return set(map(type, column)) == {kind}


_METADATA_ARRAYS = ("KeyArray", "TopicArray", "PartitionArray", "OffsetArray", "TimestampArray")


def _fill_from_metadata(first: KafkaEventLike, columns: tuple[list[Any], ...], n: int) -> None:
    """Fill the ``None`` entries of the columns from the batch metadata arrays, where the host sent them.

    Keys and timestamps that stay ``None`` are legitimate (records without a key or timestamp); missing
    positions are refused by the caller. Metadata that is needed but cannot be read, or an array whose length
    is not the batch's, raises :class:`BatchMetadataError` (the error is never hidden: a record's key decides
    which content a tombstone deletes, and its timestamp may be its version).
    """
    try:
        metadata = first.metadata
    except (ValueError, TypeError, KeyError) as exc:  # e.g. header parsing errors in some binding versions
        raise BatchMetadataError(
            f"the trigger metadata of the batch cannot be read ({type(exc).__name__}: {exc}); "
            "some records lack their key, position or timestamp, so the batch is not applied"
        ) from exc
    for column, name in zip(columns, _METADATA_ARRAYS, strict=True):
        if None not in column:
            continue
        fallback = _meta_list(metadata, name)
        if fallback is None:
            continue
        if len(fallback) != n:
            raise BatchMetadataError(f"trigger metadata {name} has {len(fallback)} entries for {n} records")
        column[:] = [v if v is not None else fallback[i] for i, v in enumerate(column)]


def _unwrap(i: int, value: bytes, values: list[bytes | None], columns: tuple[list[Any], ...]) -> None:
    """Replace record ``i``'s value by the one in its extension envelope; fill its missing position fields."""
    try:
        envelope = _ENVELOPE_DECODER.decode(value)
    except msgspec.DecodeError:
        return
    values[i] = envelope.Value.encode("utf-8") if envelope.Value else None
    keys, topics, partitions, offsets, timestamps = columns
    fields = (envelope.Key, envelope.Topic, envelope.Partition, envelope.Offset, envelope.Timestamp)
    for column, field in zip((keys, topics, partitions, offsets, timestamps), fields, strict=True):
        if column[i] is None:
            column[i] = field


def records_from_events(events: Sequence[KafkaEventLike]) -> list[RawRecord]:
    """Turn a trigger batch into :class:`RawRecord` values, unwrapping extension envelopes.

    Falls back to the batch metadata arrays (``KeyArray``, ``TopicArray``, ``PartitionArray``,
    ``OffsetArray``, ``TimestampArray``) for fields the binding left empty. A record whose topic, partition
    or offset is still unknown, or metadata that is needed but unreadable, raises
    :class:`BatchMetadataError`: the Redis watermark could not skip such records on a redelivery.
    """
    return TriggerBatch.from_events(events).records()


# --------------------------------------------------------------------------------------- keys


def parse_content_key(key: str | bytes | None) -> str | None:
    """The content id from a Debezium key: ``{"id": uuid}``, a bare uuid or a JSON-quoted uuid."""
    if key is None:
        return None
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    text = text.strip()
    if not text:
        return None
    candidate: object = text
    if text[0] in '{"':
        try:
            candidate = json.loads(text)
        except ValueError:
            return None
        if isinstance(candidate, dict):
            candidate = candidate.get("id", candidate.get("content_id"))
    if not isinstance(candidate, str):
        return None
    try:
        return str(uuid.UUID(candidate))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------- decoding


def _classify(exc: msgspec.ValidationError) -> BadInputError:
    message = str(exc)
    if "missing required field" in message:
        return BadInputError(message, kind=KIND_MISSING_FIELD)
    if "$.event_type" in message and "got `str`" in message:
        return BadInputError(message, kind=KIND_UNKNOWN_EVENT_TYPE)
    if "$.event_type" in message and "Invalid enum value" in message:
        return BadInputError(message, kind=KIND_UNKNOWN_EVENT_TYPE)
    if ">=" in message or "<=" in message or "Invalid enum value" in message or "Invalid UUID" in message:
        return BadInputError(message, kind=KIND_INVALID_VALUE)
    if message.startswith("Expected `object`"):
        return BadInputError(message, kind=KIND_NOT_AN_OBJECT)
    return BadInputError(message, kind=KIND_WRONG_TYPE)


def _decode(decoder: msgspec.json.Decoder[Any], value: bytes) -> Any:
    try:
        return decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise _classify(exc) from None
    except msgspec.DecodeError as exc:
        raise BadInputError(f"invalid JSON: {exc}", kind=KIND_INVALID_JSON) from None


def _op(raw_op: str, deleted_flag: str | bool | None) -> str:
    op = raw_op.lower() if raw_op else "c"
    if op not in OPS:
        raise BadInputError(f"unknown __op {raw_op!r}: expected one of c, u, r, d", kind=KIND_INVALID_VALUE)
    if deleted_flag is True or (isinstance(deleted_flag, str) and deleted_flag.lower() == "true"):
        return "d"
    return op


# (batch index, op, id, content_id, user_id, event_type, event_ts_ms, event_ts (as iso_ms writes it),
#  duration_ms, device, version_ms)
EngagementRow = tuple[int, str, int, str, str | None, str, int, str, int | None, str | None, int]

_MAX_TS_MS = 253402300800000  # year 10000
_FAST_OPS = frozenset(OPS)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_HEX_DIGITS = str.maketrans("", "", "0123456789abcdef")


def _canonical_uuid(text: str, field: str) -> str:
    """``text`` as a lowercase hyphenated uuid (what ``str(uuid.UUID)`` gives); :class:`BadInputError` if none."""
    if _CANONICAL_UUID(text):
        return text
    try:
        return str(msgspec.convert(text, uuid.UUID))
    except msgspec.ValidationError:
        raise BadInputError(f"Invalid UUID - at `$.{field}`", kind=KIND_INVALID_VALUE) from None


def _all_canonical_uuids(texts: list[str]) -> bool:
    """Whether every text is a lowercase hyphenated uuid, checked for the whole list at once."""
    n = len(texts)
    joined = "".join(texts)
    if len(joined) != 36 * n:
        return False
    dashes = "-" * n
    if joined[8::36] != dashes or joined[13::36] != dashes:
        return False
    if joined[18::36] != dashes or joined[23::36] != dashes:
        return False
    return joined.translate(_HEX_DIGITS) == dashes * 4


def _row(batch: TriggerBatch, i: int, row: _EngagementRow) -> EngagementRow:
    """The checked fields of a decoded row (the general path). Raises :class:`BadInputError`."""
    content_id = _canonical_uuid(row.content_id, "content_id")
    user_id = _canonical_uuid(row.user_id, "user_id") if row.user_id is not None else None
    op = _op(row.op, row.deleted)
    raw_ts = row.event_ts
    event_ts_ms = iso_timestamp_ms(raw_ts) if isinstance(raw_ts, str) else parse_timestamp_ms(raw_ts)
    if event_ts_ms is None:
        raise BadInputError(f"event_ts {raw_ts!r} is not an ISO 8601 timestamp", kind=KIND_WRONG_TYPE)
    if not 0 <= event_ts_ms < _MAX_TS_MS:
        raise BadInputError(f"event_ts {raw_ts!r} is out of range", kind=KIND_INVALID_VALUE)
    version = row.source_ts_ms if row.source_ts_ms is not None else (batch.timestamp_ms(i) or event_ts_ms)
    return (
        i,
        op,
        row.id,
        content_id,
        user_id,
        row.event_type,
        event_ts_ms,
        iso_ms(event_ts_ms),
        row.duration_ms,
        row.device,
        max(int(version), 0),
    )


@dataclass(slots=True)
class EngagementColumns:
    """Decoded ``engagement_events`` rows as columns, in batch order (the fields of :data:`EngagementRow`)."""

    index: Sequence[int]
    ops: list[str]
    ids: list[int]
    content_ids: list[str]
    user_ids: list[str | None]
    event_types: list[str]
    event_ts_ms: list[int]
    event_ts: list[str]
    durations: list[int | None]
    devices: list[str | None]
    versions_ms: list[int]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_rows(cls, rows: Sequence[EngagementRow]) -> EngagementColumns:
        if not rows:
            return cls([], [], [], [], [], [], [], [], [], [], [])
        index, ops, ids, cids, uids, types, ts_ms, ts, durations, devices, versions = (
            list(column) for column in zip(*rows, strict=True)
        )
        return cls(index, ops, ids, cids, uids, types, ts_ms, ts, durations, devices, versions)

    def rows(self) -> list[EngagementRow]:
        return list(
            zip(
                self.index,
                self.ops,
                self.ids,
                self.content_ids,
                self.user_ids,
                self.event_types,
                self.event_ts_ms,
                self.event_ts,
                self.durations,
                self.devices,
                self.versions_ms,
                strict=True,
            )
        )


@dataclass(slots=True)
class DecodedEngagements:
    """A decoded ``engagement_events.flat`` batch: rows in batch order, dead letters, tombstone count."""

    columns: EngagementColumns
    dead: list[DeadLetter]
    tombstones: int

    @property
    def rows(self) -> list[EngagementRow]:
        return self.columns.rows()


def decode_engagements(batch: TriggerBatch) -> DecodedEngagements:
    """Decode every record of a batch; bad ones become dead letters, tombstones are counted.

    A batch of well-formed records (the usual case) is decoded column by column by :func:`_decode_clean`;
    any other batch record by record: rows that pass the fast checks are built inline, any other row goes
    through :func:`_row`, as do the rows of a batch whose uuids are not all canonical, so the result equals
    :func:`decode_engagement`'s either way.
    """
    clean = _decode_clean(batch)
    if clean is not None:
        return clean
    rows: list[EngagementRow] = []
    dead: list[tuple[int, DeadLetter]] = []
    slow: list[tuple[int, _EngagementRow]] = []
    tombstones = 0
    decode = _ENGAGEMENT_DECODER.decode
    seconds = _SECOND_MS
    millis_of = _MILLIS
    fast_ops = _FAST_OPS
    for i, value in enumerate(batch.values):
        if value is None:
            tombstones += 1
            continue
        try:
            row = decode(value)
        except msgspec.ValidationError as exc:
            error = _classify(exc)
            dead.append((i, DeadLetter(record=batch.record(i), reason=error.reason, kind=error.kind)))
            continue
        except msgspec.DecodeError as exc:
            reason = f"invalid JSON: {exc}"
            dead.append((i, DeadLetter(record=batch.record(i), reason=reason, kind=KIND_INVALID_JSON)))
            continue
        ts = row.event_ts
        op = row.op
        if type(ts) is str and len(ts) == 24 and row.deleted is None and op in fast_ops:
            base = seconds.get(ts[:19])
            millis = millis_of.get(ts[20:23])
            if base is not None and millis is not None and ts[23] == "Z" and ts[19] == ".":
                version = row.source_ts_ms
                if version is None:
                    version = batch.timestamp_ms(i) or base + millis
                rows.append(
                    (
                        i,
                        op,
                        row.id,
                        row.content_id,
                        row.user_id,
                        row.event_type,
                        base + millis,
                        ts,
                        row.duration_ms,
                        row.device,
                        version if version > 0 else 0,
                    )
                )
                continue
        slow.append((i, row))
    if rows:
        ids = [r[3] for r in rows]
        ids.extend(r[4] for r in rows if r[4] is not None)
        if not _all_canonical_uuids(ids):
            checked = _CANONICAL_UUID
            passed = [r for r in rows if checked(r[3]) and (r[4] is None or checked(r[4]))]
            if len(passed) < len(rows):
                kept = {r[0] for r in passed}
                slow.extend((r[0], decode(cast(bytes, batch.values[r[0]]))) for r in rows if r[0] not in kept)
                rows = passed
    if slow:
        for i, row in slow:
            try:
                rows.append(_row(batch, i, row))
            except BadInputError as exc:
                dead.append((i, DeadLetter(record=batch.record(i), reason=exc.reason, kind=exc.kind)))
        rows.sort(key=_first)
        dead.sort(key=_first)
    return DecodedEngagements(
        columns=EngagementColumns.from_rows(rows), dead=[d for _, d in dead], tombstones=tombstones
    )


def _not_deleted(flag: str | bool | None) -> bool:
    return flag is None or flag is False or (type(flag) is str and flag.lower() != "true")


def _decode_clean(batch: TriggerBatch) -> DecodedEngagements | None:
    """The columns of a batch whose every record passes the fast checks, else ``None``.

    The checks, for the whole batch at once: every record decodes, none is a tombstone, every ``__op`` is
    one of ``c u r d`` as is and no ``__deleted`` flag says true, every ``event_ts`` is a canonical
    ``YYYY-MM-DDTHH:MM:SS.mmmZ`` text (as :func:`iso_ms` writes it) of 1970 or later, every uuid is canonical.
    Those are exactly the rows :func:`_row` would return unchanged, so the result is the general path's.
    """
    values = batch.values
    n = len(values)
    if not n or None in values:
        return None
    decode = _ENGAGEMENT_DECODER.decode
    try:
        structs: list[_EngagementRow] = [decode(cast(bytes, value)) for value in values]
    except msgspec.DecodeError:  # ValidationError included
        return None
    if not all(_not_deleted(flag) for flag in {s.deleted for s in structs}):
        return None
    ops = [s.op for s in structs]
    if not _FAST_OPS.issuperset(ops):
        return None
    texts = [s.event_ts for s in structs]
    if {type(t) for t in texts} != {str}:
        return None
    stamps = cast(list[str], texts)
    if {len(t) for t in stamps} != {24}:
        return None
    joined = "".join(stamps)
    if joined[19::24] != "." * n or joined[23::24] != "Z" * n:
        return None
    get_millis = _MILLIS.get
    millis = [get_millis(t[20:23]) for t in stamps]
    if None in millis:
        return None
    get_second = _SECOND_MS.get
    seconds = [get_second(t[:19]) for t in stamps]
    if None in seconds:
        for i, second in enumerate(seconds):
            if second is None:
                value = iso_timestamp_ms(stamps[i])
                if value is None or not 0 <= value < _MAX_TS_MS or iso_ms(value) != stamps[i]:
                    return None
                seconds[i] = value - cast(int, millis[i])
    ts_ms = [cast(int, s) + cast(int, m) for s, m in zip(seconds, millis, strict=True)]
    content_ids = [s.content_id for s in structs]
    user_ids = [s.user_id for s in structs]
    if not _all_canonical_uuids(content_ids + [u for u in user_ids if u is not None]):
        return None
    sources = [s.source_ts_ms for s in structs]
    if None in sources:
        timestamp_ms = batch.timestamp_ms
        sources = [v if v is not None else (timestamp_ms(i) or ts_ms[i]) for i, v in enumerate(sources)]
    versions = [v if v > 0 else 0 for v in cast(list[int], sources)]
    columns = EngagementColumns(
        index=range(n),
        ops=ops,
        ids=[s.id for s in structs],
        content_ids=content_ids,
        user_ids=user_ids,
        event_types=[s.event_type for s in structs],
        event_ts_ms=ts_ms,
        event_ts=stamps,
        durations=[s.duration_ms for s in structs],
        devices=[s.device for s in structs],
        versions_ms=versions,
    )
    return DecodedEngagements(columns=columns, dead=[], tombstones=0)


def _first(item: tuple[int, Any] | EngagementRow) -> int:
    return item[0]


def decode_engagement(record: RawRecord) -> EngagementChange | None:
    """One ``engagement_events.flat`` record; ``None`` for a tombstone. Raises :class:`BadInputError`."""
    if record.value is None:
        return None
    row: _EngagementRow = _decode(_ENGAGEMENT_DECODER, record.value)
    _, op, id_, content_id, user_id, event_type, event_ts_ms, _, duration_ms, device, version_ms = _row(
        TriggerBatch.from_records([record]), 0, row
    )
    return EngagementChange(
        record=record,
        op=op,
        id=id_,
        content_id=content_id,
        user_id=user_id,
        event_type=event_type,
        event_ts_ms=event_ts_ms,
        duration_ms=duration_ms,
        device=device,
        version_ms=version_ms,
    )


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
    row: _ContentRow = _decode(_CONTENT_DECODER, record.value)
    op = _op(row.op, row.deleted)
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
