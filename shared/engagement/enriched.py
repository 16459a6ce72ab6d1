"""The enriched record: an engagement row joined with its content, as JSON for the enriched topic and columns
for ClickHouse; what its derived values are and how its rows are versioned and deduplicated.

Definitions (all integer arithmetic, no floating point):

- ``engagement_seconds`` = ``duration_ms / 1000`` rounded half up to 2 decimals; ``null`` when
  ``duration_ms`` is null (clicks carry no duration).
- ``engagement_pct`` = ``duration_ms / (10 * length_seconds)``, i.e. the share of the content's length that
  was engaged, in percent, rounded half up to 2 decimals and clamped to ``[0, 100]``. It is computed from
  ``duration_ms`` (not from the rounded seconds). ``null`` when the content is unknown, its
  ``length_seconds`` is null or 0 (newsletters), or ``duration_ms`` is null.
- ``version`` orders the enriched rows of one engagement id (ClickHouse keeps the highest, consumers of the
  enriched topic too): first by the engagement version, then by the content version, then known content over
  unknown. The engagement version is the change's Debezium ``__source_ts_ms`` (else its Kafka timestamp), the
  content version the content's ``__source_ts_ms``. Packed into 128 bits (ClickHouse ``UInt128``)::

      version = engagement_ms * 2**65 + (content_ms + 2**63) * 2 + content_known   (content known)
      version = engagement_ms * 2**65                                              (content unknown)

  ``engagement_ms`` takes the high 63 bits (any ms in ``[0, 2**63)``; a negative one is a ValueError, the
  decoders clamp it to 0), the content version the next 64 (any int64, offset by ``2**63`` so the order of
  negative ones holds too), ``content_known`` the lowest: the packing is exact and ordered for every input
  in range, with no bound tighter than the int64 the versions are read as. So an older change of an engagement
  (a re-emitted insert after the delete) never ties with or beats a newer one, whatever its content; a
  re-delivered event gets the same version (ClickHouse keeps one row); an event re-enriched once its content
  arrives, or with a newer content version, gets a higher one. :func:`engagement_version_of` reads the
  engagement version back. Published as a decimal integer (header ``event_version`` and the value's
  ``version``): it exceeds 64 bits, so parse it as an arbitrary-precision integer.

The record's own fields come first, as :data:`~shared.engagement.records.FIELDS` defines them, in both the
ClickHouse columns (:data:`ENRICHED_COLUMNS`) and the JSON value (:data:`EVENT_KEYS`); the content's and
the derived ones follow. Two enrichers build it: :mod:`~shared.engagement.enrich_rows` row by row,
:mod:`~shared.engagement.enrich_columns` column by column (the hot path); they give the same bytes.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


# The version's layout (see the module docstring): engagement ms << 65 | (content ms + 2**63) << 1 | known.
ENGAGEMENT_SHIFT = 65
CONTENT_OFFSET = 1 << 63
INT64_MAX = (1 << 63) - 1
_U64 = np.dtype("<u8")
VERSION_TYPE = pa.binary(16)


def row_version(engagement_version_ms: int, content_version_ms: int | None, known: bool) -> int:
    """The row version of an event (the module docstring's order); ValueError for a version out of range."""
    if not 0 <= engagement_version_ms <= INT64_MAX:
        raise ValueError(f"engagement version {engagement_version_ms} is outside [0, 2**63)")
    if not known:
        return engagement_version_ms << ENGAGEMENT_SHIFT
    if content_version_ms is None or not -CONTENT_OFFSET <= content_version_ms <= INT64_MAX:
        raise ValueError(f"content version {content_version_ms} of known content is not an int64")
    return (engagement_version_ms << ENGAGEMENT_SHIFT) | ((content_version_ms + CONTENT_OFFSET) << 1) | 1


def engagement_version_of(version: int) -> int:
    """The engagement version (ms) a row version was computed from."""
    return version >> ENGAGEMENT_SHIFT


def version_words(
    engagement_ms: np.ndarray[Any, np.dtype[np.int64]],
    content_ms: np.ndarray[Any, np.dtype[np.int64]],
    known: np.ndarray[Any, np.dtype[np.bool_]],
) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.uint64]]]:
    """:func:`row_version` of whole columns, as its high and low 64 bits (``content_ms`` is ignored where the
    content is unknown); ValueError for a negative engagement version."""
    if engagement_ms.size and int(engagement_ms.min()) < 0:
        raise ValueError(f"engagement version {int(engagement_ms.min())} is outside [0, 2**63)")
    flag = known.astype(np.uint64)
    rank = (content_ms.view(np.uint64) ^ np.uint64(CONTENT_OFFSET)) * flag
    high = (engagement_ms.view(np.uint64) << np.uint64(1)) | (rank >> np.uint64(63))
    low = (rank << np.uint64(1)) | flag
    return high, low


def version_array(
    high: np.ndarray[Any, np.dtype[np.uint64]], low: np.ndarray[Any, np.dtype[np.uint64]]
) -> pa.Array:
    """The ``version`` column: 16-byte little-endian integers (``fixed_size_binary(16)``, which ClickHouse
    reads into ``UInt128``)."""
    words = np.empty((len(high), 2), dtype=_U64)
    words[:, 0] = low
    words[:, 1] = high
    return pa.Array.from_buffers(VERSION_TYPE, len(high), [None, pa.py_buffer(words.tobytes())])


def version_bytes(version: int) -> bytes:
    """One version as the ``version`` column holds it (16 bytes, little-endian)."""
    return version.to_bytes(16, "little")


_TWO_64 = pa.scalar(Decimal(1 << 64), pa.decimal256(20, 0))


def version_texts(
    high: np.ndarray[Any, np.dtype[np.uint64]], low: np.ndarray[Any, np.dtype[np.uint64]]
) -> pa.Array:
    """The versions as decimal strings (exact: ``decimal256`` arithmetic in Arrow, no per-row Python)."""
    wide = pa.decimal256(20, 0)
    value = pc.add(pc.multiply(pa.array(high).cast(wide), _TWO_64), pa.array(low).cast(wide))
    return pc.cast(value, pa.string())


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
    ("version", VERSION_TYPE),
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
    """The token of rows from their ids and 64-bit versions (``content``, dead letters)."""
    return dedup_token_of(scope, len(ids), array("q", ids).tobytes(), array("Q", versions).tobytes())


def enriched_dedup_token(scope: str, ids: Sequence[int], versions: Sequence[int]) -> str:
    """The token of enriched rows from their ids and row versions (as the ``version`` column holds them)."""
    return dedup_token_of(scope, len(ids), array("q", ids).tobytes(), b"".join(map(version_bytes, versions)))


def dedup_token_of(scope: str, n: int, ids: bytes, versions: bytes) -> str:
    """The token of ``n`` rows from their ids (native int64) and versions as bytes (native uint64, or 16
    little-endian bytes each for enriched rows)."""
    digest = hashlib.blake2b(scope.encode(), digest_size=20)
    digest.update(ids)
    digest.update(versions)
    return f"{scope}:{n}:{digest.hexdigest()}"
