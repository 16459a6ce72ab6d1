CREATE TABLE IF NOT EXISTS {db}.{dead} (
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    kafka_key Nullable(String),
    raw_value String,
    kind LowCardinality(String),
    reason String,
    function LowCardinality(String),
    kafka_ts Nullable(DateTime64(3, 'UTC')),
    parked_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(parked_at)
ORDER BY (source_topic, source_partition, source_offset)
SETTINGS non_replicated_deduplication_window = 10000
