"""``streamduck demo``: the main job on embedded defaults, then a summary.

Runs simulated traffic through every function of both pipelines (:mod:`shared.demo`) into local DuckDB files,
chDB and Redis. Redis: ``REDIS_URL`` when it is set (it must answer); otherwise a Redis named with
``--local-redis`` when it answers; otherwise a temporary ``redis-server`` that the demo starts and stops
itself (:mod:`shared.demo.redis_server`). This module reads the environment, shows progress and renders the
summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from shared.cli.environment import export, settings_from
from shared.cli.output import EXIT_FAILED, EXIT_UNAVAILABLE, err, fail, out
from shared.demo.redis_server import RedisUnavailable, redis_for_demo
from shared.demo.run import run_pipelines, storage


def run_demo(
    environ: Mapping[str, str],
    *,
    events: int,
    seed: int,
    progress: bool,
    local_redis: str | None = None,
) -> dict[str, Any]:
    env = dict(environ)
    summary: dict[str, Any] = {"events_per_pipeline": events, "seed": seed, "pipelines": {}}
    try:
        with redis_for_demo(env, local_redis) as (url, how):
            summary["redis"] = {"url": url, "source": how}
            settings = settings_from(env)
            export(env)
            summary["storage"] = storage(settings)
            pipelines, missing = run_pipelines(
                settings, events=events, seed=seed, progress=err.status if progress else None
            )
            summary["pipelines"].update(pipelines)
    except RedisUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    if missing:
        summary["missing"] = missing
        if progress:
            render(summary)
        fail("demo incomplete, missing: " + "; ".join(missing), EXIT_FAILED)
    return summary


def _dead(counts: Any) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return "none"
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())


def _compaction(last: Any) -> str:
    if not isinstance(last, Mapping):
        return "-"
    done = "checkpointed" if last.get("checkpointed") else "not checkpointed"
    return f"{last.get('rows_after')} rows kept, {done}"


def render(summary: Mapping[str, Any]) -> None:
    """Headline tables; ``--json`` has every detail."""
    pipelines = summary.get("pipelines", {})
    eh = pipelines.get("eventhubs", {})
    table = Table(title="Event Hubs -> DuckDB (one function per mapping)", title_justify="left")
    for column in (
        "target",
        "file",
        "events",
        "rows",
        "dead letters",
        "watermarks (partition: sequence)",
        "compacted",
        "ok",
    ):
        table.add_column(column, overflow="fold")
    for m in eh.get("mappings", []):
        marks = ", ".join(f"{p}: {w.get('sequence_number')}" for p, w in (m.get("watermarks") or {}).items())
        table.add_row(
            str(m.get("target")),
            str(m.get("location")),
            f"{m.get('events_generated', '-')}",
            f"{m.get('rows', '-')}",
            _dead(m.get("dead_letters")),
            marks or "-",
            _compaction(m.get("last_compaction")),
            "yes" if m.get("accounted_for") else "NO",
        )
    if eh.get("error"):
        table.add_row("[red]not run[/]", str(eh["error"]), "", "", "", "", "", "")
    out.print(table)

    eng = pipelines.get("engagement", {})
    table = Table(title="Kafka engagement -> ClickHouse + Redis", title_justify="left")
    for column in (
        "events",
        "ClickHouse rows",
        "unknown content",
        "re-enriched",
        "published",
        "dead letters",
        "ev/s",
    ):
        table.add_column(column)
    if eng.get("error"):
        table.add_row("[red]not run[/]", str(eng["error"]), "", "", "", "", "")
    else:
        table.add_row(
            str(eng.get("events", "-")),
            str(eng.get("clickhouse_rows", "-")),
            str(eng.get("clickhouse_unknown_content_rows", "-")),
            str(eng.get("reenriched_when_content_arrived", "-")),
            f"{eng.get('published_envelopes', '-')} -> {eng.get('published_to', '-')}",
            _dead(eng.get("dead_letters")),
            f"{eng.get('events_per_second') or '-'}",
        )
    out.print(table)

    top = eng.get("leaderboard_top5_last_60_min") or []
    if top:
        table = Table(title="Leaderboard, last 60 minutes (Redis)", title_justify="left")
        for column in ("#", "title", "content", "engagement seconds"):
            table.add_column(column)
        for e in top:
            table.add_row(
                str(e.get("rank")),
                str(e.get("title") or "-"),
                str(e.get("content_id")),
                f"{float(e.get('engagement_seconds') or 0):,.2f}",
            )
        out.print(table)
    redis = summary.get("redis", {})
    storage = summary.get("storage", {})
    out.print(
        f"Redis: {redis.get('url')} ({redis.get('source')}); DuckDB: {storage.get('duckdb')}; "
        f"ClickHouse: {storage.get('clickhouse')}. Details: streamduck demo --json"
    )
