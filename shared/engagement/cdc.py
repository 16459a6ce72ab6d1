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
``None`` in batch mode), from the batch metadata arrays.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

import msgspec

from shared.errors import BadInputError

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


class _EngagementRow(msgspec.Struct):
    id: int
    content_id: uuid.UUID
    event_type: Literal["play", "pause", "finish", "click"]
    event_ts: str | int
    user_id: uuid.UUID | None = None
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
    """A metadata array as a list, whatever form the worker gave it (JSON text or a protobuf collection)."""
    if not metadata:
        return None
    value = metadata.get(name)
    if value is None:
        return None
    if isinstance(value, str | bytes):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None
    if isinstance(value, list):
        return value
    for attr in ("sint64", "string", "bytes", "double"):
        items = getattr(value, attr, None)
        if items is not None:
            return list(items)
    return None


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


def _header_list(raw: object) -> list[Any]:
    return raw if isinstance(raw, list) else []


def records_from_events(events: Sequence[KafkaEventLike]) -> list[RawRecord]:
    """Turn a trigger batch into :class:`RawRecord` values, unwrapping extension envelopes.

    Falls back to the batch metadata arrays (``KeyArray``, ``TopicArray``, ``PartitionArray``,
    ``OffsetArray``, ``TimestampArray``) for fields the binding left empty. An offset that is still
    unknown is ``-1``: such records are never skipped by the Redis watermark (see ``leaderboard``).
    """
    if not events:
        return []
    metadata = None
    try:
        metadata = events[0].metadata
    except (ValueError, TypeError, KeyError):  # header parsing errors in some binding versions
        metadata = None
    keys = _meta_list(metadata, "KeyArray")
    topics = _meta_list(metadata, "TopicArray")
    partitions = _meta_list(metadata, "PartitionArray")
    offsets = _meta_list(metadata, "OffsetArray")
    timestamps = _meta_list(metadata, "TimestampArray")
    n = len(events)

    def at(values: list[Any] | None, i: int) -> Any:
        return values[i] if values is not None and len(values) == n else None

    records: list[RawRecord] = []
    for i, event in enumerate(events):
        body = event.get_body()
        key = event.key if event.key is not None else at(keys, i)
        topic = event.topic if event.topic is not None else at(topics, i)
        partition = event.partition if event.partition is not None else at(partitions, i)
        offset = event.offset if event.offset is not None else at(offsets, i)
        ts_raw = event.timestamp if event.timestamp is not None else at(timestamps, i)
        value: bytes | None = body if body else None
        if value is not None and value.startswith(_ENVELOPE_PREFIX):
            try:
                envelope = _ENVELOPE_DECODER.decode(value)
            except msgspec.DecodeError:
                envelope = None
            if envelope is not None:
                value = envelope.Value.encode("utf-8") if envelope.Value else None
                key = key if key is not None else envelope.Key
                topic = topic if topic is not None else envelope.Topic
                partition = partition if partition is not None else envelope.Partition
                offset = offset if offset is not None else envelope.Offset
                ts_raw = ts_raw if ts_raw is not None else envelope.Timestamp
        records.append(
            RawRecord(
                topic=str(topic) if topic is not None else "",
                partition=int(partition) if partition is not None else -1,
                offset=int(offset) if offset is not None else -1,
                key=key if isinstance(key, str) or key is None else str(key),
                value=value,
                timestamp_ms=parse_timestamp_ms(ts_raw),
            )
        )
    return records


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


def decode_engagement(record: RawRecord) -> EngagementChange | None:
    """One ``engagement_events.flat`` record; ``None`` for a tombstone. Raises :class:`BadInputError`."""
    if record.value is None:
        return None
    row: _EngagementRow = _decode(_ENGAGEMENT_DECODER, record.value)
    op = _op(row.op, row.deleted)
    event_ts_ms = parse_timestamp_ms(row.event_ts)
    if event_ts_ms is None:
        raise BadInputError(f"event_ts {row.event_ts!r} is not an ISO 8601 timestamp", kind=KIND_WRONG_TYPE)
    if not 0 <= event_ts_ms < 253402300800000:
        raise BadInputError(f"event_ts {row.event_ts!r} is out of range", kind=KIND_INVALID_VALUE)
    version = row.source_ts_ms if row.source_ts_ms is not None else (record.timestamp_ms or event_ts_ms)
    return EngagementChange(
        record=record,
        op=op,
        id=row.id,
        content_id=str(row.content_id),
        user_id=str(row.user_id) if row.user_id is not None else None,
        event_type=row.event_type,
        event_ts_ms=event_ts_ms,
        duration_ms=row.duration_ms,
        device=row.device,
        version_ms=max(int(version), 0),
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
