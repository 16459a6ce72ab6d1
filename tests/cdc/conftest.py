"""Fixtures of the CDC tests: fresh databases on the test Postgres, and the test Kafka Connect worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def admin_dsn(pg_dsn: str, dbname: str = "postgres") -> str:
    """The test server's superuser (scripts/services.sh: trust on loopback), as the postgres image runs init.sql."""
    params = conninfo_to_dict(pg_dsn)
    params.pop("password", None)
    return make_conninfo("", **{**params, "user": "postgres", "dbname": dbname})


@pytest.fixture
def fresh_database(pg_dsn: str, unique_name: str) -> Iterator[Callable[[str], str]]:
    """Make empty databases on the test server (dropped afterwards); returns the superuser DSN of each."""
    made: list[str] = []

    def make(suffix: str) -> str:
        name = f"sd_{unique_name}_{suffix}"
        with psycopg.connect(admin_dsn(pg_dsn), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return admin_dsn(pg_dsn, name)

    yield make
    with psycopg.connect(admin_dsn(pg_dsn), autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def connect_url() -> str:
    """REST URL of the test Kafka Connect worker (``bash scripts/services.sh start connect``), which has the
    Debezium PostgreSQL connector; fails when it is missing."""
    import json
    import urllib.request

    from tests.conftest import _service_setting, _unreachable

    url = _service_setting("STREAMDUCK_TEST_CONNECT_URL", "Kafka Connect")
    error: Exception | str | None = None
    try:
        with urllib.request.urlopen(f"{url}/connector-plugins", timeout=10) as answer:  # noqa: S310
            plugins = [p["class"] for p in json.load(answer)]
        if "io.debezium.connector.postgresql.PostgresConnector" not in plugins:
            error = f"no Debezium PostgreSQL connector among {plugins}"
    except OSError as exc:
        error = exc
    if error is not None:
        _unreachable("Kafka Connect", url, error)
    return url
