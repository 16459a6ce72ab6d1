"""StreamDuck: serverless streaming on Azure Functions.

Packages are the pipeline's stages:

- ``shared.settings``   one typed settings object, validated at start-up
- ``shared.errors``     terminal vs transient errors (retry or park, decided by type)
- ``shared.eventhubs``  Event Hubs -> MotherDuck/DuckDB ingestion (exactly-once effect)
- ``shared.duck``       DuckDB / MotherDuck connections, schema, compaction
- ``shared.engagement`` Kafka CDC -> enrichment -> ClickHouse + Redis leaderboard
"""

__version__ = "0.1.0"
