"""The enrichment names as they were first published, for importers not yet moved to the modules that hold
them now (:mod:`~shared.engagement.enriched`, :mod:`~shared.engagement.enrich_rows`,
:mod:`~shared.engagement.enrich_columns`). New code imports from those.
"""

from shared.engagement.enrich_columns import EnrichedRows
from shared.engagement.enrich_rows import EnrichedBatch
from shared.engagement.enriched import (
    ENRICHED_COLUMN_NAMES,
    ENRICHED_COLUMNS,
    HEADER_EVENT_ID,
    HEADER_EVENT_VERSION,
    PCT_MAX_CENTIS,
    decimal_array,
    dedup_token,
    engagement_centis,
    engagement_pct_centis,
    format_centis,
    row_version,
)

__all__ = [
    "ENRICHED_COLUMNS",
    "ENRICHED_COLUMN_NAMES",
    "HEADER_EVENT_ID",
    "HEADER_EVENT_VERSION",
    "PCT_MAX_CENTIS",
    "EnrichedBatch",
    "EnrichedRows",
    "decimal_array",
    "dedup_token",
    "engagement_centis",
    "engagement_pct_centis",
    "format_centis",
    "row_version",
]
