"""Turn one Event Hubs batch into columns, once, and sort out the events that can never load.

The fast path touches each event only to read its attributes into lists; validation runs on whole
columns (one UTF-8 check and one size check per batch). Per-event checks run only for a batch that
contains a bad event, to find which one and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.errors import TerminalError
from shared.settings import BodyFormat, EventHubMapping

_EMPTY_JSON_BYTES = b"{}"
_encoder = msgspec.json.Encoder(enc_hook=str)


@dataclass(frozen=True, slots=True)
class Partition:
    namespace: str
    event_hub: str
    consumer_group: str
    partition_id: str


@dataclass(frozen=True, slots=True)
class BadEvent:
    """An event parked in the dead-letter table: ``index`` into the batch, machine ``kind``, human ``reason``."""

    index: int
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    partition: Partition
    table: pa.Table  # one row per event of the batch, in batch order, body typed per the mapping's format
    raw: pa.Array  # binary bodies, for dead letters
    bad: tuple[BadEvent, ...]  # bad events found without a database (size, UTF-8)

    @property
    def size(self) -> int:
        return int(self.table.num_rows)


class TriggerMetadata:
    """The batch's trigger metadata that StreamDuck uses.

    The host sends the per-event system and application properties as two JSON arrays. They are read from
    the raw datums with msgspec, and only as far as needed: application properties are split into each
    event's JSON text without building Python objects, and system properties are checked against the
    keys that already have their own columns (the common case) while their enqueued times are collected.
    ``EventHubEvent.metadata`` would instead parse every datum with the standard JSON parser, including
    four per-event arrays that repeat what the events' own attributes hold.
    """

    __slots__ = ("partition_context", "properties", "system")

    def __init__(self, event: func.EventHubEvent) -> None:
        raw = getattr(event, "_EventHubEvent__trigger_metadata", None)
        if isinstance(raw, Mapping):
            context = raw.get("PartitionContext")
            self.partition_context: Any = None if context is None else context.python_value
            self.properties: Any = _json_text(raw.get("PropertiesArray"))
            self.system: Any = _json_text(raw.get("SystemPropertiesArray"))
        else:
            metadata = event.metadata or {}
            self.partition_context = metadata.get("PartitionContext")
            self.properties = metadata.get("PropertiesArray")
            self.system = metadata.get("SystemPropertiesArray")


def _json_text(datum: Any) -> Any:
    """The datum's JSON text (str or bytes) when it is a JSON datum; its Python value otherwise."""
    if datum is None:
        return None
    if datum.type == "json" and isinstance(datum.value, str | bytes):
        return datum.value
    return datum.python_value


def _partition_of(context: Any, mapping: EventHubMapping, namespace: str) -> Partition:
    context = context if isinstance(context, Mapping) else {}
    partition_id = context.get("PartitionId")
    if partition_id is None:
        # Without the partition the batch cannot be deduplicated. This is a host problem, not bad input:
        # raise so the retry policy holds the partition and the error is visible.
        raise TerminalError(
            "the batch has no PartitionContext.PartitionId in its trigger metadata; "
            "StreamDuck needs the Event Hubs extension v5 or later (extension bundle [4.*, 5.0.0))"
        )
    return Partition(
        namespace=str(context.get("FullyQualifiedNamespace") or namespace),
        event_hub=str(context.get("EventHubName") or mapping.event_hub),
        consumer_group=str(context.get("ConsumerGroup") or mapping.consumer_group),
        partition_id=str(partition_id),
    )


class _ColumnsOnly(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One event's system properties when every key has its own column (what the host sends for Event
    Hubs). Any other key (IoT Hub's device id, for example) fails the decode, and the general path keeps it."""

    EnqueuedTimeUtc: str | None = None
    SequenceNumber: Any = None
    Offset: Any = None
    PartitionKey: Any = None
    x_sequence_number: Any = msgspec.field(default=None, name="x-opt-sequence-number")
    x_offset: Any = msgspec.field(default=None, name="x-opt-offset")
    x_enqueued_time: Any = msgspec.field(default=None, name="x-opt-enqueued-time")
    x_partition_key: Any = msgspec.field(default=None, name="x-opt-partition-key")


# System properties that already have their own column are not repeated in ``system_properties``.
_SYSTEM_IN_COLUMNS = frozenset(f.encode_name for f in msgspec.structs.fields(_ColumnsOnly))
_columns_only = msgspec.json.Decoder(list[_ColumnsOnly])
_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
_any_json = msgspec.json.Decoder()
_NULL = b"null"


def _properties(value: Any, n: int) -> pa.Array:
    """Each event's application properties as JSON text, cut from the host's array without parsing them."""
    if isinstance(value, str | bytes):
        try:
            items = _raw_items.decode(value)
        except msgspec.ValidationError:  # not an array: no per-event properties
            return _json_list(_any_json.decode(value), n)
        if len(items) != n:
            return _empty_json(n)
        texts = _concatenated(items)
        return _as_json(pc.if_else(pc.equal(texts, _NULL), _EMPTY_JSON_BYTES, texts))
    return _json_list(value, n)


def _concatenated(items: list[msgspec.Raw]) -> pa.Array:
    """Binary array of the raw slices, built from one joined buffer and their lengths (no object per item)."""
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, items), dtype=np.int64, count=len(items)), out=offsets[1:])
    data = b"".join(items)
    return pa.Array.from_buffers(
        pa.large_binary(), len(items), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _system_properties(value: Any, n: int) -> tuple[pa.Array, pa.Array | None]:
    """``system_properties`` column (keys without a column of their own), and the enqueued times when the
    host's text could be read as timestamps in one vectorized cast (else ``None``: the events' own
    ``enqueued_time`` attributes are used)."""
    if isinstance(value, str | bytes):
        try:
            items = _columns_only.decode(value)
        except msgspec.ValidationError:
            return _json_list(_any_json.decode(value), n, drop=_SYSTEM_IN_COLUMNS), None
        if len(items) != n:
            return _empty_json(n), None
        return _empty_json(n), _timestamps([i.EnqueuedTimeUtc for i in items])
    return _json_list(value, n, drop=_SYSTEM_IN_COLUMNS), None


_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TIMESTAMP_NS = pa.timestamp("ns", tz="UTC")


def _timestamps(texts: list[str | None]) -> pa.Array | None:
    """ISO 8601 texts with a zone (the host's ``EnqueuedTimeUtc``; .NET may write 7 fractional digits) as
    microsecond UTC timestamps, or ``None`` when Arrow cannot read them all."""
    try:
        return pa.array(texts, pa.string()).cast(_TIMESTAMP_NS).cast(_TIMESTAMP, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _json_list(items: Sequence[Any] | None, n: int, *, drop: frozenset[str] = frozenset()) -> pa.Array:
    """One JSON text per event; ``{}`` where there is nothing (the common case costs no encoding)."""
    if not items or len(items) != n or not any(items):
        return _empty_json(n)
    if drop:
        if all(isinstance(i, dict) for i in items) and not set().union(*items) - drop:
            return _empty_json(n)  # only keys that have their own columns: no per-event work
        items = [{k: v for k, v in i.items() if k not in drop} if isinstance(i, dict) else i for i in items]
    return _as_json(pa.array([_encoder.encode(i) if i else _EMPTY_JSON_BYTES for i in items], pa.binary()))


def _empty_json(n: int) -> pa.Array:
    return _as_json(pa.array([_EMPTY_JSON_BYTES] * n, pa.binary()))


_JSON = pa.json_(pa.large_string())


def _as_json(texts: pa.Array) -> pa.Array:
    """UTF-8 checked text typed as Arrow's JSON extension type, which DuckDB reads as its JSON type without
    parsing it again. Only for text that is JSON by construction (slices of the host's JSON, msgspec's output):
    DuckDB does not validate it."""
    return pa.ExtensionArray.from_storage(_JSON, texts.cast(pa.large_string()))


def _offsets(values: list[Any]) -> pa.Array:
    """Offsets as text (the worker hands them over as integers; newer hosts may send opaque strings)."""
    if all(type(v) is int for v in values):
        try:
            return pa.array(values, pa.int64()).cast(pa.string())
        except OverflowError:
            pass
    try:
        return pa.array(values, pa.string())  # texts (and None), converted without a Python loop
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _find_bad(bodies: Sequence[bytes], fmt: BodyFormat, max_bytes: int) -> list[BadEvent]:
    bad: list[BadEvent] = []
    check_utf8 = fmt is not BodyFormat.BINARY
    for i, body in enumerate(bodies):
        if len(body) > max_bytes:
            bad.append(
                BadEvent(
                    i,
                    "oversized",
                    f"body is {len(body)} bytes, over the limit of {max_bytes} (STREAMDUCK_MAX_EVENT_BYTES)",
                )
            )
        elif check_utf8:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(BadEvent(i, "not_utf8", f"body is not UTF-8: {exc.reason} at byte {exc.start}"))
    return bad


def decode_batch(
    events: Sequence[func.EventHubEvent], mapping: EventHubMapping, *, namespace: str, max_event_bytes: int
) -> DecodedBatch:
    """Columns for ``events`` (one partition, in order). Raises only for host-level problems."""
    n = len(events)
    metadata = TriggerMetadata(events[0])
    partition = _partition_of(metadata.partition_context, mapping, namespace)

    bodies = [e.get_body() for e in events]
    sequence_numbers = pa.array([e.sequence_number for e in events], pa.int64())
    raw = pa.array(bodies, pa.binary())

    if sequence_numbers.null_count:
        # Event Hubs always assigns sequence numbers; without them nothing can be deduplicated. Raise (host
        # problem, not bad input) so the retry policy holds the partition and the error is visible.
        raise TerminalError("an event of the batch has no sequence number in its trigger metadata")
    oversized = pc.any(pc.greater(pc.binary_length(raw), max_event_bytes)).as_py()
    bad: list[BadEvent] = []
    body_col: pa.Array
    if mapping.body_format is BodyFormat.BINARY:
        body_col = raw
    else:
        try:
            body_col = raw.cast(pa.string())
        except pa.ArrowInvalid:
            body_col = pa.array([b.decode("utf-8", errors="replace") for b in bodies], pa.string())
            bad = _find_bad(bodies, mapping.body_format, max_event_bytes)
    if oversized and not bad:
        bad = _find_bad(bodies, mapping.body_format, max_event_bytes)
    if mapping.body_format is BodyFormat.JSON and not mapping.json_lenient:
        bad = _strict_json(bodies, bad)

    system, enqueued = _system_properties(metadata.system, n)
    if enqueued is None:
        enqueued = pa.array([e.enqueued_time for e in events], _TIMESTAMP)
    table = pa.table(
        {
            "body": body_col,
            "sequence_number": sequence_numbers,
            "event_offset": _offsets([e.offset for e in events]),
            "enqueued_time": enqueued,
            "partition_key": pa.array([e.partition_key for e in events], pa.string()),
            "properties": _properties(metadata.properties, n),
            "system_properties": system,
        }
    )
    return DecodedBatch(partition=partition, table=table, raw=raw, bad=tuple(bad))


_strict_batch = msgspec.json.Decoder(list[msgspec.Raw])
_strict_one = msgspec.json.Decoder(msgspec.Raw)


def _strict_json(bodies: Sequence[bytes], bad: list[BadEvent]) -> list[BadEvent]:
    """``bad`` plus every body RFC 8259 rejects (``NaN``, ``Infinity``, trailing commas...) as ``invalid_json``.

    DuckDB's JSON parser accepts these, so the column alone cannot tell. The batch is checked in one call: the
    bodies joined as one JSON array, parsed (not built) by msgspec's strict parser; the array must hold one
    value per body. Only a batch that fails is checked body by body, to find which and why.
    """
    known = {b.index for b in bad}
    good = [b for i, b in enumerate(bodies) if i not in known] if known else bodies
    if not good:
        return bad
    try:
        if len(_strict_batch.decode(b"[" + b",".join(good) + b"]")) == len(good):
            return bad
    except msgspec.DecodeError:
        pass
    found = list(bad)
    for i, body in enumerate(bodies):
        if i not in known:
            try:
                _strict_one.decode(body)
            except msgspec.DecodeError as exc:
                found.append(BadEvent(i, "invalid_json", f"invalid JSON (RFC 8259): {exc}"))
    return sorted(found, key=lambda b: b.index)


def json_error_reason(body: bytes) -> str:
    """Human-readable reason a body is not valid JSON (computed only for the few rejected events)."""
    try:
        _strict_one.decode(body)
    except msgspec.DecodeError as exc:
        return f"invalid JSON: {exc}"
    return "invalid JSON: rejected by DuckDB's JSON parser"
