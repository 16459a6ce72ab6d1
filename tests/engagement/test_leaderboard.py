"""The leaderboard's windows of 1 to 60 minutes across minute, hour and day boundaries, and the bucket TTL
that must cover the longest window.

Expected values are computed independently (tests/engagement/pipeline_support.py), never with the
pipeline's own helpers.
"""

from __future__ import annotations

from typing import Any

import pytest

from .pipeline_support import (
    content_msgs,
    engage_rows,
    exp_buckets,
    exp_top,
    make_contents,
    published,
    setup_topics,
)
from .support import T0_MS, Env, engagement_row, iso


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


def test_bucket_ttl_must_cover_the_longest_window() -> None:
    from shared.errors import ConfigError
    from shared.settings import load_settings

    with pytest.raises(ConfigError) as info:
        load_settings({"LEADERBOARD_WINDOWS": "5,120", "LEADERBOARD_BUCKET_TTL_SECONDS": "3600"})
    assert "LEADERBOARD_BUCKET_TTL_SECONDS" in info.value.problems
    assert load_settings({"LEADERBOARD_WINDOWS": "60,1,5"}).leaderboard_windows == (1, 5, 60)
