"""The engagement traffic simulator (content seeding, event mix, devices, raw payloads).

- :mod:`shared.simulate.model`    deterministic generator (``seed``) and the Debezium-flattened message shapes
- :mod:`shared.simulate.targets`  Postgres tables (the CDC path), Kafka topics, Event Hubs
"""
