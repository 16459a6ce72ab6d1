"""The Kafka trigger batch: what the functions receive, as columns, with every record's position.

Records reach the functions either as raw values (``dataType: binary``) or wrapped by the Kafka extension in
its event envelope (``{"Offset", "Partition", "Topic", "Timestamp", "Key", "Value", "Headers"}``, which
the extension produces for string-typed values); both are unwrapped here. The key, topic, partition and
offset are read from the event and, where the Python binding left them empty (a known bug leaves ``key`` as
``None`` in batch mode), from the batch metadata arrays. A batch whose records cannot all be positioned (topic,
partition and offset), or whose metadata is needed but unreadable, raises :class:`BatchMetadataError`: without
offsets the Redis watermark could not recognise a redelivery, so such a batch is never applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from shared.engagement.timestamps import parse_timestamp_ms
from shared.errors import TerminalError


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


class _Envelope(msgspec.Struct):
    Value: str | None = None
    Key: str | None = None
    Offset: int | None = None
    Partition: int | None = None
    Topic: str | None = None
    Timestamp: str | None = None


_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)
_ENVELOPE_PREFIX = b'{"Offset":'


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
