"""ClickHouse warehouse of the engagement pipeline, one module per role:

- :mod:`.client`     the process's client (server over HTTP, or embedded chDB) and the translation of its errors
- :mod:`.schema`     the DDL in ``sql/*.sql`` and the runner that applies the missing versions in order
- :mod:`.inserts`    batches as Arrow columns with a deduplication token, one insert each
- :mod:`.upkeep`     bounded ``OPTIMIZE``, the sweep's rows without content, parked records by kind
- :mod:`.warehouse`  :class:`Warehouse`, what the pipeline calls: a lock, the schema once, errors translated

All SQL here runs on a ClickHouse server and on embedded chDB. See ``docs/engagement.md``.
"""

from shared.engagement.clickhouse.client import (
    STORE,
    chdb_client,
    clickhouse_errors,
    client_for,
    translate_clickhouse_error,
)
from shared.engagement.clickhouse.inserts import INSERT_SETTINGS, hash_text
from shared.engagement.clickhouse.schema import (
    CONTENT_TABLE,
    ENRICHED_TABLE,
    MIGRATIONS,
    MINUTE_VIEW,
    SCHEMA_TABLE,
    SCHEMA_VERSION,
    Migration,
    Tables,
    migrate,
)
from shared.engagement.clickhouse.upkeep import UnknownEvent, check_partition_id, partition_id
from shared.engagement.clickhouse.warehouse import Warehouse

__all__ = [  # noqa: RUF022 - grouped by module, as the docstring lists them
    # client and errors
    "STORE",
    "chdb_client",
    "clickhouse_errors",
    "client_for",
    "translate_clickhouse_error",
    # schema
    "CONTENT_TABLE",
    "ENRICHED_TABLE",
    "MIGRATIONS",
    "MINUTE_VIEW",
    "SCHEMA_TABLE",
    "SCHEMA_VERSION",
    "Migration",
    "Tables",
    "migrate",
    # inserts and upkeep
    "INSERT_SETTINGS",
    "check_partition_id",
    "hash_text",
    "partition_id",
    # the warehouse
    "UnknownEvent",
    "Warehouse",
]
