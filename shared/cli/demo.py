"""``streamduck demo``: the main job on embedded defaults, then a summary.

Runs simulated traffic through every function of both pipelines (the entry points
``shared.eventhubs.demo.run_demo`` and ``shared.engagement.demo.run_demo``) into local DuckDB files, chDB
and Redis. Redis: ``REDIS_URL`` when it is set (it must answer); otherwise a Redis named with
``--local-redis`` when it answers; otherwise a temporary ``redis-server`` that the demo starts and stops
itself. A Redis that merely happens to run on the default port is never written to unless it is named.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.table import Table

from shared.cli.environment import export, settings_from
from shared.cli.output import EXIT_FAILED, EXIT_UNAVAILABLE, err, fail, out
from shared.devhost.functions import quiet_indexing

PIPELINES = (("eventhubs", "shared.eventhubs.demo"), ("engagement", "shared.engagement.demo"))


def _pings(url: str, timeout: float = 1.0) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def temporary_redis(local_url: str | None = None) -> Iterator[str]:
    """Start ``redis-server`` on a free loopback port (no persistence); stop it on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        tried = f", none answers at {local_url} (--local-redis)" if local_url else ""
        fail(
            f"Redis is needed: none is configured (REDIS_URL){tried}, and redis-server is not installed to "
            "start one. Install it (apt-get install redis-server, or bash scripts/services.sh install redis), "
            "set REDIS_URL, or name a running Redis with --local-redis.",
            EXIT_UNAVAILABLE,
        )
    with tempfile.TemporaryDirectory(prefix="streamduck-redis-") as folder:
        port = _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not _pings(url, 0.2):
                if process.poll() is not None or time.monotonic() > deadline:
                    detail = (
                        (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip()
                    )
                    fail(
                        f"could not start a temporary redis-server on port {port}: {detail[:200]}",
                        EXIT_UNAVAILABLE,
                    )
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextmanager
def redis_for_demo(environ: dict[str, str], local_url: str | None = None) -> Iterator[tuple[str, str]]:
    """Yield (url, how) and leave ``environ['REDIS_URL']`` pointing at a Redis that answers.

    In order: ``REDIS_URL`` (must answer), else ``local_url`` (``--local-redis``) when it answers, else a
    temporary ``redis-server`` found on PATH.
    """
    configured = environ.get("REDIS_URL")
    if configured:
        if not _pings(configured, 2.0):
            fail(
                "REDIS_URL is set but Redis does not answer there; start it, fix REDIS_URL, or unset it "
                "to let the demo start a temporary redis-server",
                EXIT_UNAVAILABLE,
            )
        yield configured, "configured (REDIS_URL)"
        return
    if local_url and _pings(local_url, 0.5):
        environ["REDIS_URL"] = local_url
        yield local_url, "local (--local-redis)"
        return
    with temporary_redis(local_url) as url:
        environ["REDIS_URL"] = url
        yield url, "temporary redis-server started by the demo"


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
    with redis_for_demo(env, local_redis) as (url, how):
        summary["redis"] = {"url": url, "source": how}
        settings = settings_from(env)
        export(env)
        summary["storage"] = {
            "duckdb": "MotherDuck" if settings.uses_motherduck else str(settings.data_dir),
            "clickhouse": settings.clickhouse_host or f"chDB {settings.clickhouse_chdb_path}",
        }
        missing: list[str] = []
        for name, module_name in PIPELINES:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                missing.append(f"{name} ({module_name}: {exc})")
                summary["pipelines"][name] = {"error": f"not available: {exc}"}
                continue
            started = time.monotonic()
            status = err.status(f"demo: {name} pipeline, {events:,} events ...") if progress else _null()
            with status, quiet_indexing():
                result = module.run_demo(settings, events=events, seed=seed)
            summary["pipelines"][name] = {**dict(result), "seconds": round(time.monotonic() - started, 3)}
    if missing:
        summary["missing"] = missing
        if progress:
            render(summary)
        fail("demo incomplete, missing: " + "; ".join(missing), EXIT_FAILED)
    return summary


@contextmanager
def _null() -> Iterator[None]:
    yield


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
