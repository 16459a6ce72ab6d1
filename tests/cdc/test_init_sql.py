"""The CDC source: Postgres init.sql on the real test Postgres.

init.sql runs (twice: it is idempotent) in a fresh database of the test services' Postgres, creates the
publication the connector expects, a ``dbz`` role that can really stream it with pgoutput, and the same tables
as the simulator's ``--target postgres``. What the connector makes of them: test_debezium.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import yaml  # type: ignore[import-untyped]
from psycopg.conninfo import make_conninfo

from shared.simulate.targets import SCHEMA_SQL
from tests.support.cli import ROOT

CONNECTOR = ROOT / "infra" / "local" / "debezium" / "connector.json"
INIT_SQL = ROOT / "infra" / "local" / "postgres" / "init.sql"
COMPOSE = ROOT / "docker-compose.yml"


# --------------------------------------------------------------------------------------- init.sql


def _columns(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ).fetchall()


def _constraints(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT conrelid::regclass::text, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2, 3"
    ).fetchall()


def test_init_sql_creates_tables_role_and_a_publication_dbz_can_stream(
    pg_dsn: str, fresh_database: Callable[[str], str], unique_name: str
) -> None:
    dsn = fresh_database("init")
    sql = INIT_SQL.read_text(encoding="utf-8")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)  # a whole script, no parameters
        conn.execute(sql)  # idempotent: a second run changes nothing
        published = conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'dbz_publication' ORDER BY 1"
        ).fetchall()
        assert [r[0] for r in published] == ["content", "engagement_events"]
        role = conn.execute(
            "SELECT rolcanlogin, rolreplication FROM pg_roles WHERE rolname = 'dbz'"
        ).fetchone()
        assert role == (True, True)
        identity = conn.execute(
            "SELECT relname, relreplident FROM pg_class WHERE relname IN ('content', 'engagement_events') "
            "ORDER BY 1"
        ).fetchall()
        assert identity == [("content", "f"), ("engagement_events", "f")]  # deletes carry the whole row

    # dbz streams the publication with pgoutput, as the connector does (slot dropped before the database).
    config = json.loads(CONNECTOR.read_text(encoding="utf-8"))["config"]
    as_dbz = make_conninfo(dsn, user=config["database.user"], password=config["database.password"])
    slot = f"sd_{unique_name}"
    with psycopg.connect(as_dbz, autocommit=True) as dbz:
        dbz.execute("SELECT pg_create_logical_replication_slot(%s, %s)", [slot, config["plugin.name"]])
        try:
            with psycopg.connect(dsn, autocommit=True) as app:
                content_id = uuid.uuid4()
                app.execute(
                    "INSERT INTO content (id, slug, title, content_type, length_seconds, publish_ts) "
                    "VALUES (%s, 'slug-1', 'A title', 'video', 60, now())",
                    [content_id],
                )
                app.execute(
                    "INSERT INTO engagement_events (content_id, event_type, event_ts, duration_ms) "
                    "VALUES (%s, 'play', now(), 1000)",
                    [content_id],
                )
                app.execute("DELETE FROM engagement_events")
            changes = dbz.execute(
                "SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
                "'proto_version', '1', 'publication_names', %s)",
                [slot, config["publication.name"]],
            ).fetchone()
            assert changes is not None and changes[0] >= 3  # begin/insert/commit messages at least
            assert dbz.execute("SELECT count(*) FROM content").fetchone() == (1,)  # snapshot reads work
        finally:
            dbz.execute("SELECT pg_drop_replication_slot(%s)", [slot])


def test_init_sql_and_the_simulator_create_the_same_tables(fresh_database: Callable[[str], str]) -> None:
    with psycopg.connect(fresh_database("init"), autocommit=True) as conn:
        conn.execute(INIT_SQL.read_text(encoding="utf-8"))
        from_init = (_columns(conn), _constraints(conn))
    with psycopg.connect(fresh_database("sim"), autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        from_simulator = (_columns(conn), _constraints(conn))
    assert from_init[0], "no columns"
    assert from_init == from_simulator


def test_compose_runs_init_sql_and_registers_the_connector() -> None:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    assert "./infra/local/postgres/init.sql:/docker-entrypoint-initdb.d/init.sql:ro" in [
        v.split("  ")[0] for v in services["postgres"]["volumes"]
    ]
    register = services["connect-register"]
    assert register["profiles"] == ["cdc"]
    assert "./infra/local/debezium/connector.json:/connector.json:ro" in register["volumes"]
    assert "http://connect:8083/connectors" in " ".join(register["command"])
    postgres_env = services["postgres"]["environment"]
    config = json.loads(CONNECTOR.read_text(encoding="utf-8"))["config"]
    assert config["database.dbname"] == postgres_env["POSTGRES_DB"]
    assert config["database.hostname"] == "postgres"
