"""Expectations and Kafka stream builders of the engagement pipeline tests.

Expected values are computed independently here (``decimal`` arithmetic, plain dictionaries), never with the
pipeline's own helpers.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

import azure.functions as func

from .support import T0_MS, Env, content_row, dumps, engagement_row

CENT = Decimal("0.01")


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
