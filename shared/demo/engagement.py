"""The engagement path on embedded defaults: simulated Debezium traffic through the registered functions.

Content and engagement rows shaped like the earlier connector's output are handed, as ``func.KafkaEvent``
batches built by the library's trigger converter, to the functions ``function_app.py`` registers
(``engagement_content_cdc``, ``engagement_enrich``), the way the worker invokes them, with a ``func.Out``
collector standing in for the Kafka output binding; then the timers ``engagement_leaderboard_windows`` and
``engagement_upkeep`` run once. Everything lands in chDB (``CLICKHOUSE_CHDB_PATH``) and Redis (``REDIS_URL``).
Some content arrives only after its engagements (those events are published unknown and re-enriched), and a
few bad records show the dead-letter path.

The functions are found by the dev host's discovery (:mod:`shared.demo.app`); ``function_app`` reads its
settings from the process environment when it is imported (``streamduck demo`` exports the demo's environment
first). The functions take their stores from
:func:`~shared.engagement.functions.pipeline_for`; the demo runs them against a pipeline built from the
``settings`` it is given (:func:`~shared.engagement.functions.use_pipeline`), so the summary always describes
those stores.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.demo.app import registered_functions
from shared.demo.stopping import check
from shared.engagement.functions import CONTENT_FUNCTION, ENRICH_FUNCTION, Pipeline, use_pipeline
from shared.engagement.kafka_io import trigger_batch
from shared.engagement.redis_io import redis_errors
from shared.settings import Settings

BATCH = 1000
_EVENT_MIX = (("play", 0.60), ("pause", 0.20), ("click", 0.15), ("finish", 0.05))
_DEVICES = ("ios", "android", "web-chrome", "web-safari", "roku")


WINDOWS_FUNCTION = "engagement_leaderboard_windows"
UPKEEP_FUNCTION = "engagement_upkeep"


def registered(name: str) -> Callable[..., None]:
    """The plain callable the worker invokes for function ``name`` of ``function_app`` (imported if needed)."""
    functions = registered_functions()
    if name not in functions:
        raise KeyError(f"no function named {name!r}; the app has {', '.join(sorted(functions))}")
    function: Callable[..., None] = functions[name].user_function
    return function


class Collect(func.Out[list[str]]):
    """The Kafka output binding as the host provides it: what the function sets is published afterwards."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def set(self, val: list[str]) -> None:
        self.items.extend(val)

    def get(self) -> list[str]:
        return self.items


def content_rows(rng: random.Random, count: int, source_ts_ms: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(count):
        kind = rng.choice(("podcast", "newsletter", "video"))
        rows.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "slug": f"seed-{kind}-{rng.getrandbits(32):08x}",
                "title": f"{kind.title()} #{rng.randint(1, 9999)}",
                "content_type": kind,
                "length_seconds": None if kind == "newsletter" else rng.randint(60, 3600),
                "publish_ts": "2025-08-27T10:00:00Z",
                "__op": "c",
                "__table": "content",
                "__source_ts_ms": source_ts_ms,
            }
        )
    return rows


def engagement_rows(
    rng: random.Random,
    content_ids: list[str],
    count: int,
    *,
    first_id: int,
    now_ms: int,
    spread_ms: int = 55 * 60_000,
) -> list[dict[str, Any]]:
    """``count`` flat ``engagement_events`` rows (ids from ``first_id``), event times within ``spread_ms``
    before ``now_ms``."""
    kinds = [k for k, _ in _EVENT_MIX]
    weights = [w for _, w in _EVENT_MIX]
    rows = []
    for i in range(count):
        event_type = rng.choices(kinds, weights)[0]
        ts_ms = now_ms - rng.randint(0, spread_ms)
        rows.append(
            {
                "id": first_id + i,
                "content_id": rng.choice(content_ids),
                "user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_type": event_type,
                "event_ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000))
                + f".{ts_ms % 1000:03d}Z",
                "duration_ms": None if event_type == "click" else rng.randint(500, 300_000),
                "device": rng.choice(_DEVICES),
                "raw_payload": {"app_version": "1.0.0", "ab_bucket": rng.choice("AB")},
                "__op": "c",
                "__table": "engagement_events",
                "__source_ts_ms": ts_ms,
            }
        )
    return rows


def _batch(topic: str, start: int, values: list[bytes | None], keys: list[str | None], ts: str) -> list[Any]:
    n = len(values)
    return trigger_batch(
        values=values,
        topics=[topic] * n,
        partitions=[0] * n,
        offsets=list(range(start, start + n)),
        keys=keys,
        timestamps=[ts] * n,
    )


def run_demo(settings: Settings, *, events: int, seed: int) -> dict[str, object]:
    """Push ``events`` simulated engagement events (and their content) through the functions; summarize."""
    rng = random.Random(seed)  # noqa: S311 (simulated traffic, not security)
    content_cdc, enrich = registered(CONTENT_FUNCTION), registered(ENRICH_FUNCTION)
    windows_timer, upkeep_timer = registered(WINDOWS_FUNCTION), registered(UPKEEP_FUNCTION)
    pipeline = Pipeline(settings)
    now_ms = int(time.time() * 1000)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms // 1000))
    contents = content_rows(rng, max(5, events // 250), now_ms - 60_000)
    late = contents[: max(1, len(contents) // 5)]  # published only after the engagements
    early = contents[len(late) :]
    out = Collect()
    lb = pipeline.leaderboard
    content_offset = (lb.watermark(settings.topic_content, 0) or -1) + 1
    engage_offset = (lb.watermark(settings.topic_engage, 0) or -1) + 1
    started = time.perf_counter()
    with use_pipeline(pipeline):
        content_cdc(
            events=_batch(
                settings.topic_content,
                content_offset,
                [json.dumps(c).encode() for c in early],
                [json.dumps({"id": c["id"]}) for c in early],
                ts,
            ),
            out=out,
        )
        content_offset += len(early)
        rows = engagement_rows(rng, [c["id"] for c in contents], events, first_id=seed * 10**9, now_ms=now_ms)
        values: list[bytes | None] = [json.dumps(r).encode() for r in rows]
        values[len(values) // 3 : len(values) // 3] = [
            b'{"id": 1, "content_id": ',  # truncated JSON
            json.dumps({**rows[0], "event_type": "share"}).encode(),  # unknown event_type
            json.dumps({k: v for k, v in rows[0].items() if k != "content_id"}).encode(),  # missing field
        ]
        keys: list[str | None] = [None] * len(values)
        for start in range(0, len(values), BATCH):
            check()
            chunk = values[start : start + BATCH]
            batch = _batch(
                settings.topic_engage, engage_offset + start, chunk, keys[start : start + BATCH], ts
            )
            enrich(events=batch, out=out)
        before_late = len(out.items)
        content_cdc(
            events=_batch(
                settings.topic_content,
                content_offset,
                [json.dumps(c).encode() for c in late],
                [c["id"] for c in late],
                ts,
            ),
            out=out,
        )
        reenriched = (
            len(out.items) - before_late
        )  # the late content's function publishes the re-enriched events
        elapsed = time.perf_counter() - started
        timer_minute = pipeline.now_ms() // 60_000
        windows_timer(timer=func.TimerRequest(past_due=False))
        upkeep_timer(timer=func.TimerRequest(past_due=False), out=out)
        windows = _window_sizes(pipeline, timer_minute)
        minutes = min(60, lb.max_window_minutes)
        top = pipeline.top(minutes=minutes, n=5)
    wh = pipeline.warehouse
    rows_total, unknown = wh.query(
        "SELECT count(), countIf(NOT content_known) FROM {db}.engagement_enriched FINAL"
    )[0]
    return {
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed) if elapsed else None,
        "clickhouse_database": settings.clickhouse_database,
        "clickhouse_rows": int(rows_total),
        "clickhouse_unknown_content_rows": int(unknown),
        "reenriched_when_content_arrived": reenriched,
        "published_to": settings.topic_out,
        "published_envelopes": len(out.items),
        "dead_letters": wh.count_dead_letters(),
        "leaderboard_windows": windows,
        "leaderboard_top5_last_60_min": [
            {
                "rank": e.rank,
                "content_id": e.content_id,
                "title": e.title,
                "engagement_seconds": e.engagement_seconds,
            }
            for e in top
        ],
    }


def _window_sizes(pipeline: Pipeline, since_minute: int) -> dict[int, int]:
    """Entries of each window the timer built (for ``since_minute`` or later), as the reader finds them."""
    lb = pipeline.leaderboard
    with redis_errors():
        built = {int(k): int(v) for k, v in lb.client.hgetall(lb.meta_key).items()}
        sizes = {m: int(lb.client.zcard(lb.window_key(m))) for m in lb.windows}
    return {m: size for m, size in sizes.items() if built.get(m, -1) >= since_minute}
