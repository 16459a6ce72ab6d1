"""Debezium ``ExtractNewRecordState`` rows of ``content.flat`` and ``engagement_events.flat``: their wire shape,
ops, deletes, keys and the kinds of bad input.

The earlier connector (``unwrap`` with ``add.fields=op,table,source.ts_ms``) writes flat JSON rows of the
Postgres tables with three extra fields: ``__op`` (``c`` create, ``u`` update, ``r`` snapshot read, ``d``
delete), ``__table`` and ``__source_ts_ms``. Keys come as ``{"id": "<uuid>"}`` (content), a bare uuid or a
JSON-quoted uuid (engagement, keyed by ``content_id``); all three are accepted. A tombstone is a record with
no value; ``__op = d`` records carry the deleted row (``delete.handling.mode=rewrite``).

The engagement wire struct is built from the record's fields (:data:`~shared.engagement.records.FIELDS`);
what a decoded value becomes is the decoders' business (:mod:`~shared.engagement.decode_rows`,
:mod:`~shared.engagement.decode_columns`). Nothing here touches a store.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal

import msgspec

from shared.engagement.records import FIELDS, NonNegInt32
from shared.errors import BadInputError

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

# The Debezium fields of every flat row, as ``(attribute, type, default)``.
_DEBEZIUM_FIELDS: list[tuple[str, Any, Any]] = [
    ("op", str, msgspec.field(default="c", name="__op")),
    ("source_ts_ms", int | None, msgspec.field(default=None, name="__source_ts_ms")),
    ("deleted", str | bool | None, msgspec.field(default=None, name="__deleted")),
]

# An ``engagement_events`` row: the record's fields (uuids and the event time are checked after decoding)
# and the Debezium fields. Attributes are read by name (``op``, ``source_ts_ms``, ``deleted`` and each
# field of :data:`~shared.engagement.records.FIELDS`).
_RECORD_FIELDS: list[tuple[str, Any] | tuple[str, Any, Any]] = [
    (f.name, f.wire, None) if f.optional else (f.name, f.wire) for f in FIELDS
]
EngagementWire: type[msgspec.Struct] = msgspec.defstruct(
    "EngagementWire",
    [*_RECORD_FIELDS, *_DEBEZIUM_FIELDS],
    kw_only=True,
    gc=False,
)


class ContentWire(msgspec.Struct):
    id: uuid.UUID
    title: str | None = None
    slug: str | None = None
    content_type: Literal["podcast", "newsletter", "video"] | None = None
    length_seconds: NonNegInt32 | None = None
    publish_ts: str | int | None = None
    op: str = msgspec.field(default="c", name="__op")
    source_ts_ms: int | None = msgspec.field(default=None, name="__source_ts_ms")
    deleted: str | bool | None = msgspec.field(default=None, name="__deleted")


ENGAGEMENT_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(EngagementWire)
CONTENT_DECODER = msgspec.json.Decoder(ContentWire)


def classify(exc: msgspec.ValidationError) -> BadInputError:
    """The bad-input kind of a wire validation error."""
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


def decode_value(decoder: msgspec.json.Decoder[Any], value: bytes) -> Any:
    """One record value through a wire decoder. Raises :class:`BadInputError`."""
    try:
        return decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise classify(exc) from None
    except msgspec.DecodeError as exc:
        raise BadInputError(f"invalid JSON: {exc}", kind=KIND_INVALID_JSON) from None


def parse_op(raw_op: str, deleted_flag: str | bool | None) -> str:
    """The row's op, ``d`` when the ``__deleted`` flag says so. Raises :class:`BadInputError`."""
    op = raw_op.lower() if raw_op else "c"
    if op not in OPS:
        raise BadInputError(f"unknown __op {raw_op!r}: expected one of c, u, r, d", kind=KIND_INVALID_VALUE)
    if deleted_flag is True or (isinstance(deleted_flag, str) and deleted_flag.lower() == "true"):
        return "d"
    return op


def not_deleted(flag: str | bool | None) -> bool:
    """Whether a ``__deleted`` flag leaves the op as it is."""
    return flag is None or flag is False or (type(flag) is str and flag.lower() != "true")


CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_HEX_DIGITS = str.maketrans("", "", "0123456789abcdef")


def canonical_uuid(text: str, field: str) -> str:
    """``text`` as a lowercase hyphenated uuid (what ``str(uuid.UUID)`` gives); :class:`BadInputError` if none."""
    if CANONICAL_UUID(text):
        return text
    try:
        return str(msgspec.convert(text, uuid.UUID))
    except msgspec.ValidationError:
        raise BadInputError(f"Invalid UUID - at `$.{field}`", kind=KIND_INVALID_VALUE) from None


def all_canonical_uuids(texts: list[str]) -> bool:
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
