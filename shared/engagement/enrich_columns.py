"""Column-by-column enrichment, the hot path: :class:`EnrichedRows` computes the ClickHouse columns in Arrow
and writes the output envelopes with one string template, equal value for value and byte for byte to the
row-by-row enricher (:class:`~shared.engagement.enrich_rows.EnrichedBatch`, tested). Every free-text field
goes through msgspec's encoder, everything else is a number, a canonical uuid or a fixed literal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.engagement.batch import TriggerBatch
from shared.engagement.enriched import (
    ENRICHED_COLUMN_NAMES,
    ENRICHED_TYPES,
    HEADER_EVENT_ID,
    HEADER_EVENT_VERSION,
    PCT_MAX_CENTIS,
    decimal_array,
    dedup_token_of,
    version_array,
    version_texts,
    version_words,
)
from shared.engagement.records import EVENT_TS, FIELD_BY_NAME, FIELDS, ContentInfo, EngagementColumns, Kind

_encode = msgspec.json.Encoder().encode

# The content part of an enriched value, escaped as inside the envelope's ``Value`` string.
_UNKNOWN_BODY = r"\"content_known\":false,\"content_type\":null,\"length_seconds\":null,\"title\":null"
_TEXT_JSON: dict[str, str] = {}


def _escaped_json(value: str | None) -> str:
    """``value`` as JSON, escaped once more as it appears inside a JSON string."""
    return _encode(value).decode().replace("\\", "\\\\").replace('"', '\\"')


def _text_json(text: str) -> str:
    escaped = _escaped_json(text)
    if len(_TEXT_JSON) > 10_000:
        _TEXT_JSON.clear()
    _TEXT_JSON[text] = escaped
    return escaped


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


class EnrichedRows:
    """The hot path's enriched rows of one trigger batch (see
    :func:`~shared.engagement.decode_columns.decode_engagements`).

    Everything is computed column by column in Arrow and numpy, with no per-row Python: content is joined by
    content id (``index_in`` then ``take``), seconds and percent in integer arithmetic, the version from the
    joined content version. The record's fields become columns as :data:`~shared.engagement.records.FIELDS`
    says. The ClickHouse table is ready first, so the insert can start before the envelopes exist;
    :meth:`write_envelopes` then concatenates each envelope from column pieces, with the value already escaped
    as the JSON string it is inside the envelope (the template's quotes are written escaped, every free-text
    field is encoded then escaped, once per distinct value and content). Equal, value for value and byte for
    byte, to :class:`~shared.engagement.enrich_rows.EnrichedBatch` (tested).
    """

    __slots__ = (
        "_arrays",
        "_cols",
        "_deleted",
        "_duration",
        "_id_values",
        "_known",
        "_position",
        "_version_bytes",
        "_version_words",
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
        ids = np.array(columns["id"], dtype=np.int64) if n else np.empty(0, np.int64)
        content_ids = pa.array(columns["content_id"], pa.string())
        position = pc.index_in(content_ids, value_set=pa.array(list(known), pa.string()))
        infos = list(known.values())
        self.unknown = position.null_count
        self._position = position

        def joined(values: list[Any], dtype: pa.DataType) -> pa.Array:
            return pc.take(pa.array(values, dtype), position)

        content_version = joined([i.version for i in infos], pa.int64())
        versions_ms = np.array(columns["version_ms"], dtype=np.int64) if n else np.empty(0, np.int64)
        known_mask = pc.is_valid(position)
        high, low = version_words(
            versions_ms,
            content_version.fill_null(0).to_numpy(),
            known_mask.to_numpy(zero_copy_only=False),
        )
        self._id_values = ids
        self._version_words = (high, low)
        version_column = version_array(high, low)
        self._version_bytes = version_column.buffers()[1]
        length = joined([i.length_seconds for i in infos], pa.int64())
        duration = pa.array(columns["duration_ms"], pa.int64())
        self._duration = duration
        has_duration = duration.is_valid().to_numpy(zero_copy_only=False)
        millis = duration.fill_null(0).to_numpy()
        secs_centis = pa.array((millis + 5) // 10, pa.int64(), mask=~has_duration)
        lengths = length.fill_null(0).to_numpy()
        usable = has_duration & (lengths > 0)
        divisor = np.where(usable, lengths, 1)
        pct_centis = np.minimum((millis * 20 + divisor) // (divisor * 2), PCT_MAX_CENTIS)
        ops = pa.array(columns["op"], pa.string())
        deleted = pc.equal(ops, "d")
        self._deleted = deleted
        if n == len(batch):
            topics, partitions, offsets = batch.topics, batch.partitions, batch.offsets
        else:
            index = columns["position"]
            topics = [batch.topics[i] for i in index]
            partitions = [batch.partitions[i] for i in index]
            offsets = [batch.offsets[i] for i in index]
        # The record's fields: those the enrichment reads are built once, the others from their column.
        built = {
            "id": pa.array(ids, FIELD_BY_NAME["id"].arrow),
            "content_id": content_ids,
            "duration_ms": duration.cast(FIELD_BY_NAME["duration_ms"].arrow),
        }
        arrays: dict[str, pa.Array] = {}
        for f in FIELDS:
            source = f"{f.name}_ms" if f.kind is Kind.TIMESTAMP else f.name
            arrays[f.name] = built[f.name] if f.name in built else pa.array(columns[source], f.arrow)
        types = ENRICHED_TYPES
        arrays.update(
            content_known=known_mask,
            content_type=joined([i.content_type for i in infos], types["content_type"]),
            length_seconds=length.cast(types["length_seconds"]),
            title=joined([i.title for i in infos], types["title"]),
            engagement_seconds=decimal_array(secs_centis),
            engagement_pct=decimal_array(pa.array(pct_centis, pa.int64(), mask=~usable)),
            source_topic=pa.array(topics, types["source_topic"]),
            source_partition=pa.array(partitions, types["source_partition"]),
            source_offset=pa.array(offsets, types["source_offset"]),
            version=version_column,
            is_deleted=deleted.cast(types["is_deleted"]),
        )
        self._arrays = arrays
        self.table = pa.Table.from_arrays(
            [arrays[name] for name in ENRICHED_COLUMN_NAMES], names=list(ENRICHED_COLUMN_NAMES)
        )

    def __len__(self) -> int:
        return len(self._cols)

    @property
    def versions(self) -> list[int]:
        """The row versions as integers (one Python int per row: for checks, not the hot path)."""
        high, low = self._version_words
        return [(int(h) << 64) | int(lo) for h, lo in zip(high, low, strict=True)]

    def to_arrow(self) -> pa.Table:
        return self.table

    def dedup_token(self, scope: str) -> str:
        """The same token :meth:`EnrichedBatch.dedup_token` gives for the same rows."""
        return dedup_token_of(scope, len(self), self._id_values.tobytes(), self._version_bytes.to_pybytes())

    def write_envelopes(self) -> list[str]:
        """The output envelopes (one per row, in order); also kept in :attr:`envelopes`."""
        if self.envelopes or not len(self):
            return self.envelopes
        arrays = self._arrays
        string = pa.string()
        bodies = pa.array([_content_body(info) for info in self._known.values()], string)
        body = pc.fill_null(pc.take(bodies, self._position), _UNKNOWN_BODY)
        ids = pc.cast(arrays["id"], string)
        versions = version_texts(*self._version_words)
        cids = arrays["content_id"]
        event_ts = pa.array(self._cols[EVENT_TS], string)
        topic_json = _encode(self.out_topic).decode()
        pieces = _Pieces(
            f'{{"Offset":-1,"Partition":-1,"Topic":{topic_json},"Timestamp":"',
            event_ts,
            '","Key":"',
            cids,
            r'","Value":"{',
        )
        for at, f in enumerate(FIELDS):
            pieces.literal(("," if at else "") + rf"\"{f.name}\":")
            if f.kind is Kind.TIMESTAMP:
                pieces.quoted(event_ts)
            elif f.kind is Kind.NUMBER:
                pieces.number(ids if f.name == "id" else pc.cast(arrays[f.name], string))
            elif f.kind is Kind.TEXT:
                pieces.add(_texts(arrays[f.name]))
            else:  # UUID and LABEL: canonical or checked texts, written as they are
                pieces.quoted(arrays[f.name])
        pieces.literal(",")
        pieces.add(body)
        pieces.literal(r",\"engagement_seconds\":")
        pieces.quoted(pc.cast(arrays["engagement_seconds"], string))
        pieces.literal(r",\"engagement_pct\":")
        pieces.quoted(pc.cast(arrays["engagement_pct"], string))
        pieces.literal(r",\"deleted\":")
        pieces.add(pc.if_else(self._deleted, "true", "false"))
        pieces.literal(r",\"version\":")
        pieces.add(versions)
        pieces.literal(rf'}}","Headers":[{{"Key":"{HEADER_EVENT_ID}","Value":"')
        pieces.add(ids)
        pieces.literal(rf'"}},{{"Key":"{HEADER_EVENT_VERSION}","Value":"')
        pieces.add(versions)
        pieces.literal('"}]}')
        joined = pc.binary_join_element_wise(*pieces.items, "")
        self.envelopes = cast(list[str], joined.to_pylist())
        return self.envelopes


class _Pieces:
    """The pieces of the envelope template: literal texts (adjacent ones merged) and string columns."""

    __slots__ = ("items",)

    def __init__(self, *items: str | pa.Array) -> None:
        self.items: list[str | pa.Array] = list(items)

    def literal(self, text: str) -> None:
        if self.items and isinstance(self.items[-1], str):
            self.items[-1] += text
        else:
            self.items.append(text)

    def add(self, column: pa.Array) -> None:
        self.items.append(column)

    def number(self, texts: pa.Array) -> None:
        """Numbers as text, ``null`` where missing."""
        self.add(pc.fill_null(texts, "null") if texts.null_count else texts)

    def quoted(self, values: pa.Array) -> None:
        """Texts between escaped quotes, ``null`` where missing."""
        if values.null_count:
            self.add(pc.fill_null(pc.binary_join_element_wise(r"\"", values, r"\"", ""), "null"))
        else:
            self.literal(r"\"")
            self.add(values)
            self.literal(r"\"")


def _texts(values: pa.Array) -> pa.Array:
    """Free texts as JSON escaped inside a JSON string (encoded once per distinct text), ``null`` where missing."""
    encoded = pc.dictionary_encode(values)
    texts = [_TEXT_JSON.get(t) or _text_json(t) for t in cast(list[str], encoded.dictionary.to_pylist())]
    return pc.fill_null(pc.take(pa.array(texts, pa.string()), encoded.indices), "null")
