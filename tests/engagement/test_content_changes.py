"""Content changes through the CDC function: late content re-enriches its engagements, the sweep catches
races, updates, deletes and tombstones reach Redis, ClickHouse and the leaderboard.

Expected values are computed independently (tests/engagement/pipeline_support.py), never with the
pipeline's own helpers.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

from .pipeline_support import (
    check_enriched,
    content_msgs,
    engage_rows,
    exp_buckets,
    exp_top,
    final_rows,
    make_contents,
    make_events,
    published,
    setup_topics,
)
from .support import T0_MS, Env, content_row, dumps, engagement_row


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
    from shared.engagement.decode_rows import decode_content
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
    from shared.engagement.batch import RawRecord

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
