"""The decoding names as they were first published, for importers not yet moved to the modules that hold them
now (:mod:`~shared.engagement.batch`, :mod:`~shared.engagement.debezium`, :mod:`~shared.engagement.records`,
:mod:`~shared.engagement.decode_rows`, :mod:`~shared.engagement.decode_columns`). New code imports from those.
"""

from shared.engagement.batch import (
    BatchMetadataError,
    KafkaEventLike,
    RawRecord,
    TriggerBatch,
    records_from_events,
)
from shared.engagement.debezium import BAD_INPUT_KINDS, OPS, parse_content_key
from shared.engagement.decode_columns import decode_engagements
from shared.engagement.decode_rows import decode_content, decode_engagement
from shared.engagement.records import (
    CONTENT_TYPES,
    EVENT_TYPES,
    ContentChange,
    ContentInfo,
    DeadLetter,
    DecodedEngagements,
    EngagementColumns,
    EngagementRow,
)
from shared.engagement.timestamps import iso_ms, iso_timestamp_ms, parse_timestamp_ms

__all__ = [
    "BAD_INPUT_KINDS",
    "CONTENT_TYPES",
    "EVENT_TYPES",
    "OPS",
    "BatchMetadataError",
    "ContentChange",
    "ContentInfo",
    "DeadLetter",
    "DecodedEngagements",
    "EngagementColumns",
    "EngagementRow",
    "KafkaEventLike",
    "RawRecord",
    "TriggerBatch",
    "decode_content",
    "decode_engagement",
    "decode_engagements",
    "iso_ms",
    "iso_timestamp_ms",
    "parse_content_key",
    "parse_timestamp_ms",
    "records_from_events",
]
