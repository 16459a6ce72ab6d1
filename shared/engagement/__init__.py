"""Kafka engagement pipeline: Debezium CDC -> enrichment -> enriched topic, ClickHouse, Redis leaderboard.

- ``cdc``            decoding of Debezium flat rows, keys and tombstones (bad input becomes dead letters)
- ``enrich``         engagement seconds/percent, row versions, JSON envelopes and Arrow columns
- ``content_store``  shared content store in Redis with a short-lived in-process cache
- ``leaderboard``    minute buckets, exactly-once batch updates (Lua), precomputed windows, top-N reader
- ``clickhouse``     client factory (server or embedded chDB), versioned schema, idempotent inserts
- ``functions``      the handlers ``function_app.py`` calls

See ``docs/engagement.md``.
"""
