"""Replays against real Kafka, Redis and chDB: redelivered and re-split batches count once, the watermark
follows the stream.

Expected values are computed independently (tests/engagement/pipeline_support.py), never with the
pipeline's own helpers.
"""

from __future__ import annotations

from shared.engagement.functions import use_pipeline

from .pipeline_support import exp_buckets, exp_top, final_rows, known_content_stream, raw_count
from .support import T0_MS, Env


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
