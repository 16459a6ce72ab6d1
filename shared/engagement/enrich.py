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
"""

from __future__ import annotations

import hashlib
import time
from array import array
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from shared.engagement.cdc import ContentInfo, EngagementChange

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


_SECOND_CACHE: dict[int, str] = {}


def iso_ms(epoch_ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC) of epoch milliseconds."""
    seconds, millis = divmod(epoch_ms, 1000)
    prefix = _SECOND_CACHE.get(seconds)
    if prefix is None:
        if len(_SECOND_CACHE) > 100_000:
            _SECOND_CACHE.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _SECOND_CACHE[seconds] = prefix
    return f"{prefix}.{millis:03d}Z"


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


def decimal_array(centis: list[int | None]) -> pa.Array:
    """A ``decimal128(18, 2)`` Arrow array from values in hundredths, without ``Decimal`` objects."""
    ints = pa.array(centis, pa.int64())
    validity = ints.buffers()[0] if ints.null_count else None
    data = ints.fill_null(0).to_numpy(zero_copy_only=False) if ints.null_count else ints.to_numpy()
    wide = np.empty((len(centis), 2), dtype=np.int64)
    wide[:, 0] = data
    wide[:, 1] = data >> 63
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(centis), [validity, pa.py_buffer(wide.tobytes())])


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

    def add_change(self, change: EngagementChange, content: ContentInfo | None) -> None:
        record = change.record
        self.add(
            id=change.id,
            content_id=change.content_id,
            user_id=change.user_id,
            event_type=change.event_type,
            event_ts_ms=change.event_ts_ms,
            duration_ms=change.duration_ms,
            device=change.device,
            content=content,
            engagement_version_ms=change.version_ms,
            deleted=change.deleted,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
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


def dedup_token(scope: str, ids: list[int], versions: list[int]) -> str:
    digest = hashlib.blake2b(scope.encode(), digest_size=20)
    digest.update(array("q", ids).tobytes())
    digest.update(array("Q", versions).tobytes())
    return f"{scope}:{len(ids)}:{digest.hexdigest()}"
