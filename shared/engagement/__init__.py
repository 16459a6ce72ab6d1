"""Kafka engagement pipeline: Debezium CDC -> enrichment -> enriched topic, ClickHouse, Redis leaderboard.

- ``batch``          the Kafka trigger batch as columns, every record positioned
- ``debezium``       Debezium flat rows: wire shape, ops, keys, kinds of bad input
- ``records``        the engagement record's fields (defined once), content, dead letters
- ``decode_rows``    decoding record by record (any batch; bad input becomes dead letters)
- ``decode_columns`` decoding column by column (batches of well-formed records: the hot path)
- ``enriched``       the enriched record: columns, JSON keys, seconds/percent, versions, dedup tokens
- ``enrich_rows``    enrichment row by row (re-enrichment; the reference)
- ``enrich_columns`` enrichment column by column in Arrow (the hot path)
- ``timestamps``     timestamps to epoch milliseconds and back
- ``content_store``  shared content store in Redis with a short-lived in-process cache
- ``leaderboard``    minute buckets, exactly-once batch updates (Lua), precomputed windows, top-N reader
- ``clickhouse``     client factory (server or embedded chDB), versioned schema, idempotent inserts
- ``functions``      the handlers ``function_app.py`` calls

See ``docs/engagement.md``.
"""
