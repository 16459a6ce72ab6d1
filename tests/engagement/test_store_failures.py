"""The engagement pipeline against real Kafka, Redis and chDB, through the functions of ``function_app``.

Expected values are computed independently here (``decimal`` arithmetic, plain dictionaries), never with the
pipeline's own helpers.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, cast

import azure.functions as func
import pytest
import redis

from shared.engagement.clickhouse import Warehouse
from shared.engagement.demo import Collect
from shared.engagement.functions import Pipeline, use_pipeline
from shared.engagement.leaderboard import Leaderboard
from shared.errors import TransientError

from .support import (
    T0_MS,
    Env,
    app_function,
    app_functions,
    content_row,
    dumps,
    engagement_row,
    iso,
)

CENT = Decimal("0.01")
ENGAGEMENT_FUNCTIONS = (
    "engagement_content_cdc",
    "engagement_enrich",
    "engagement_leaderboard_windows",
    "engagement_upkeep",
)


# --------------------------------------------------------------------------------------- expectations


def exp_seconds(duration_ms: int | None) -> Decimal | None:
    return None if duration_ms is None else (Decimal(duration_ms) / 1000).quantize(CENT, ROUND_HALF_UP)


def exp_pct(duration_ms: int | None, length: int | None) -> Decimal | None:
    if duration_ms is None or not length:
        return None
    pct = Decimal(duration_ms) / 1000 / Decimal(length) * 100
    return min(Decimal(100), pct).quantize(CENT, ROUND_HALF_UP)


def minute_of(row: dict[str, Any]) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(row["event_ts"]).timestamp()) // 60


def exp_buckets(rows: list[dict[str, Any]]) -> dict[int, dict[str, Decimal]]:
    buckets: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        seconds = exp_seconds(row["duration_ms"]) or Decimal(0)
        if row["__op"] in ("c", "r"):
            buckets[minute_of(row)][row["content_id"]] += seconds
        elif row["__op"] == "d":
            buckets[minute_of(row)][row["content_id"]] -= seconds
    return buckets


def exp_top(
    buckets: dict[int, dict[str, Decimal]], minutes: int, now_ms: int, n: int
) -> list[tuple[str, float]]:
    current = now_ms // 60_000
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for minute in range(current - minutes, current):
        for member, seconds in buckets.get(minute, {}).items():
            totals[member] += seconds
    ranked = sorted(((float(v), k) for k, v in totals.items() if v > 0), reverse=True)
    return [(k, round(v, 2)) for v, k in ranked[:n]]


def published(env: Env, count: int) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    messages = env.consume(env.settings.topic_out, count)
    result = []
    for m in messages:
        raw_headers = cast(list[tuple[str, bytes]], m.headers() or [])
        headers = {k: v.decode() for k, v in raw_headers}
        key, value = cast(bytes, m.key()), cast(bytes, m.value())
        result.append((key.decode(), json.loads(value), headers))
    return result


def final_rows(env: Env) -> dict[int, tuple[Any, ...]]:
    rows = env.pipeline.warehouse.query(
        "SELECT id, toString(content_id), content_known, title, content_type, length_seconds, "
        "engagement_seconds, engagement_pct, event_type, toUnixTimestamp64Milli(event_ts), version "
        "FROM {db}.engagement_enriched FINAL ORDER BY id"
    )
    return {int(r[0]): r for r in rows}


def raw_count(env: Env) -> int:
    return int(env.pipeline.warehouse.query("SELECT count() FROM {db}.engagement_enriched")[0][0])


def check_enriched(
    value: dict[str, Any], row: dict[str, Any], content: dict[str, Any] | None, *, known: bool
) -> None:
    assert value["id"] == row["id"]
    assert value["content_id"] == row["content_id"]
    assert value["user_id"] == row["user_id"]
    assert value["event_type"] == row["event_type"]
    assert value["event_ts"] == row["event_ts"]
    assert value["duration_ms"] == row["duration_ms"]
    assert value["device"] == row["device"]
    assert value["content_known"] is known
    secs = exp_seconds(row["duration_ms"])
    assert value["engagement_seconds"] == (str(secs) if secs is not None else None)
    if known:
        assert content is not None
        assert value["title"] == content["title"]
        assert value["content_type"] == content["content_type"]
        assert value["length_seconds"] == content["length_seconds"]
        pct = exp_pct(row["duration_ms"], content["length_seconds"])
        assert value["engagement_pct"] == (str(pct) if pct is not None else None)
    else:
        assert value["title"] is None
        assert value["content_type"] is None
        assert value["engagement_pct"] is None


def make_contents(n: int) -> list[dict[str, Any]]:
    kinds = [("video", 600), ("podcast", 1800), ("newsletter", None), ("video", 45)]
    return [
        content_row(
            str(uuid.uuid4()), title=f"Item {i}", content_type=kinds[i % 4][0], length_seconds=kinds[i % 4][1]
        )
        for i in range(n)
    ]


def make_events(
    contents: list[dict[str, Any]], n: int, *, first_id: int = 1, span_min: int = 12
) -> list[dict[str, Any]]:
    rows = []
    types = ["play", "pause", "finish", "click"]
    for i in range(n):
        event_type = types[i % 4]
        duration = None if event_type == "click" else (i * 7919) % 900_000 + 1  # some exceed the length
        ts = T0_MS - span_min * 60_000 + (i * 60_000 * (span_min + 3)) // n + (i % 1000)
        rows.append(
            engagement_row(
                first_id + i,
                contents[i % len(contents)]["id"],
                ts_ms=ts,
                duration_ms=duration,
                event_type=event_type,
            )
        )
    return rows


def setup_topics(env: Env) -> None:
    s = env.settings
    env.create_topics(s.topic_content, s.topic_engage, s.topic_out)


def known_content_stream(
    env: Env, contents: int, events: int
) -> tuple[list[dict[str, Any]], list[func.KafkaEvent]]:
    """Topics, ``contents`` content rows applied by the CDC function, and ``events`` engagements of them sent
    to the engagement topic: the engagement rows and the consumed batch (not enriched yet)."""
    setup_topics(env)
    s = env.settings
    content = make_contents(contents)
    rows = make_events(content, events)
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs(content)))
    return rows, env.send(s.topic_engage, engage_rows(rows))


def engage_rows(rows: list[dict[str, Any]]) -> list[tuple[str | None, bytes | None]]:
    return [(row["content_id"], dumps(row)) for row in rows]  # keyed by content_id, as the connector did


def content_msgs(rows: list[dict[str, Any]]) -> list[tuple[str | None, bytes | None]]:
    return [(json.dumps({"id": row["id"]}), dumps(row)) for row in rows]


# --------------------------------------------------------------------------------------- end to end


def test_end_to_end_enriched_topic_clickhouse_and_leaderboard(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    contents = make_contents(4)
    by_id = {c["id"]: c for c in contents}
    rows = make_events(contents, 240)

    out = env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs(contents)))
    assert out == []  # nothing was waiting for this content
    batch = env.send(s.topic_engage, engage_rows(rows))
    for start in range(0, len(batch), 100):
        env.call("engagement_enrich", batch[start : start + 100])

    # the enriched topic, consumed back
    by_event = {r["id"]: r for r in rows}
    messages = published(env, len(rows))
    for key, value, headers in messages:
        row = by_event[value["id"]]
        assert key == row["content_id"]
        assert headers["event_id"] == str(row["id"])
        assert int(headers["event_version"]) == value["version"]
        check_enriched(value, row, by_id[row["content_id"]], known=True)
    assert sorted(v["id"] for _, v, _ in messages) == sorted(by_event)

    # ClickHouse rows
    stored = final_rows(env)
    assert set(stored) == set(by_event)
    for event_id, r in stored.items():
        row = by_event[event_id]
        content = by_id[row["content_id"]]
        assert r[1] == row["content_id"]
        assert r[2] is True
        assert r[3] == content["title"]
        assert r[6] == exp_seconds(row["duration_ms"])
        assert r[7] == exp_pct(row["duration_ms"], content["length_seconds"])
        assert r[9] == json_ts(row["event_ts"])
    assert raw_count(env) == len(rows)

    # minute aggregate view agrees with the rows
    view = env.pipeline.warehouse.query(
        "SELECT sum(events), sum(engagement_seconds) FROM {db}.engagement_by_minute"
    )
    assert view[0][0] == len(rows)
    assert view[0][1] == sum((exp_seconds(r["duration_ms"]) or Decimal(0)) for r in rows)

    # leaderboard: precomputed by the timer function, read with titles
    env.clock[0] = (T0_MS + 4 * 60_000 + 5_000) / 1000
    env.call("engagement_leaderboard_windows")
    buckets = exp_buckets(rows)
    now_ms = int(env.clock[0] * 1000)
    for minutes in s.leaderboard_windows:
        top = env.pipeline.top(minutes=minutes, n=3, now_ms=now_ms)
        assert [(e.content_id, e.engagement_seconds) for e in top] == exp_top(buckets, minutes, now_ms, 3)
        assert all(e.title == by_id[e.content_id]["title"] for e in top)


def json_ts(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_replayed_and_resplit_batches_count_once(env: Env) -> None:
    s = env.settings
    rows, batch = known_content_stream(env, contents=3, events=150)
    for start in range(0, 150, 50):
        env.call("engagement_enrich", batch[start : start + 50])
    lb_before = env.pipeline.leaderboard.top(60, 10, T0_MS + 4 * 60_000)
    rows_before = final_rows(env)

    # exact redelivery (same batches), then a rebalance that splits the stream differently
    with use_pipeline(env.pipeline):
        for start in range(0, 150, 50):
            assert env.pipeline.enrich(batch[start : start + 50]).already_counted == 50
        assert env.pipeline.enrich(batch[25:140]).already_counted == 115
    env.call("engagement_enrich", batch[120:150])

    assert env.pipeline.leaderboard.top(60, 10, T0_MS + 4 * 60_000) == lb_before
    assert env.pipeline.leaderboard.top(60, 10, T0_MS + 4 * 60_000) == exp_top(
        exp_buckets(rows), 60, T0_MS + 4 * 60_000, 10
    )
    assert final_rows(env) == rows_before
    # identical batches were dropped by the deduplication token; re-split ones are replaced under FINAL
    assert raw_count(env) == 150 + 115 + 30
    assert env.pipeline.leaderboard.watermark(s.topic_engage, 0) == 149


def test_partly_counted_batch_counts_only_its_new_records(env: Env) -> None:
    s = env.settings
    rows, batch = known_content_stream(env, contents=3, events=90)
    env.call("engagement_enrich", batch[0:40])
    with use_pipeline(env.pipeline):  # a rebalance redelivers from offset 20: half of it was counted
        assert env.pipeline.enrich(batch[20:70]).already_counted == 20
    env.call("engagement_enrich", batch[70:90])

    now = T0_MS + 4 * 60_000
    for minutes in (1, 5, 60):
        assert env.pipeline.leaderboard.top(minutes, 10, now) == exp_top(exp_buckets(rows), minutes, now, 10)
    assert env.pipeline.leaderboard.watermark(s.topic_engage, 0) == 89
    assert sorted(final_rows(env)) == sorted(r["id"] for r in rows)


def test_content_arriving_after_its_engagements(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    contents = make_contents(2)
    rows = make_events(contents, 40)
    env.call("engagement_enrich", env.send(s.topic_engage, engage_rows(rows)))
    first = published(env, 40)
    for _, value, _ in first:
        check_enriched(value, next(r for r in rows if r["id"] == value["id"]), None, known=False)
    assert all(r[2] is False for r in final_rows(env).values())

    out = env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs(contents)))
    assert len(out) == 40
    all_messages = published(env, 80)
    by_id = {c["id"]: c for c in contents}
    versions: dict[int, list[int]] = defaultdict(list)
    for _, value, _ in all_messages:
        versions[value["id"]].append(value["version"])
    for _, value, _ in all_messages[40:]:
        row = next(r for r in rows if r["id"] == value["id"])
        check_enriched(value, row, by_id[row["content_id"]], known=True)
    assert all(v[1] > v[0] for v in versions.values())  # the re-enriched version wins
    stored = final_rows(env)
    assert len(stored) == 40
    assert all(r[2] is True for r in stored.values())
    # the leaderboard never depended on the content
    now = T0_MS + 4 * 60_000
    assert env.pipeline.leaderboard.top(30, 5, now) == exp_top(exp_buckets(rows), 30, now, 5)


def test_sweep_re_enriches_events_that_missed_their_content(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    contents = make_contents(1)
    rows = make_events(contents, 10)
    env.call("engagement_enrich", env.send(s.topic_engage, engage_rows(rows)))
    # the content reached the store, but its CDC function ran before these rows were stored (a race)
    from shared.engagement.cdc import decode_content
    from shared.engagement.kafka_io import batch_from_messages  # noqa: F401  (same path as the worker)

    change = decode_content(
        _record(s.topic_content, dumps(contents[0]), json.dumps({"id": contents[0]["id"]}))
    )
    env.pipeline.store.apply([change])
    out = env.call("engagement_upkeep")
    assert len(out) == 10
    assert all(r[2] is True and r[3] == contents[0]["title"] for r in final_rows(env).values())
    assert env.call("engagement_upkeep") == []  # nothing left to sweep
    published(env, 20)


def _record(topic: str, value: bytes | None, key: str | None, offset: int = 0) -> Any:
    from shared.engagement.cdc import RawRecord

    return RawRecord(topic=topic, partition=0, offset=offset, key=key, value=value, timestamp_ms=T0_MS)


def test_content_updates_and_deletes(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    cid, other = str(uuid.uuid4()), str(uuid.uuid4())
    v1 = content_row(cid, title="First", version=T0_MS - 10_000)
    v2 = content_row(cid, title="Second", length_seconds=1200, op="u", version=T0_MS - 5_000)
    o1 = content_row(other, title="Other", version=T0_MS - 10_000)
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs([v1, o1])))
    early = [engagement_row(1, cid, ts_ms=T0_MS - 7_000, duration_ms=60_000)]
    env.call("engagement_enrich", env.send(s.topic_engage, engage_rows(early)))
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs([v2, v1])))  # v1 replayed late
    late = [engagement_row(2, cid, ts_ms=T0_MS - 1_000, duration_ms=60_000)]
    env.call("engagement_enrich", env.send(s.topic_engage, engage_rows(late)))
    values = {v["id"]: v for _, v, _ in published(env, 2)}
    assert values[1]["title"] == "First"
    assert values[1]["engagement_pct"] == "10.00"
    assert values[2]["title"] == "Second"
    assert values[2]["engagement_pct"] == "5.00"
    info = env.pipeline.store.get_many([cid], use_cache=False)[cid]
    assert info is not None
    assert info.title == "Second"

    # delete (rewrite mode, __op = d) of one content, tombstone of the other
    deleted = content_row(cid, title="Second", op="d", version=T0_MS + 1_000)
    tombstone: list[tuple[str | None, bytes | None]] = [(json.dumps({"id": other}), None)]
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs([deleted]) + tombstone))
    assert env.pipeline.store.get_many([cid, other], use_cache=False) == {cid: None, other: None}
    live = env.pipeline.warehouse.query("SELECT toString(id) FROM {db}.content FINAL")
    assert live == []
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs([v2])))  # old upsert replayed
    assert env.pipeline.store.get_many([cid], use_cache=False)[cid] is None

    # engagement delete: ClickHouse row gone, leaderboard subtracted
    gone = engagement_row(1, cid, ts_ms=T0_MS - 7_000, duration_ms=60_000, op="d", version=T0_MS + 2_000)
    env.call("engagement_enrich", env.send(s.topic_engage, engage_rows([gone])))
    assert sorted(final_rows(env)) == [2]
    now = T0_MS + 60_000
    assert env.pipeline.leaderboard.top(10, 5, now) == exp_top(exp_buckets([*early, *late, gone]), 10, now, 5)
    assert env.pipeline.leaderboard.top(10, 5, now) == [(cid, 60.0)]
    deleted_msg = published(env, 3)[2][1]
    assert deleted_msg["deleted"] is True
    assert deleted_msg["id"] == 1


BAD_ENGAGEMENTS: list[tuple[str, bytes]] = [
    ("invalid_json", b'{"id": 1, "content_id": '),
    ("invalid_json", b"\xff\xfe\x00 not utf-8"),
    ("not_an_object", b"[1, 2, 3]"),
    ("missing_field", b'{"id": 5, "event_type": "play", "event_ts": "2026-03-01T23:58:00Z"}'),
    (
        "wrong_type",
        b'{"id": "six", "content_id": "%s", "event_type": "play", "event_ts": "2026-03-01T23:58:00Z"}',
    ),
    ("wrong_type", b'{"id": 7, "content_id": "%s", "event_type": "play", "event_ts": "yesterday"}'),
    (
        "unknown_event_type",
        b'{"id": 8, "content_id": "%s", "event_type": "share", "event_ts": "2026-03-01T23:58:00Z"}',
    ),
    (
        "invalid_value",
        b'{"id": 9, "content_id": "%s", "event_type": "play", "event_ts": "2026-03-01T23:58:00Z", '
        b'"duration_ms": -5}',
    ),
    (
        "invalid_value",
        b'{"id": 10, "content_id": "not-a-uuid", "event_type": "play", "event_ts": "2026-03-01T23:58:00Z"}',
    ),
    (
        "invalid_value",
        b'{"id": 11, "content_id": "%s", "event_type": "play", "event_ts": "2026-03-01T23:58:00Z", '
        b'"__op": "x"}',
    ),
]


def test_every_kind_of_bad_input_is_parked_and_neighbours_land(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    cid = str(uuid.uuid4())
    good = [engagement_row(100 + i, cid, ts_ms=T0_MS - 30_000, duration_ms=10_000) for i in range(3)]
    bad = [(kind, raw.replace(b"%s", cid.encode())) for kind, raw in BAD_ENGAGEMENTS]
    msgs: list[tuple[str | None, bytes | None]] = [(cid, dumps(good[0]))]
    msgs += [(None, raw) for _, raw in bad]
    msgs += [(cid, dumps(good[1])), (cid, None), (cid, dumps(good[2]))]  # a tombstone among them
    env.call("engagement_enrich", env.send(s.topic_engage, msgs))
    bad_content: list[tuple[str | None, bytes | None]] = [
        ("garbage-key", None),  # tombstone without a usable key
        (None, json.dumps({"id": cid, "content_type": "video"}).encode()),  # no title
        (None, json.dumps({"id": cid, "title": "x", "content_type": "book"}).encode()),
    ]
    env.call("engagement_content_cdc", env.send(s.topic_content, bad_content))

    assert sorted(final_rows(env)) == [100, 101, 102]
    parked = env.pipeline.warehouse.query(
        "SELECT source_topic, source_partition, source_offset, kind, hex(raw_value), reason, function "
        "FROM {db}.engagement_dead_letters FINAL ORDER BY source_topic, source_offset"
    )
    engage = [p for p in parked if p[0] == s.topic_engage]
    assert [(p[2], p[3]) for p in engage] == [(i + 1, kind) for i, (kind, _) in enumerate(bad)]
    for p, (_, raw) in zip(engage, bad, strict=True):
        assert p[1] == 0
        assert p[5]
        assert p[6] == "engagement_enrich"
        assert bytes.fromhex(p[4]) == raw  # raw value kept intact, non-UTF-8 bytes included
    content = [p for p in parked if p[0] == s.topic_content]
    assert [p[3] for p in content] == ["invalid_key", "missing_field", "invalid_value"]
    counts = env.pipeline.warehouse.count_dead_letters()
    assert sum(counts.values()) == len(bad) + 3
    # the watermark covers bad records and the tombstone too
    assert env.pipeline.leaderboard.watermark(s.topic_engage, 0) == len(msgs) - 1


# --------------------------------------------------------------------------------------- failures


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


# --------------------------------------------------------------------------------------- windows


def test_windows_1_to_60_minutes_across_minute_hour_and_day_boundaries(env: Env) -> None:
    setup_topics(env)
    s = env.settings
    contents = make_contents(5)
    rows = []
    event_id = 1
    # one or more events in every minute from 70 minutes before T0 to 3 minutes after (crosses midnight)
    for minute in range(-70, 4):
        for k in range(1 + (minute % 3)):
            ts = T0_MS + minute * 60_000 + (k * 29_999 if minute % 2 else 59_999)
            rows.append(
                engagement_row(
                    event_id,
                    contents[(event_id * 3) % 5]["id"],
                    ts_ms=ts,
                    duration_ms=(event_id * 3571) % 200_000,
                )
            )
            event_id += 1
    rows.append(
        engagement_row(event_id, contents[0]["id"], ts_ms=1_772_409_599_999, duration_ms=1_000)
    )  # 23:59:59.999
    rows.append(
        engagement_row(event_id + 1, contents[1]["id"], ts_ms=1_772_409_600_000, duration_ms=2_000)
    )  # 00:00
    env.call("engagement_content_cdc", env.send(s.topic_content, content_msgs(contents)))
    env.call("engagement_enrich", env.send(s.topic_engage, engage_rows(rows)))
    published(env, len(rows))

    lb = env.pipeline.leaderboard
    client = env.pipeline.store.client
    assert client.zscore(lb.bucket_key(1_772_409_599_999 // 60_000), contents[0]["id"]) is not None
    assert lb.bucket_key(1_772_409_599_999 // 60_000).endswith("zset:eng:minute:202603012359")
    assert lb.bucket_key(1_772_409_600_000 // 60_000).endswith("zset:eng:minute:202603020000")
    ttl = client.ttl(lb.bucket_key(T0_MS // 60_000))
    assert 60 * 60 + 60 < ttl <= s.leaderboard_bucket_ttl_seconds

    buckets = exp_buckets(rows)
    for now_ms in (T0_MS + 3 * 60_000 + 1, T0_MS + 2 * 60_000 + 59_999, 1_772_409_600_000):
        env.clock[0] = now_ms / 1000
        env.call("engagement_leaderboard_windows")
        for minutes in range(1, 61):
            got = lb.top(minutes, 5, now_ms)
            assert got == exp_top(buckets, minutes, now_ms, 5), (iso(now_ms), minutes)
        precomputed: Any = client.zrevrange(lb.window_key(60), 0, 4, withscores=True)
        assert [(m.decode(), round(v, 2)) for m, v in precomputed] == exp_top(buckets, 60, now_ms, 5)


# --------------------------------------------------------------------------------------- bindings


@pytest.mark.parametrize("name", ["engagement_content_cdc", "engagement_enrich"])
def test_kafka_trigger_and_output_bindings(name: str) -> None:
    import function_app

    fn = app_functions()[name]
    assert fn.get_trigger().get_dict_repr()["type"] == "kafkaTrigger"
    bindings = [json.loads(b) for b in fn.get_raw_bindings()]  # the JSON the worker sends the host
    trigger = next(b for b in bindings if b["direction"] == "IN")
    s = function_app.settings
    assert trigger["type"] == "kafkaTrigger"
    assert trigger["topic"] == (s.topic_content if name == "engagement_content_cdc" else s.topic_engage)
    assert trigger["brokerList"] == "KAFKA_BROKERS"  # an app-setting name, resolved by the extension
    assert trigger["consumerGroup"] == s.kafka_consumer_group
    assert trigger["cardinality"] == "MANY"
    assert trigger["dataType"] == "BINARY"
    assert trigger["protocol"] == s.kafka_protocol.value
    assert trigger["authenticationMode"] == s.kafka_auth_mode.value
    output = next(b for b in bindings if b["direction"] == "OUT")
    assert output["type"] == "kafka"
    assert output["name"] == "out"
    assert output["topic"] == s.topic_out
    assert output["brokerList"] == "KAFKA_BROKERS"
    retry = fn.get_settings_dict("retry_policy")  # sent to the host as the function's retry options
    assert retry["strategy"] == "exponential_backoff"
    assert retry["max_retry_count"] == str(s.retry_max_count) == "-1"  # unlimited by default
    assert retry["minimum_interval"] == s.retry_min_interval
    assert retry["maximum_interval"] == s.retry_max_interval


@pytest.mark.parametrize(
    ("name", "schedule_attr"),
    [
        ("engagement_leaderboard_windows", "leaderboard_schedule"),
        ("engagement_upkeep", "clickhouse_upkeep_schedule"),
    ],
)
def test_timer_bindings(name: str, schedule_attr: str) -> None:
    import function_app

    fn = app_functions()[name]
    trigger = fn.get_trigger().get_dict_repr()
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == getattr(function_app.settings, schedule_attr)
    outputs = [json.loads(b) for b in fn.get_raw_bindings() if json.loads(b)["direction"] == "OUT"]
    assert [o["type"] for o in outputs] == (["kafka"] if name == "engagement_upkeep" else [])


def test_envelope_bodies_and_missing_keys_fall_back_to_metadata(env: Env) -> None:
    """String-typed values arrive wrapped in the extension's envelope; keys may be None on the event."""
    from shared.engagement.cdc import parse_content_key, records_from_events
    from shared.engagement.kafka_io import trigger_batch

    cid = str(uuid.uuid4())
    row = dumps(content_row(cid))
    envelope = json.dumps(
        {
            "Offset": 7,
            "Partition": 0,
            "Topic": "content.flat",
            "Timestamp": iso(T0_MS),
            "Key": cid,
            "Value": row.decode(),
            "Headers": [],
        }
    ).encode()
    events = trigger_batch(
        values=[envelope, None],
        topics=["content.flat"] * 2,
        partitions=[0, 0],
        offsets=[7, 8],
        keys=[None, json.dumps({"id": cid})],
        timestamps=[iso(T0_MS)] * 2,
    )
    records = records_from_events(events)
    assert records[0].value == row
    assert records[0].key == cid
    assert records[0].offset == 7
    assert records[1].value is None
    assert records[1].key == json.dumps({"id": cid})
    assert {parse_content_key(k) for k in (cid, json.dumps(cid), json.dumps({"id": cid}), cid.upper())} == {
        cid
    }
    assert parse_content_key("nonsense") is None


def test_bucket_ttl_must_cover_the_longest_window() -> None:
    from shared.errors import ConfigError
    from shared.settings import load_settings

    with pytest.raises(ConfigError) as info:
        load_settings({"LEADERBOARD_WINDOWS": "5,120", "LEADERBOARD_BUCKET_TTL_SECONDS": "3600"})
    assert "LEADERBOARD_BUCKET_TTL_SECONDS" in info.value.problems
    assert load_settings({"LEADERBOARD_WINDOWS": "60,1,5"}).leaderboard_windows == (1, 5, 60)


def test_engagement_pct_definition() -> None:
    from shared.engagement.enrich import engagement_centis, engagement_pct_centis, format_centis

    cases = [
        (12_345, 600),
        (5, 600),
        (4, 600),
        (600_000, 600),
        (900_000, 600),
        (0, 60),
        (None, 600),
        (1000, None),
        (1000, 0),
        (333, 7),
    ]
    for duration, length in cases:
        pct = exp_pct(duration, length)
        assert format_centis(engagement_pct_centis(duration, length)) == (
            str(pct) if pct is not None else None
        )
        secs = exp_seconds(duration)
        assert format_centis(engagement_centis(duration)) == (str(secs) if secs is not None else None)


def test_demo_runs_on_embedded_defaults(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo hands its batches to the functions function_app registers, timers included."""
    from shared.engagement.demo import run_demo

    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name in ENGAGEMENT_FUNCTIONS:
        fn = app_functions()[name]
        original = fn.get_user_function()

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name].append(kwargs)
            return _original(*args, **kwargs)

        monkeypatch.setattr(fn, "_func", spy)

    summary = run_demo(env.settings, events=2_000, seed=3)
    assert [len(calls[n]) for n in ENGAGEMENT_FUNCTIONS] == [2, 3, 1, 1]  # 2,003 records in batches of 1,000
    assert all(isinstance(c["out"], func.Out) for n in ENGAGEMENT_FUNCTIONS for c in calls[n] if "out" in c)
    assert all(isinstance(c["timer"], func.TimerRequest) for n in ENGAGEMENT_FUNCTIONS[2:] for c in calls[n])
    assert sum(len(c["events"]) for c in calls["engagement_enrich"]) == 2_003
    reenriched = summary["reenriched_when_content_arrived"]
    assert isinstance(reenriched, int)
    assert reenriched > 0
    assert summary["published_envelopes"] == 2_000 + reenriched
    windows = summary["leaderboard_windows"]
    assert isinstance(windows, dict)
    assert sorted(windows) == list(env.settings.leaderboard_windows)
    assert windows[60] >= 5
    assert summary["clickhouse_rows"] == 2_000
    assert summary["clickhouse_unknown_content_rows"] == 0
    assert summary["dead_letters"] == {"invalid_json": 1, "missing_field": 1, "unknown_event_type": 1}
    top = summary["leaderboard_top5_last_60_min"]
    assert isinstance(top, list)
    assert len(top) == 5
    assert all(e["title"] for e in top)
