CREATE TABLE IF NOT EXISTS {db}.{content} (
    id UUID,
    slug Nullable(String),
    title Nullable(String),
    content_type LowCardinality(Nullable(String)),
    length_seconds Nullable(Int32),
    publish_ts Nullable(DateTime64(3, 'UTC')),
    version UInt64,
    is_deleted UInt8,
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY id
SETTINGS non_replicated_deduplication_window = 10000
