"""``streamduck demo``: the main job on embedded defaults, then a summary and the next commands.

Runs simulated traffic through every function of both pipelines (:mod:`shared.demo`) into local DuckDB files,
chDB and Redis. Redis: ``REDIS_URL`` when it is set (it must answer); otherwise a Redis named with
``--local-redis`` when it answers; otherwise the demo's own ``redis-server``, which keeps its data under
``.streamduck/redis`` and stays running for ``status`` and ``dashboard`` until ``streamduck demo --stop``
(:mod:`shared.demo.redis_server`). The settings the demo chose itself go to ``.streamduck/demo.env``, which the
CLI reads (:mod:`shared.demo.state`). Ctrl+C, SIGTERM and SIGHUP stop the demo between two batches
(:mod:`shared.demo.stopping`): what finished is printed and a Redis started by this run is stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from shared.cli.environment import export, settings_from
from shared.cli.output import EXIT_FAILED, EXIT_UNAVAILABLE, err, fail, out, print_json
from shared.cli.run import install_metrics
from shared.demo.eventhubs import DEMO_MAPPING
from shared.demo.redis_server import (
    OWN,
    PID_FILE,
    REDIS_DIR,
    RedisUnavailable,
    redis_for_demo,
    stop_own_redis,
)
from shared.demo.run import run_pipelines, storage
from shared.demo.state import DEMO_ENV, read_demo_env, write_demo_env
from shared.demo.stopping import Stopped, stop_on_signals
from shared.telemetry.local import DEFAULT_METRICS_HOST


def run_demo(
    environ: Mapping[str, str],
    *,
    events: int,
    seed: int,
    progress: bool,
    local_redis: str | None = None,
) -> dict[str, Any]:
    env = dict(environ)
    saved = read_demo_env()
    summary: dict[str, Any] = {"events_per_pipeline": events, "seed": seed, "pipelines": {}}
    # What the demo chose in an earlier run and the environment still takes from .streamduck/demo.env.
    chosen = {key: value for key, value in saved.items() if env.get(key) == value}
    if not settings_from(env).mappings:
        env.update(DEMO_MAPPING)
        chosen.update(DEMO_MAPPING)
    pipelines: dict[str, Any] = summary["pipelines"]
    try:
        with (
            stop_on_signals(),
            redis_for_demo(env, local_redis, own_url=saved.get("REDIS_URL")) as (url, how),
        ):
            summary["redis"] = {"url": url, "source": how}
            if how == OWN:
                chosen["REDIS_URL"] = url
            if chosen:
                write_demo_env(chosen)
                summary["settings_file"] = str(DEMO_ENV)
            settings = settings_from(env)
            export(env)
            summary["storage"] = storage(settings)
            # The CLI's own MeterProvider, before the app is imported: the app's Azure Monitor set-up then
            # stays off, so a demo never exports to Application Insights, whatever the environment says.
            local_metrics = install_metrics(env, port=None, host=DEFAULT_METRICS_HOST)
            try:
                _, missing, failed = run_pipelines(
                    settings,
                    events=events,
                    seed=seed,
                    progress=err.status if progress else None,
                    results=pipelines,
                )
            finally:
                local_metrics.shutdown()  # what an OTLP exporter (OTEL_EXPORTER_OTLP_*) has left to send
    except RedisUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    except KeyboardInterrupt as exc:
        summary["stopped_by"] = exc.args[0] if isinstance(exc, Stopped) else "SIGINT"
        _partial(summary, progress)
        code = 128 + (exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
        done = ", ".join(pipelines) or "nothing"
        fail(f"demo stopped by {summary['stopped_by']}; finished: {done}", code)
    if missing or failed:
        summary["missing"] = missing
        summary["failed"] = failed
        _partial(summary, progress)
        problems = [f"{name} not run: {pipelines[name]['error']}" for name in failed]
        if missing:
            problems.append("missing: " + "; ".join(missing))
        unavailable = all(pipelines[name].get("unavailable") for name in failed) and not missing
        fail("demo incomplete; " + "; ".join(problems), EXIT_UNAVAILABLE if unavailable else EXIT_FAILED)
    return summary


def _partial(summary: Mapping[str, Any], progress: bool) -> None:
    """What a demo that did not finish did: the tables, or the JSON on stdout."""
    if progress:
        render(summary, next_steps=False)
    else:
        print_json(summary)


def stop_demo() -> dict[str, Any]:
    """``streamduck demo --stop``: stop the demo's own Redis; the data stays for the next ``streamduck demo``."""
    pid = stop_own_redis()
    return {"stopped": pid is not None, "pid": pid, "redis_data": str(REDIS_DIR), "pid_file": str(PID_FILE)}


def render_stop(result: Mapping[str, Any]) -> None:
    if result["stopped"]:
        out.print(
            f"stopped the demo's redis-server (pid {result['pid']}); its data stays in {result['redis_data']}"
        )
    else:
        out.print(f"the demo's redis-server is not running (no live pid in {result['pid_file']})")
    out.print(
        "`streamduck demo` starts it again with the same data; remove .streamduck/ to start afresh.",
        markup=False,
    )


def command_name() -> str:
    """How to call the CLI from here: ``streamduck`` when it is on PATH, else the virtualenv's script."""
    if shutil.which("streamduck"):
        return "streamduck"
    script = Path(sys.executable).parent / "streamduck"
    if script.is_file():
        try:
            return os.path.relpath(script)
        except ValueError:
            return str(script)
    return "python -m shared"


def _dead(counts: Any) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return "none"
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())


def _compaction(last: Any) -> str:
    if not isinstance(last, Mapping):
        return "-"
    done = "checkpointed" if last.get("checkpointed") else "not checkpointed"
    return f"{last.get('rows_after')} rows kept, {done}"


def render(summary: Mapping[str, Any], *, next_steps: bool = True) -> None:
    """Headline tables, then the commands to look further; ``--json`` has every detail."""
    pipelines = summary.get("pipelines", {})
    if "eventhubs" in pipelines:  # absent when the demo was stopped before it
        eh = pipelines["eventhubs"]
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
            marks = ", ".join(
                f"{p}: {w.get('sequence_number')}" for p, w in (m.get("watermarks") or {}).items()
            )
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
            table.add_row("[red]not run[/]", "", "", "", "", "", "", "")
        out.print(table)
        if eh.get("error"):
            out.print(f"  Event Hubs not run: {eh['error']}", markup=False)

    if "engagement" in pipelines:  # absent when the demo was stopped before it
        eng = pipelines["engagement"]
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
            table.add_row("[red]not run[/]", "", "", "", "", "", "")
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
        if eng.get("error"):
            out.print(f"  engagement not run: {eng['error']}", markup=False)

    top = pipelines.get("engagement", {}).get("leaderboard_top5_last_60_min") or []
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
        f"ClickHouse: {storage.get('clickhouse')}. Details: streamduck demo --json",
        markup=False,
    )
    if summary.get("settings_file"):
        out.print(f"The demo's settings: {summary['settings_file']} (read by every command in this folder)")
    if next_steps:
        cli = command_name()
        steps = [
            (f"{cli} status", "watermarks, dead letters, the leaderboard"),
            (f"{cli} dashboard", "the same in the browser at http://127.0.0.1:8050/"),
        ]
        if redis.get("source") == OWN:
            stop = "make demo-stop" if Path("Makefile").is_file() else f"{cli} demo --stop"
            steps.append((stop, "stop the demo's Redis (its data stays)"))
        width = max(len(command) for command, _ in steps)
        out.print("Next:")
        for command, what in steps:
            out.print(f"  {command:<{width}}  # {what}", markup=False)
