"""The CDC path for real: rows written by ``streamduck simulate --target postgres`` and changed afterwards
(updates, deletes, content changes, a content row that arrives after its engagements) -> Debezium 3.1 on Kafka
Connect (infra/local/debezium/connector.json) -> Kafka -> the functions of ``function_app`` -> ClickHouse,
Redis and the enriched topic; then the faults Debezium's at-least-once delivery brings: a Kafka Connect
``kill -9`` that re-emits what it had not flushed, and a re-snapshot. Each time the leaderboard equals the sum
computed from the rows read back from Postgres, and agrees with ClickHouse (``FINAL``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Message
from typer.testing import CliRunner

from shared.cli.main import app as cli
from shared.settings import load_settings
from tests.engagement.support import Env

from .debezium_support import (
    Connector,
    check_against_postgres,
    drain,
    feed,
    kill_connect_worker,
    start_connect_worker,
    values,
)

INIT_SQL = Path(__file__).resolve().parents[2] / "infra" / "local" / "postgres" / "init.sql"


@pytest.fixture
def cdc(
    fresh_database: Callable[[str], str],
    connect_url: str,
    redis_url: str,
    kafka_brokers: str,
    unique_name: str,
    chdb_path: Path,
) -> Iterator[tuple[str, Env, Callable[..., Connector]]]:
    """A database prepared by init.sql, the pipeline's settings on this test's topics, and a maker of
    connectors on that database (deleted, with their slots, at the end)."""
    dsn = fresh_database("cdc")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(INIT_SQL.read_text(encoding="utf-8"))
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"test:{unique_name}:",
            "KAFKA_BROKERS": kafka_brokers,
            "CLICKHOUSE_CHDB_PATH": str(chdb_path),
            "CLICKHOUSE_DATABASE": f"cdc_{unique_name}",
            "TOPIC_CONTENT": f"content.flat.{unique_name}",
            "TOPIC_ENGAGE": f"engagement_events.flat.{unique_name}",
            "TOPIC_OUT": f"engagement_enriched.{unique_name}",
            "CONTENT_CACHE_TTL_SECONDS": "0",
        }
    )
    env = Env(settings=settings, brokers=kafka_brokers, clock=[time.time()])
    made: list[Connector] = []

    def connector(suffix: str = "a", **overrides: str) -> Connector:
        made_one = Connector(
            connect_url=connect_url,
            pg_dsn=dsn,
            name=f"cdc-{unique_name}-{suffix}",
            slot=f"sd_{unique_name}_{suffix}",
            content_topic=settings.topic_content,
            engage_topic=settings.topic_engage,
            overrides=overrides,
        )
        made.append(made_one)
        made_one.register()
        return made_one

    yield dsn, env, connector
    for one in made:
        one.delete()


def simulate(dsn: str, count: int, seed: int) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--target",
            "postgres",
            "--dsn",
            dsn,
            "--count",
            str(count),
            "--rate",
            "0",
            "--seed",
            str(seed),
        ],
    )
    assert result.exit_code == 0, result.output


def change_rows(dsn: str) -> uuid.UUID:
    """Updates, deletes, a content change, and a new content row with engagements; returns the new content."""
    late = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE content SET title = title || ' (2nd edition)' WHERE slug = (SELECT min(slug) FROM content)"
        )
        ids = [r[0] for r in conn.execute("SELECT id FROM engagement_events ORDER BY id").fetchall()]
        conn.execute("UPDATE engagement_events SET duration_ms = 123456 WHERE id = ANY(%s)", [ids[5:15]])
        conn.execute("UPDATE engagement_events SET device = 'tv' WHERE id = ANY(%s)", [ids[15:20]])
        conn.execute("DELETE FROM engagement_events WHERE id = ANY(%s)", [ids[20:35]])
        conn.execute(
            "INSERT INTO content (id, slug, title, content_type, length_seconds, publish_ts) "
            "VALUES (%s, %s, 'Arrives late', 'podcast', 1200, now())",
            [late, f"late-{late.hex[:8]}"],
        )
        conn.execute(
            "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, duration_ms, device) "
            "SELECT %s, gen_random_uuid(), 'play', now() - make_interval(secs => g), 1000 * g + 7, 'web' "
            "FROM generate_series(1, 12) AS g",
            [late],
        )
    return late


def split_late(content: list[Message], late: uuid.UUID) -> tuple[list[Message], list[Message]]:
    """The content records without the late row, and the late row (delivered after its engagements)."""
    early = [m for m in content if json.loads(m.value() or b"{}").get("id") != str(late)]
    return early, [m for m in content if m not in early]


def test_simulated_rows_through_debezium_land_exactly_in_every_store(
    cdc: tuple[str, Env, Callable[..., Connector]],
) -> None:
    dsn, env, connector = cdc
    connector()
    simulate(dsn, 300, seed=11)
    late = change_rows(dsn)
    with psycopg.connect(dsn) as conn:
        n_content = int(conn.execute("SELECT count(*) FROM content").fetchone()[0])  # type: ignore[index]
    # 300 + 12 inserts, 15 updates, 15 deletes; the contents, one update of one of them
    engage = drain(env.brokers, env.settings.topic_engage, at_least=342)
    content = drain(env.brokers, env.settings.topic_content, at_least=n_content + 1)
    ops = [v["__op"] for v in values(engage)]
    assert (ops.count("c"), ops.count("u"), ops.count("d")) == (312, 15, 15)
    early, late_rows = split_late(content, late)
    feed(env, early, engage)
    feed(env, late_rows, [])  # the late content re-enriches its 12 waiting engagements
    check_against_postgres(env, dsn)


def test_kafka_connect_killed_mid_stream_re_emits_and_nothing_counts_twice(
    cdc: tuple[str, Env, Callable[..., Connector]],
) -> None:
    dsn, env, connector = cdc
    # a worker that flushes its offsets only every 10 minutes: everything since registration is re-emitted
    kill_connect_worker()
    start_connect_worker(STREAMDUCK_CONNECT_OFFSET_FLUSH_MS="600000")
    try:
        one = connector()
        simulate(dsn, 200, seed=12)
        late = change_rows(dsn)
        first = drain(env.brokers, env.settings.topic_engage, at_least=242)
        content = drain(env.brokers, env.settings.topic_content, at_least=2)
        early, late_rows = split_late(content, late)
        feed(env, early, first)
        feed(env, late_rows, [])
        before = check_against_postgres(env, dsn)
        kill_connect_worker()
    finally:
        start_connect_worker()  # the usual flush interval again
    one.register()  # a standalone worker keeps offsets, not connectors
    again = drain(env.brokers, env.settings.topic_engage, at_least=len(first) + 1)
    re_emitted = again[len(first) :]
    assert re_emitted, "the restarted connector re-emitted nothing"
    assert min(m.offset() or 0 for m in re_emitted) >= len(first)  # the duplicates are at new offsets
    content_again = drain(env.brokers, env.settings.topic_content, at_least=len(content))
    feed(env, content_again[len(content) :], re_emitted)
    assert check_against_postgres(env, dsn) == before


def test_a_re_snapshot_reads_every_row_again_and_nothing_counts_twice(
    cdc: tuple[str, Env, Callable[..., Connector]],
) -> None:
    dsn, env, connector = cdc
    first_connector = connector("a")
    simulate(dsn, 150, seed=13)
    late = change_rows(dsn)
    first = drain(env.brokers, env.settings.topic_engage, at_least=192)
    content = drain(env.brokers, env.settings.topic_content, at_least=2)
    early, late_rows = split_late(content, late)
    feed(env, early, first)
    feed(env, late_rows, [])
    before = check_against_postgres(env, dsn)

    # a new slot and no stored offset: the connector snapshots both tables again (op r) into the same topics
    first_connector.delete()
    connector("b")
    with psycopg.connect(dsn) as conn:
        rows = int(conn.execute("SELECT count(*) FROM engagement_events").fetchone()[0])  # type: ignore[index]
    again = drain(env.brokers, env.settings.topic_engage, at_least=len(first) + rows)
    snapshot = again[len(first) :]
    assert {v["__op"] for v in values(snapshot)} == {"r"}
    content_again = drain(env.brokers, env.settings.topic_content, at_least=len(content) + 1)
    feed(env, content_again[len(content) :], snapshot)
    assert check_against_postgres(env, dsn) == before
