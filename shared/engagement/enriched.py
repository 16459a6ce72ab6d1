"""The enriched record: an engagement row joined with its content, as JSON for the enriched topic and columns
for ClickHouse; what its derived values are and how its rows are versioned and deduplicated.

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

The record's own fields come first, as :data:`~shared.engagement.records.FIELDS` defines them, in both the
ClickHouse columns (:data:`ENRICHED_COLUMNS`) and the JSON value (:data:`EVENT_KEYS`); the content's and
the derived ones follow. Two enrichers build it: :mod:`~shared.engagement.enrich_rows` row by row,
:mod:`~shared.engagement.enrich_columns` column by column (the hot path); they give the same bytes.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from shared.engagement.records import FIELD_NAMES, FIELDS

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


HEADER_EVENT_ID = "event_id"
HEADER_EVENT_VERSION = "event_version"

# The columns of ``engagement_enriched`` as inserted, in order (``ingested_at`` has a default).
ENRICHED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    *((f.name, f.arrow) for f in FIELDS),
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
ENRICHED_TYPES: dict[str, pa.DataType] = dict(ENRICHED_COLUMNS)

# The keys of the value published to ``engagement_enriched`` (keyed by ``content_id``), in order.
CONTENT_KEYS: tuple[str, ...] = ("content_known", "content_type", "length_seconds", "title")
EVENT_KEYS: tuple[str, ...] = (
    *FIELD_NAMES,
    *CONTENT_KEYS,
    "engagement_seconds",
    "engagement_pct",
    "deleted",
    "version",
)


def decimal_array(centis: Sequence[int | None] | pa.Array) -> pa.Array:
    """A ``decimal128(18, 2)`` Arrow array from values in hundredths, without ``Decimal`` objects."""
    ints = centis.cast(pa.int64()) if isinstance(centis, pa.Array) else pa.array(centis, pa.int64())
    validity = ints.buffers()[0] if ints.null_count else None
    data = ints.fill_null(0).to_numpy(zero_copy_only=False) if ints.null_count else ints.to_numpy()
    wide = np.empty((len(ints), 2), dtype=np.int64)
    wide[:, 0] = data
    wide[:, 1] = data >> 63
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(ints), [validity, pa.py_buffer(wide.tobytes())])


def dedup_token(scope: str, ids: Sequence[int], versions: Sequence[int]) -> str:
    return dedup_token_of(scope, len(ids), array("q", ids).tobytes(), array("Q", versions).tobytes())


def dedup_token_of(scope: str, n: int, ids: bytes, versions: bytes) -> str:
    """The token of ``n`` rows from their ids (native int64) and versions (native uint64) as bytes."""
    digest = hashlib.blake2b(scope.encode(), digest_size=20)
    digest.update(ids)
    digest.update(versions)
    return f"{scope}:{n}:{digest.hexdigest()}"
