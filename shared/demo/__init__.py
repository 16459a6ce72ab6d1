"""``streamduck demo``: both pipelines on embedded defaults, through the functions ``function_app.py`` registers.

A layer above the pipelines and the dev host: the demo generates traffic, hands it to the registered functions
the way the worker would (the dev host finds them) and reads back what landed.

- :mod:`shared.demo.app`           the registered functions, found by the dev host's discovery
- :mod:`shared.demo.eventhubs`     Event Hubs -> DuckDB: generated events, host-style replays, compaction
- :mod:`shared.demo.engagement`    Debezium-shaped content and engagement -> ClickHouse (chDB) + Redis
- :mod:`shared.demo.redis_server`  the Redis the demo uses (configured, named, or its own ``redis-server``)
- :mod:`shared.demo.state`         ``.streamduck/demo.env`` for the commands after it; who holds the chDB folder
- :mod:`shared.demo.run`           both pipelines, one after the other, and what each left
"""
