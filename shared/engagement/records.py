"""What the pipeline's records are: the engagement record's fields (defined once, here), content, dead letters.

:class:`EngagementRow` is the one definition of an engagement record. Its annotated fields are the record's
fields: each is read from the Debezium row under its name, kept on the row and in :class:`EngagementColumns`
under that name, and written under that name to the ClickHouse column of the same name (with the Arrow type
given) and to the enriched topic's JSON value (in the way its :class:`Kind` says). :data:`FIELDS` reads them
from the class; both decoders and both enrichers take the fields from it, so a new field is one line here
(plus its ClickHouse column). The other fields of the row (position, op, epoch time, version) are the
pipeline's own.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, get_args, get_origin, get_type_hints

import msgspec
import pyarrow as pa

from shared.engagement.batch import RawRecord

EVENT_TYPES: tuple[str, ...] = ("play", "pause", "finish", "click")
CONTENT_TYPES: tuple[str, ...] = ("podcast", "newsletter", "video")

INT32_MAX = 2**31 - 1
NonNegInt32 = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]


class Kind(enum.Enum):
    """How a record field is checked by the decoders and written to the enriched topic's JSON value."""

    NUMBER = "number"  # a JSON number (or null)
    UUID = "uuid"  # a uuid, canonicalised (lowercase, hyphenated) by the decoders; a JSON string
    LABEL = "label"  # a text from a fixed vocabulary its wire type checks; a JSON string, never escaped
    TEXT = "text"  # free text; a JSON string, encoded and escaped
    TIMESTAMP = (
        "timestamp"  # the event time: the row holds its canonical text and, as ``<name>_ms``, epoch ms
    )


@dataclass(frozen=True, slots=True)
class Spec:
    """The annotation of a record field: its ClickHouse column's Arrow type, its kind and, when it differs
    from the field's Python type, the type msgspec decodes it as from the Debezium row."""

    arrow: pa.DataType
    kind: Kind
    wire: Any = None


class EngagementRow(NamedTuple):
    """One decoded ``engagement_events`` row. ``version_ms`` orders changes of the same row."""

    position: int  # index of the record in the trigger batch
    op: str  # c, u, r or d
    event_ts_ms: int
    version_ms: int
    # The record's fields, in the order of the ClickHouse columns and the enriched JSON value.
    id: Annotated[int, Spec(pa.int64(), Kind.NUMBER)]
    content_id: Annotated[str, Spec(pa.string(), Kind.UUID)]
    user_id: Annotated[str | None, Spec(pa.string(), Kind.UUID)]
    event_type: Annotated[
        str, Spec(pa.string(), Kind.LABEL, wire=Literal["play", "pause", "finish", "click"])
    ]
    event_ts: Annotated[str, Spec(pa.timestamp("ms", tz="UTC"), Kind.TIMESTAMP, wire=str | int)]
    duration_ms: Annotated[int | None, Spec(pa.int32(), Kind.NUMBER, wire=NonNegInt32 | None)]
    device: Annotated[str | None, Spec(pa.string(), Kind.TEXT)]

    @property
    def deleted(self) -> bool:
        return self.op == "d"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the engagement record, as :class:`EngagementRow` declares it."""

    name: str  # Debezium column, row attribute, ClickHouse column and JSON key
    arrow: pa.DataType
    kind: Kind
    wire: Any  # the type msgspec decodes from the Debezium row
    optional: bool  # may be null or absent


def _fields() -> tuple[Field, ...]:
    hints = get_type_hints(EngagementRow, include_extras=True)
    fields: list[Field] = []
    for name in EngagementRow._fields:
        specs = [m for m in getattr(hints[name], "__metadata__", ()) if isinstance(m, Spec)]
        if not specs:
            if fields:
                raise TypeError(f"EngagementRow.{name}: the record's fields must come last")
            continue
        python = get_args(hints[name])[0]
        wire = specs[0].wire if specs[0].wire is not None else python
        optional = type(None) in get_args(python)
        if specs[0].kind is Kind.LABEL and not _plain_literal(wire):
            raise TypeError(f"EngagementRow.{name}: a label is decoded as a Literal of plain words")
        fields.append(Field(name, specs[0].arrow, specs[0].kind, wire, optional))
    if [f.name for f in fields if f.kind is Kind.TIMESTAMP] != [EVENT_TS]:
        raise TypeError(f"EngagementRow has one timestamp field, {EVENT_TS}")
    return tuple(fields)


def _plain_literal(wire: Any) -> bool:
    """Whether ``wire`` is a ``Literal`` of words that JSON writes as they are (so never escaped)."""
    values = get_args(wire)
    return get_origin(wire) is Literal and all(isinstance(v, str) and _PLAIN_WORD(v) for v in values)


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_.:-]+").fullmatch
EVENT_TS = "event_ts"
FIELDS: tuple[Field, ...] = _fields()
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
FIELD_BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}
ROW_FIELDS: tuple[str, ...] = EngagementRow._fields


class EngagementColumns:
    """Decoded ``engagement_events`` rows as columns, in batch order: one sequence per :class:`EngagementRow`
    field, by name (``columns["content_id"]``)."""

    __slots__ = ("_columns",)

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        if set(columns) != set(ROW_FIELDS):
            raise ValueError(f"columns {sorted(columns)} are not the fields of EngagementRow")
        self._columns = dict(columns)

    def __getitem__(self, name: str) -> Sequence[Any]:
        return self._columns[name]

    def __len__(self) -> int:
        return len(self._columns["position"])

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]]) -> EngagementColumns:
        """Columns of rows (:class:`EngagementRow` or plain tuples in its order)."""
        if not rows:
            return cls({name: [] for name in ROW_FIELDS})
        return cls(dict(zip(ROW_FIELDS, map(list, zip(*rows, strict=True)), strict=True)))

    def rows(self) -> list[EngagementRow]:
        return list(map(EngagementRow._make, zip(*(self._columns[name] for name in ROW_FIELDS), strict=True)))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that can never be loaded, parked with its raw value, position and reason."""

    record: RawRecord
    reason: str
    kind: str


@dataclass(slots=True)
class DecodedEngagements:
    """A decoded ``engagement_events.flat`` batch: rows in batch order, dead letters, tombstone count."""

    columns: EngagementColumns
    dead: list[DeadLetter]
    tombstones: int

    @property
    def rows(self) -> list[EngagementRow]:
        return self.columns.rows()


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
