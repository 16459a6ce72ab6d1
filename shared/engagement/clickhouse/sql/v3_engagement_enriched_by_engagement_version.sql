CREATE TABLE IF NOT EXISTS {db}.{enriched} (
    id Int64,
    content_id UUID,
    user_id Nullable(UUID),
    event_type LowCardinality(String),
    event_ts DateTime64(3, 'UTC'),
    duration_ms Nullable(Int32),
    device Nullable(String),
    content_known Bool,
    content_type LowCardinality(Nullable(String)),
    length_seconds Nullable(Int32),
    title Nullable(String),
    engagement_seconds Nullable(Decimal(18, 2)),
    engagement_pct Nullable(Decimal(18, 2)),
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    version UInt128,
    is_deleted UInt8,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMMDD(event_ts)
ORDER BY id
SETTINGS non_replicated_deduplication_window = 10000
