"""Row-by-row enrichment: :class:`EnrichedBatch` enriches one event at a time, encoding each output envelope
with msgspec. It re-enriches stored unknown-content events and is the reference the column path
(:mod:`~shared.engagement.enrich_columns`) equals, value for value and byte for byte.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

from shared.engagement.enriched import (
    ENRICHED_COLUMN_NAMES,
    ENRICHED_COLUMNS,
    HEADER_EVENT_ID,
    HEADER_EVENT_VERSION,
    decimal_array,
    engagement_centis,
    engagement_pct_centis,
    enriched_dedup_token,
    format_centis,
    row_version,
    version_bytes,
)
from shared.engagement.records import EVENT_TS, FIELD_NAMES, ContentInfo
from shared.engagement.timestamps import iso_ms


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


_encode = msgspec.json.Encoder().encode
# The record's fields read from an event, with the event time as epoch ms (``event_ts_ms``).
_READ = tuple(f"{name}_ms" if name == EVENT_TS else name for name in FIELD_NAMES)


class EnrichedBatch:
    """Enriched rows of one batch, kept as columns (ClickHouse) and JSON envelopes (the enriched topic)."""

    __slots__ = ("_cols", "envelopes", "out_topic", "unknown")

    def __init__(self, out_topic: str) -> None:
        self.out_topic = out_topic
        self._cols: dict[str, list[Any]] = {name: [] for name in ENRICHED_COLUMN_NAMES}
        self.envelopes: list[str] = []
        self.unknown = 0

    def __len__(self) -> int:
        return len(self._cols["id"])

    def add(
        self,
        event: object,
        *,
        content: ContentInfo | None,
        engagement_version_ms: int,
        deleted: bool,
        source_topic: str,
        source_partition: int,
        source_offset: int,
    ) -> None:
        """Enrich one event: anything with the record's fields as attributes (an
        :class:`~shared.engagement.records.EngagementRow`, a stored unknown-content event), the event time as
        ``event_ts_ms``."""
        fields: dict[str, Any] = {
            name: getattr(event, attr) for name, attr in zip(FIELD_NAMES, _READ, strict=True)
        }
        event_ts_ms: int = fields[EVENT_TS]
        duration_ms: int | None = fields["duration_ms"]
        content_id: str = fields["content_id"]
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
        columns = {
            **fields,
            "content_known": known,
            "content_type": ctype,
            "length_seconds": length,
            "title": title,
            "engagement_seconds": secs,
            "engagement_pct": pct,
            "source_topic": source_topic,
            "source_partition": source_partition,
            "source_offset": source_offset,
            "version": version,
            "is_deleted": 1 if deleted else 0,
        }
        for name, values in self._cols.items():
            values.append(columns[name])
        event_ts = iso_ms(event_ts_ms)
        value = _encode(
            {
                **fields,
                EVENT_TS: event_ts,
                "content_known": known,
                "content_type": ctype,
                "length_seconds": length,
                "title": title,
                "engagement_seconds": format_centis(secs),
                "engagement_pct": format_centis(pct),
                "deleted": deleted,
                "version": version,
            }
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
                    Headers=[
                        _Header(HEADER_EVENT_ID, str(fields["id"])),
                        _Header(HEADER_EVENT_VERSION, str(version)),
                    ],
                )
            ).decode()
        )

    def column(self, name: str) -> list[Any]:
        return self._cols[name]

    def to_arrow(self) -> pa.Table:
        arrays: list[pa.Array] = []
        for name, dtype in ENRICHED_COLUMNS:
            values = self._cols[name]
            if name in ("engagement_seconds", "engagement_pct"):
                arrays.append(decimal_array(values))
            elif name == "version":
                arrays.append(pa.array([version_bytes(v) for v in values], dtype))
            else:
                arrays.append(pa.array(values, dtype))
        return pa.Table.from_arrays(arrays, names=list(ENRICHED_COLUMN_NAMES))

    def dedup_token(self, scope: str) -> str:
        """A deterministic ``insert_deduplication_token``: the same ids and versions give the same token."""
        return enriched_dedup_token(scope, self._cols["id"], self._cols["version"])
