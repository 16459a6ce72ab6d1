"""Store failures: Redis or ClickHouse down before or in the middle of a batch, then the host's retry
completes it exactly once.

Expected values are computed independently (tests/engagement/pipeline_support.py), never with the
pipeline's own helpers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.demo.engagement import Collect
from shared.engagement.clickhouse import Warehouse
from shared.engagement.functions import Pipeline, use_pipeline
from shared.engagement.leaderboard import Leaderboard
from shared.errors import TransientError

from .pipeline_support import (
    content_msgs,
    engage_rows,
    exp_buckets,
    exp_top,
    final_rows,
    known_content_stream,
    make_contents,
    make_events,
    published,
    raw_count,
    setup_topics,
)
from .support import T0_MS, Env, app_function


class _FailingClient:
    """The real chDB client, except that inserts into ``table`` fail while ``failures`` lasts."""

    def __init__(self, inner: Any, table: str, failures: int) -> None:
        self.inner, self.table, self.failures = inner, table, failures

    def insert_arrow(self, table: str, *args: Any, **kwargs: Any) -> Any:
        if self.table in table and self.failures > 0:
            from clickhouse_connect.driver.exceptions import OperationalError

            self.failures -= 1
            raise OperationalError("connection reset by peer (injected)")
        return self.inner.insert_arrow(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_redis_down_before_the_batch_then_retry_completes(env: Env) -> None:
    """Redis unreachable from the first call (the content lookup): nothing is written anywhere."""
    s = env.settings
    rows, batch = known_content_stream(env, contents=2, events=60)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    down = Pipeline(s, redis=dead, warehouse=env.pipeline.warehouse, clock=lambda: env.clock[0])
    with use_pipeline(down), pytest.raises(TransientError) as info:
        app_function("engagement_enrich")(events=batch, out=_Out())
    assert info.value.store == "redis"
    assert env.pipeline.leaderboard.watermark(s.topic_engage, 0) is None  # nothing half applied
    env.call("engagement_enrich", batch)  # the host's retry
    now = T0_MS + 4 * 60_000
    assert env.pipeline.leaderboard.top(60, 5, now) == exp_top(exp_buckets(rows), 60, now, 5)
    assert len(final_rows(env)) == 60
    assert raw_count(env) == 60  # the retried insert was deduplicated by its token
    published(env, 60)


def test_clickhouse_down_mid_batch_then_retry_completes(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    contents = make_contents(2)
    rows = make_events(contents, 30)
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs(contents)))
    msgs = [*engage_rows(rows), (None, b"{broken")]
    batch = env.send(s.topic_engage, msgs)
    env.pipeline.warehouse.ensure_schema()
    flaky = Warehouse(
        _FailingClient(env.pipeline.warehouse.client, "engagement_enriched", 1),
        database=s.clickhouse_database,
    )
    down = Pipeline(s, redis=env.pipeline.store.client, warehouse=flaky, clock=lambda: env.clock[0])
    with use_pipeline(down), pytest.raises(TransientError) as info:
        app_function("engagement_enrich")(events=batch, out=_Out())
    assert info.value.store == "clickhouse"
    lb = env.pipeline.leaderboard
    assert lb.watermark(s.topic_engage, 0) is None
    assert lb.top(60, 5, T0_MS + 4 * 60_000) == []  # Redis untouched
    assert final_rows(env) == {}
    env.call("engagement_enrich", batch)  # the host's retry
    now = T0_MS + 4 * 60_000
    assert lb.top(60, 5, now) == exp_top(exp_buckets(rows), 60, now, 5)
    assert len(final_rows(env)) == 30
    assert env.pipeline.warehouse.count_dead_letters() == {"invalid_json": 1}
    assert int(env.pipeline.warehouse.query("SELECT count() FROM {db}.engagement_dead_letters")[0][0]) == 1
    published(env, 30)


class _Out:
    def set(self, val: list[str]) -> None:
        raise AssertionError("a failed function must not publish")


class _RedisServer:
    """A second, private redis-server (append-only file fsynced on every write) that a test can crash."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (bash scripts/services.sh install redis)"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.command = [
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
        ]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.ping():
                    break
            except redis.RedisError:
                assert self.process.poll() is None and time.monotonic() < deadline, (
                    "redis-server did not start"
                )
                time.sleep(0.05)
        probe.close()

    def crash(self) -> None:
        """SIGKILL, as a crashed or evicted Redis node: connections drop, no shutdown hook runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[_RedisServer]:
    server = _RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _CrashRedisAfterInsert:
    """The real chDB client; once armed, the next insert into ``table`` completes and then Redis crashes.

    The enrichment runs its leaderboard script only after the ClickHouse insert succeeded, so the crash hits
    exactly that step: the first Redis call after the insert.
    """

    def __init__(self, inner: Any, table: str, server: _RedisServer) -> None:
        self.inner, self.table, self.server = inner, table, server
        self.armed = False
        self.crashed_after: list[str] = []

    def insert_arrow(self, table: str, *args: Any, **kwargs: Any) -> Any:
        result = self.inner.insert_arrow(table, *args, **kwargs)
        if self.armed and self.table in table:
            self.armed = False
            self.server.crash()
            self.crashed_after.append(table)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _buckets(client: redis.Redis, lb: Leaderboard) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for key in client.scan_iter(f"{lb.prefix}zset:eng:minute:*"):
        members: Any = client.zrange(key, 0, -1, withscores=True)
        found[key.decode()] = {m.decode(): round(v, 2) for m, v in members}
    return found


def test_redis_crashes_mid_batch_after_the_clickhouse_insert_then_retry_completes(
    env: Env, private_redis: _RedisServer
) -> None:
    setup_topics(env)
    s = env.settings
    contents = make_contents(3)
    rows = make_events(contents, 90)
    env.pipeline.warehouse.ensure_schema()
    chdb = _CrashRedisAfterInsert(env.pipeline.warehouse.client, "engagement_enriched", private_redis)
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1, socket_timeout=5)
    pipeline = Pipeline(
        s,
        redis=client,
        warehouse=Warehouse(chdb, database=s.clickhouse_database),
        clock=lambda: env.clock[0],
    )
    lb = pipeline.leaderboard
    enrich = app_function("engagement_enrich")

    def call(name: str, events: list[Any], out: Any) -> None:
        with use_pipeline(pipeline):
            app_function(name)(events=events, out=out)

    call("engagement_content_cdc", env.send(s.topic_content, content_msgs(contents)), Collect())
    batch = env.send(s.topic_engage, engage_rows(rows))
    first = Collect()
    call("engagement_enrich", batch[:30], first)
    env.publish(first.items)
    buckets_before = _buckets(client, lb)
    assert lb.watermark(s.topic_engage, 0) == 29
    assert buckets_before

    chdb.armed = True
    with use_pipeline(pipeline), pytest.raises(TransientError) as info:
        enrich(events=batch[30:], out=_Out())
    assert info.value.store == "redis"
    assert chdb.crashed_after  # Redis went down right after the ClickHouse insert of this batch
    # the insert had succeeded: all 90 rows are in ClickHouse (each once)
    assert final_count(env) == (90, 90)

    private_redis.start()  # back, with what it had persisted
    assert lb.watermark(s.topic_engage, 0) == 29  # nothing half applied: watermark and scores untouched
    assert _buckets(client, lb) == buckets_before
    assert buckets_before == _exp_bucket_scores(lb, rows[:30])

    retry = Collect()
    call("engagement_enrich", batch[30:], retry)  # the host's retry of the same batch
    env.publish(retry.items)
    assert lb.watermark(s.topic_engage, 0) == 89
    assert _buckets(client, lb) == _exp_bucket_scores(lb, rows)
    now = T0_MS + 4 * 60_000
    for minutes in (1, 5, 15, 60):
        assert lb.top(minutes, 10, now) == exp_top(exp_buckets(rows), minutes, now, 10)
    # ClickHouse: the retried insert carried the same deduplication token; one row per event id under FINAL
    assert final_count(env) == (90, 90)
    assert raw_count(env) == 90
    assert sorted(final_rows(env)) == [r["id"] for r in rows]
    # a redelivery of the whole stream after the retry counts nothing
    with use_pipeline(pipeline):
        assert pipeline.enrich(batch).already_counted == 90
    assert _buckets(client, lb) == _exp_bucket_scores(lb, rows)
    assert sorted(v["id"] for _, v, _ in published(env, 90)) == [r["id"] for r in rows]
    client.close()


def final_count(env: Env) -> tuple[int, int]:
    """(rows, distinct event ids) of the enriched table under FINAL."""
    count, ids = env.pipeline.warehouse.query(
        "SELECT count(), uniqExact(id) FROM {db}.engagement_enriched FINAL"
    )[0]
    return int(count), int(ids)


def _exp_bucket_scores(lb: Leaderboard, rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The minute buckets computed independently (members with a zero score are not written)."""
    expected: dict[str, dict[str, float]] = {}
    for minute, members in exp_buckets(rows).items():
        scores = {m: float(v) for m, v in members.items() if v != 0}
        if scores:
            key = f"{lb.prefix}zset:eng:minute:" + time.strftime("%Y%m%d%H%M", time.gmtime(minute * 60))
            expected[key] = scores
    return expected
