"""Both pipelines of the demo, one after the other: what each left, or why it could not run.

The entry points are :func:`shared.demo.eventhubs.run_demo` and :func:`shared.demo.engagement.run_demo`; both
hand their traffic to the registered functions, which read their settings from the process environment, so
the caller exports the demo's environment first (``streamduck demo`` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from shared.devhost.functions import quiet_indexing
from shared.settings import Settings

PIPELINES = (("eventhubs", "shared.demo.eventhubs"), ("engagement", "shared.demo.engagement"))

# Shows that a pipeline is running, e.g. a console's status spinner: called with a one-line message.
Progress = Callable[[str], AbstractContextManager[object]]


def storage(settings: Settings) -> dict[str, str]:
    """Where the demo's data lands."""
    return {
        "duckdb": "MotherDuck" if settings.uses_motherduck else str(settings.data_dir),
        "clickhouse": settings.clickhouse_host or f"chDB {settings.clickhouse_chdb_path}",
    }


def _entry_point(name: str) -> Callable[..., Mapping[str, Any]]:
    """The pipeline's demo (raises ImportError when a package it needs is not installed)."""
    if name == "eventhubs":
        from shared.demo.eventhubs import run_demo as eventhubs

        return eventhubs
    from shared.demo.engagement import run_demo as engagement

    return engagement


def run_pipelines(
    settings: Settings, *, events: int, seed: int, progress: Progress | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Each pipeline's summary (with its ``seconds``) by name, and the pipelines that could not be loaded."""
    results: dict[str, Any] = {}
    missing: list[str] = []
    for name, module_name in PIPELINES:
        try:
            run = _entry_point(name)
        except ImportError as exc:
            missing.append(f"{name} ({module_name}: {exc})")
            results[name] = {"error": f"not available: {exc}"}
            continue
        started = time.monotonic()
        status = progress(f"demo: {name} pipeline, {events:,} events ...") if progress else nullcontext()
        with status, quiet_indexing():
            result = run(settings, events=events, seed=seed)
        results[name] = {**dict(result), "seconds": round(time.monotonic() - started, 3)}
    return results, missing
