"""The local CDC path: Postgres init.sql on the real test Postgres, and the Debezium connector's output.

- init.sql runs (twice: it is idempotent) in a fresh database of the test services' Postgres, creates the
  publication the connector expects, a ``dbz`` role that can really stream it with pgoutput, and the same
  tables as the simulator's ``--target postgres``.
- connector.json's transform chain, applied as Kafka Connect applies it (each transform type used there is
  emulated from its documented semantics and driven by the file's own settings), turns Debezium change
  events of both tables into exactly the topics, keys and fields the engagement decoder expects.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shared.engagement.batch import RawRecord
from shared.engagement.decode_rows import decode_content, decode_engagement
from shared.settings import load_settings
from shared.simulate.targets import SCHEMA_SQL
from tests.support.cli import ROOT

CONNECTOR = ROOT / "infra" / "local" / "debezium" / "connector.json"
INIT_SQL = ROOT / "infra" / "local" / "postgres" / "init.sql"
COMPOSE = ROOT / "docker-compose.yml"


# --------------------------------------------------------------------------------------- init.sql


def _admin_dsn(pg_dsn: str, dbname: str = "postgres") -> str:
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
        with psycopg.connect(_admin_dsn(pg_dsn), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return _admin_dsn(pg_dsn, name)

    yield make
    with psycopg.connect(_admin_dsn(pg_dsn), autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


# --------------------------------------------------------------------------------------- the connector


class ConnectRecord:
    """A record between Kafka Connect transforms: topic, key and value as the connector produced them."""

    def __init__(self, topic: str, key: Any, value: Any) -> None:
        self.topic, self.key, self.value = topic, key, value


def _java_regex_full_match(pattern: str, text: str) -> re.Match[str] | None:
    return re.fullmatch(pattern, text)  # RegexRouter and TopicNameMatches use Matcher.matches()


def apply_transforms(config: dict[str, str], record: ConnectRecord) -> ConnectRecord | None:
    """The connector's transform chain on one record (None: the record is dropped)."""
    predicates = {
        name: config[f"predicates.{name}.pattern"]
        for name in config.get("predicates", "").split(",")
        if name and config[f"predicates.{name}.type"].endswith("TopicNameMatches")
    }
    for name in config["transforms"].split(","):
        prefix = f"transforms.{name}."
        kind = config[prefix + "type"]
        predicate = config.get(prefix + "predicate")
        if predicate is not None:
            matches = _java_regex_full_match(predicates[predicate], record.topic) is not None
            if matches == (config.get(prefix + "negate", "false") == "true"):
                continue
        if kind == "io.debezium.transforms.ExtractNewRecordState":
            envelope = record.value
            if envelope is None:  # tombstone: dropped unless drop.tombstones=false
                if config.get(prefix + "drop.tombstones", "true") == "true":
                    return None
                continue
            mode = config.get(prefix + "delete.handling.mode", "drop")
            assert mode in {"drop", "rewrite"}, f"delete.handling.mode={mode} is not emulated here"
            deleted = envelope["op"] == "d"
            if deleted and mode == "drop":
                return None
            row = dict(envelope["before"] if deleted else envelope["after"])
            for field in filter(None, config.get(prefix + "add.fields", "").split(",")):
                source: Any = envelope
                for part in field.split("."):
                    source = source["source"][part] if part == "table" else source[part]
                row[config.get(prefix + "add.fields.prefix", "__") + field.replace(".", "_")] = source
            if mode == "rewrite":
                row["__deleted"] = "true" if deleted else "false"
            record = ConnectRecord(record.topic, record.key, row)
        elif kind == "org.apache.kafka.connect.transforms.ValueToKey":
            fields = config[prefix + "fields"].split(",")
            record = ConnectRecord(record.topic, {f: record.value[f] for f in fields}, record.value)
        elif kind == "org.apache.kafka.connect.transforms.ExtractField$Key":
            record = ConnectRecord(record.topic, record.key[config[prefix + "field"]], record.value)
        elif kind == "org.apache.kafka.connect.transforms.RegexRouter":
            match = _java_regex_full_match(config[prefix + "regex"], record.topic)
            if match is not None:
                replacement = re.sub(r"\$(\d+)", r"\\\1", config[prefix + "replacement"])
                record = ConnectRecord(match.expand(replacement), record.key, record.value)
        else:
            raise AssertionError(f"transform {name}: {kind} is not emulated here; extend this test")
    return record


def serialize(config: dict[str, str], record: ConnectRecord) -> tuple[str, bytes]:
    """JsonConverter with schemas disabled, for the key and the value (what the decoder receives)."""
    for side in ("key", "value"):
        assert config[f"{side}.converter"] == "org.apache.kafka.connect.json.JsonConverter"
        assert config[f"{side}.converter.schemas.enable"] == "false"
    return json.dumps(record.key), json.dumps(record.value).encode()


CONTENT_ID = "6f1c1a4e-9d8b-4c3a-9a53-0d6f0f4b2a11"
CONTENT_ROW = {
    "id": CONTENT_ID,
    "slug": "seed-video-0001",
    "title": "Streams and ducks",
    "content_type": "video",
    "length_seconds": 600,
    "publish_ts": "2025-01-02T03:04:05.123456Z",  # TIMESTAMPTZ: io.debezium.time.ZonedTimestamp
}
ENGAGEMENT_ROW = {
    "id": 42,
    "content_id": CONTENT_ID,
    "user_id": "0b9f9c5e-54c7-4bfa-8d5e-2c0e6f1f0a77",
    "event_type": "play",
    "event_ts": "2025-01-02T03:05:00.250000Z",
    "duration_ms": 12345,
    "device": "ios",
    "raw_payload": '{"ab_bucket": "A"}',  # JSONB: io.debezium.data.Json, a string
}


def envelope(table: str, op: str, row: dict[str, Any]) -> dict[str, Any]:
    """A Debezium Postgres change event (REPLICA IDENTITY FULL: a delete's ``before`` is the whole row)."""
    return {
        "before": row if op in {"u", "d"} else None,
        "after": None if op == "d" else row,
        "source": {"db": "appdb", "schema": "public", "table": table, "ts_ms": 1_735_787_100_250},
        "op": op,
        "ts_ms": 1_735_787_100_300,
    }


@pytest.fixture(scope="module")
def connector() -> dict[str, str]:
    document = json.loads(CONNECTOR.read_text(encoding="utf-8"))
    config: dict[str, str] = document["config"]
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput"
    assert config["publication.autocreate.mode"] == "disabled"
    assert config["table.include.list"] == "public.content,public.engagement_events"
    assert config["transforms.unwrap.add.fields"] == "op,table,source.ts_ms"
    return config


def emit(config: dict[str, str], table: str, op: str, row: dict[str, Any], offset: int) -> RawRecord:
    """What lands on Kafka for one change of ``table``: topic from topic.prefix, key = primary key struct."""
    assert f"public.{table}" in config["table.include.list"].split(",")
    topic = f"{config['topic.prefix']}.public.{table}"
    produced = apply_transforms(config, ConnectRecord(topic, {"id": row["id"]}, envelope(table, op, row)))
    assert produced is not None, f"{table} {op} dropped by the connector"
    key, value = serialize(config, produced)
    return RawRecord(produced.topic, 0, offset, key, value, 1_735_787_100_300)


def test_connector_topics_are_the_decoder_defaults(connector: dict[str, str]) -> None:
    settings = load_settings({})
    assert emit(connector, "content", "c", CONTENT_ROW, 0).topic == settings.topic_content == "content.flat"
    engagement = emit(connector, "engagement_events", "c", ENGAGEMENT_ROW, 0)
    assert engagement.topic == settings.topic_engage == "engagement_events.flat"


def test_connector_records_have_the_fields_the_decoder_reads(connector: dict[str, str]) -> None:
    record = emit(connector, "engagement_events", "c", ENGAGEMENT_ROW, 7)
    value = json.loads(record.value or b"")
    assert value["__op"] == "c"
    assert value["__table"] == "engagement_events"
    assert value["__source_ts_ms"] == 1_735_787_100_250
    assert record.key == json.dumps(CONTENT_ID)  # ValueToKey + ExtractField: keyed by content_id
    change = decode_engagement(record)
    assert change is not None
    assert (change.id, change.content_id, change.event_type, change.duration_ms) == (
        42,
        CONTENT_ID,
        "play",
        12345,
    )
    assert change.event_ts_ms == 1_735_787_100_250
    assert change.op == "c" and not change.deleted

    content = emit(connector, "content", "r", CONTENT_ROW, 3)  # snapshot read
    assert json.loads(content.key or "") == {"id": CONTENT_ID}  # content keeps its primary-key struct
    decoded = decode_content(content)
    assert decoded.content_id == CONTENT_ID and decoded.info is not None
    assert (decoded.info.title, decoded.info.content_type, decoded.info.length_seconds) == (
        "Streams and ducks",
        "video",
        600,
    )


def test_connector_deletes_reach_the_decoder_as_deletes(connector: dict[str, str]) -> None:
    assert connector["transforms.unwrap.delete.handling.mode"] == "rewrite"  # docs/engagement.md, cdc.py
    engagement = emit(connector, "engagement_events", "d", ENGAGEMENT_ROW, 8)
    assert engagement.key == json.dumps(CONTENT_ID)  # the whole old row (REPLICA IDENTITY FULL) has it
    change = decode_engagement(engagement)
    assert change is not None and change.deleted and change.id == 42
    content = decode_content(emit(connector, "content", "d", CONTENT_ROW, 4))
    assert content.deleted and content.content_id == CONTENT_ID
