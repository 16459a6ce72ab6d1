"""Every kind of bad input is parked in the dead-letter table with its raw value; its neighbours land.

Expected values are computed independently (tests/engagement/pipeline_support.py), never with the
pipeline's own helpers.
"""

from __future__ import annotations

import json
import uuid

from .pipeline_support import final_rows, setup_topics
from .support import T0_MS, Env, dumps, engagement_row

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
