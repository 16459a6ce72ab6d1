"""The engagement pipeline end to end through the functions of ``function_app``: the enriched topic,
ClickHouse rows and the leaderboard, the engagement measures, the extension's envelopes and the demo.

Expected values are computed independently (tests/engagement/pipeline_support.py), never with the
pipeline's own helpers.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import azure.functions as func
import pytest

from .pipeline_support import (
    check_enriched,
    content_msgs,
    engage_rows,
    exp_buckets,
    exp_pct,
    exp_seconds,
    exp_top,
    final_rows,
    make_contents,
    make_events,
    published,
    raw_count,
    setup_topics,
)
from .support import T0_MS, Env, app_functions, content_row, dumps, iso

ENGAGEMENT_FUNCTIONS = (
    "engagement_content_cdc",
    "engagement_enrich",
    "engagement_leaderboard_windows",
    "engagement_upkeep",
)


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


def test_envelope_bodies_and_missing_keys_fall_back_to_metadata(env: Env) -> None:
    """String-typed values arrive wrapped in the extension's envelope; keys may be None on the event."""
    from shared.engagement.batch import records_from_events
    from shared.engagement.debezium import parse_content_key
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


def test_engagement_pct_definition() -> None:
    from shared.engagement.enriched import engagement_centis, engagement_pct_centis, format_centis

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
    from shared.demo.engagement import run_demo

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
