"""Real Debezium for the CDC tests: connectors on the test Kafka Connect worker (``bash scripts/services.sh
start connect``), one database, replication slot and pair of topics per test; the functions of
``function_app`` fed with what the connector produced; expectations read back from Postgres."""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

import psycopg
from confluent_kafka import Consumer, Message
from psycopg.conninfo import conninfo_to_dict

from shared.engagement.kafka_io import batch_from_messages
from tests.engagement.support import Env
from tests.support.cli import ROOT

CONNECTOR = ROOT / "infra" / "local" / "debezium" / "connector.json"
CONNECT_PID = ROOT / ".services" / "connect" / "connect.pid"
CENT = Decimal("0.01")


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    assert url.startswith("http://"), url
    request = urllib.request.Request(  # noqa: S310 (an http URL, checked above)
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@dataclass
class Connector:
    """One Debezium connector of infra/local/debezium/connector.json on the test worker, with the local
    overrides: database, replication slot and the two topic names."""

    connect_url: str
    pg_dsn: str  # superuser DSN of the test's database
    name: str
    slot: str
    content_topic: str
    engage_topic: str
    overrides: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        config = dict(json.loads(CONNECTOR.read_text(encoding="utf-8"))["config"])
        params = conninfo_to_dict(self.pg_dsn)
        config.update(
            {
                "database.hostname": str(params["host"]),
                "database.port": str(params["port"]),
                "database.dbname": str(params["dbname"]),
                "slot.name": self.slot,
                "transforms.routeContent.replacement": self.content_topic,
                "transforms.routeEngage.replacement": self.engage_topic,
                **self.overrides,
            }
        )
        return config

    def register(self, timeout: float = 120) -> None:
        status, answer = http("PUT", f"{self.connect_url}/connectors/{self.name}/config", self.config())
        assert status in (200, 201), f"registering {self.name}: HTTP {status} {answer}"
        self.wait_running(timeout)

    def wait_running(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, last = http("GET", f"{self.connect_url}/connectors/{self.name}/status")
            if status == 200:
                tasks = last.get("tasks", [])
                assert last["connector"]["state"] != "FAILED", last
                assert all(t["state"] != "FAILED" for t in tasks), last
                if tasks and all(t["state"] == "RUNNING" for t in tasks):
                    return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not running after {timeout}s: {last}")

    def delete(self) -> None:
        """Remove the connector and drop its replication slot (once the task let go of it)."""
        # a worker that is down (a failed fault test) holds no slot: the slot is dropped all the same
        with contextlib.suppress(urllib.error.URLError):
            http("DELETE", f"{self.connect_url}/connectors/{self.name}")
        deadline = time.monotonic() + 60
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [self.slot]
                ).fetchone()
                if row is None:
                    return
                if not row[0]:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [self.slot])
                    return
                assert time.monotonic() < deadline, f"slot {self.slot} still active"
                time.sleep(0.5)


def kill_connect_worker() -> None:
    """kill -9 the test worker (started by scripts/services.sh)."""
    pid = int(CONNECT_PID.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"Kafka Connect (pid {pid}) still alive after SIGKILL")


def service_ports() -> dict[str, str]:
    """The ``STREAMDUCK_*_PORT`` variables of the running services, read from the ``STREAMDUCK_TEST_*`` ones
    (environment, else .services/env), so that the services script restarts the worker on the same ports."""
    from tests.conftest import _service_setting

    redis = urllib.parse.urlsplit(_service_setting("STREAMDUCK_TEST_REDIS_URL", "Redis"))
    kafka = _service_setting("STREAMDUCK_TEST_KAFKA_BROKERS", "Kafka").rsplit(":", 1)[1]
    pg = conninfo_to_dict(_service_setting("STREAMDUCK_TEST_PG_DSN", "PostgreSQL"))
    connect = urllib.parse.urlsplit(_service_setting("STREAMDUCK_TEST_CONNECT_URL", "Kafka Connect"))
    azurite = _service_setting("STREAMDUCK_TEST_AZURITE_CONNECTION_STRING", "Azurite")
    ports = {
        "STREAMDUCK_REDIS_PORT": str(redis.port),
        "STREAMDUCK_KAFKA_PORT": kafka,
        "STREAMDUCK_PG_PORT": str(pg["port"]),
        "STREAMDUCK_CONNECT_PORT": str(connect.port),
    }
    for service, name in (("Blob", "BLOB"), ("Queue", "QUEUE"), ("Table", "TABLE")):
        endpoint = [p for p in azurite.split(";") if p.startswith(f"{service}Endpoint=")]
        if endpoint:
            ports[f"STREAMDUCK_AZURITE_{name}_PORT"] = str(
                urllib.parse.urlsplit(endpoint[0].split("=", 1)[1]).port
            )
    return ports


def start_connect_worker(**env: str) -> None:
    """Start the worker again through the services script, on the same ports (it registers its default
    connector too)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh"), "start", "connect"],
        env={**os.environ, **service_ports(), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def drain(
    brokers: str, topic: str, *, at_least: int, idle: float = 4.0, timeout: float = 180
) -> list[Message]:
    """Every record of ``topic`` from its start, by partition and offset: wait for ``at_least``, then until
    nothing new arrives for ``idle`` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"cdc-test-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                if len(messages) >= at_least and time.monotonic() - last > idle:
                    break
                continue
            messages.append(message)
            last = time.monotonic()
    finally:
        consumer.close()
    assert len(messages) >= at_least, f"{topic}: {len(messages)} records, expected at least {at_least}"
    return sorted(messages, key=lambda m: (m.partition(), m.offset()))


def values(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(cast(bytes, m.value())) for m in messages if m.value()]


def feed(env: Env, content: list[Message], engage: list[Message], *, batch: int = 100) -> None:
    """Call the functions with the records, as the host would: content, then engagements, in batches."""
    for start in range(0, len(content), batch):
        env.call("engagement_content_cdc", batch_from_messages(content[start : start + batch]))
    for start in range(0, len(engage), batch):
        env.call("engagement_enrich", batch_from_messages(engage[start : start + batch]))


# --------------------------------------------------------------------------------------- expectations


def seconds(duration_ms: int | None) -> Decimal:
    if duration_ms is None:
        return Decimal(0)
    return (Decimal(duration_ms) / 1000).quantize(CENT, ROUND_HALF_UP)


def postgres_sums(dsn: str) -> dict[tuple[int, str], Decimal]:
    """Engagement seconds per (UTC minute, content) of the rows in Postgres now: the independent truth."""
    sums: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT content_id::text, floor(extract(epoch FROM event_ts) / 60)::bigint, duration_ms "
            "FROM engagement_events"
        ).fetchall()
    for content_id, minute, duration in rows:
        sums[(int(minute), str(content_id))] += seconds(duration)
    return {k: v for k, v in sums.items() if v}


def postgres_ids(dsn: str) -> set[int]:
    with psycopg.connect(dsn) as conn:
        return {int(r[0]) for r in conn.execute("SELECT id FROM engagement_events").fetchall()}


def board_sums(env: Env, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Decimal]:
    board = env.pipeline.leaderboard
    result: dict[tuple[int, str], Decimal] = {}
    for minute, member in keys:
        score = board.client.zscore(board.bucket_key(minute), member)
        if score is not None and round(score, 2):
            result[(minute, member)] = Decimal(str(round(score, 2)))
    return result


def clickhouse_sums(env: Env) -> dict[tuple[int, str], Decimal]:
    rows = env.pipeline.warehouse.query(
        "SELECT intDiv(toUnixTimestamp(event_ts), 60), toString(content_id), sum(engagement_seconds) "
        "FROM {db}.engagement_enriched FINAL WHERE is_deleted = 0 GROUP BY 1, 2"
    )
    return {(int(m), str(c)): Decimal(str(s)) for m, c, s in rows if s}


def clickhouse_ids(env: Env) -> set[int]:
    rows = env.pipeline.warehouse.query("SELECT id FROM {db}.engagement_enriched FINAL WHERE is_deleted = 0")
    return {int(r[0]) for r in rows}


def latest_published(env: Env) -> dict[int, dict[str, Any]]:
    """The enriched topic as a consumer keeps it: per ``event_id`` header, the highest ``event_version``."""
    messages = drain(env.brokers, env.settings.topic_out, at_least=1, idle=2.0)
    latest: dict[int, tuple[int, dict[str, Any]]] = {}
    for m in messages:
        headers = {k: v.decode() for k, v in cast(list[tuple[str, bytes]], m.headers() or [])}
        event_id, version = int(headers["event_id"]), int(headers["event_version"])
        if event_id not in latest or version > latest[event_id][0]:
            latest[event_id] = (version, json.loads(cast(bytes, m.value())))
    return {k: v for k, (_, v) in latest.items()}


def check_against_postgres(env: Env, dsn: str) -> Decimal:
    """Leaderboard, ClickHouse FINAL and the enriched topic all equal what Postgres holds; returns the total."""
    expected = postgres_sums(dsn)
    in_clickhouse = clickhouse_sums(env)
    assert in_clickhouse == expected, differences(in_clickhouse, expected)
    on_board = board_sums(env, set(expected) | set(in_clickhouse) | board_keys(env))
    assert on_board == expected, differences(on_board, expected)
    ids = postgres_ids(dsn)
    assert clickhouse_ids(env) == ids
    latest = latest_published(env)
    alive = {i for i, v in latest.items() if not v["deleted"]}
    assert alive == ids, (
        f"published alive but not in Postgres: {sorted(alive - ids)[:10]}, missing: {sorted(ids - alive)[:10]}"
    )
    unknown = {i: v for i, v in latest.items() if i in ids and not v["content_known"]}
    assert not unknown, f"{len(unknown)} published without their content: {list(unknown.values())[:2]}"
    return sum(expected.values(), Decimal(0))


def differences(got: dict[tuple[int, str], Decimal], expected: dict[tuple[int, str], Decimal]) -> str:
    keys = sorted(set(got) | set(expected))
    wrong = [(k, got.get(k), expected.get(k)) for k in keys if got.get(k) != expected.get(k)]
    return f"{len(wrong)} of {len(keys)} (minute, content) sums differ (got, expected): {wrong[:10]}"


def board_keys(env: Env) -> set[tuple[int, str]]:
    """Every (minute, member) in the test's leaderboard buckets (the test's own Redis key prefix)."""
    board = env.pipeline.leaderboard
    found: set[tuple[int, str]] = set()
    for key in board.client.scan_iter(match=f"{board.prefix}zset:eng:minute:*"):
        name = key.decode().rsplit(":", 1)[1]
        minute = calendar.timegm(time.strptime(name, "%Y%m%d%H%M")) // 60
        members = cast(list[bytes], board.client.zrange(key, 0, -1))
        found.update((minute, member.decode()) for member in members)
    return found
