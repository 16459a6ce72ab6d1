"""Both pipelines of the demo, one after the other: what each left, or why it could not run.

The entry points are :func:`shared.demo.eventhubs.run_demo` and :func:`shared.demo.engagement.run_demo`; both
hand their traffic to the registered functions, which read their settings from the process environment, so
the caller exports the demo's environment first (``streamduck demo`` does). A pipeline that fails is reported
as such and the other one still runs, so a partly run demo still says what it did.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from shared.demo.state import chdb_holder
from shared.demo.stopping import check
from shared.devhost.functions import quiet_indexing
from shared.errors import StreamDuckError
from shared.settings import Settings

PIPELINES = (("eventhubs", "shared.demo.eventhubs"), ("engagement", "shared.demo.engagement"))

# Shows that a pipeline is running, e.g. a console's status spinner: called with a one-line message.
Progress = Callable[[str], AbstractContextManager[object]]


class EngineBusy(StreamDuckError):
    """Another process has the embedded ClickHouse (chDB) folder open."""


def storage(settings: Settings) -> dict[str, str]:
    """Where the demo's data lands."""
    return {
        "duckdb": "MotherDuck" if settings.uses_motherduck else str(settings.data_dir),
        "clickhouse": settings.clickhouse_host or f"chDB {settings.clickhouse_chdb_path}",
    }


def chdb_busy(settings: Settings) -> str | None:
    """Why the embedded ClickHouse cannot be opened now (another process holds its folder), or None."""
    if settings.clickhouse_host:
        return None
    holder = chdb_holder(settings.clickhouse_chdb_path)
    if holder is None:
        return None
    pid, name = holder
    return (
        f"the embedded ClickHouse folder {settings.clickhouse_chdb_path} is in use by `{name}` (pid {pid}); "
        "chDB lets one process open a folder at a time: stop that process (Ctrl+C in its terminal, or "
        f"kill {pid}) and run the demo again, or give the demo another folder "
        "(CLICKHOUSE_CHDB_PATH=.streamduck/chdb-2 streamduck demo)"
    )


@contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Send what native code writes to file descriptor 2 to a buffer; yields the list that receives it.

    chDB's engine prints its own diagnostics there; the demo turns a failure into one line instead.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    captured: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def open_engine(settings: Settings) -> None:
    """Open the embedded ClickHouse now, with its native output kept off the terminal (a no-op for a server)."""
    if settings.clickhouse_host:
        return
    from shared.engagement.clickhouse import client_for

    busy = chdb_busy(settings)
    if busy:
        raise EngineBusy(busy)
    with native_stderr() as noise:
        try:
            client_for(settings)
        except StreamDuckError as exc:
            raise EngineBusy(f"the embedded ClickHouse could not start: {_first_line(exc)}") from exc
    busy = chdb_busy(settings) if noise and "lock" in noise[0].lower() else None
    if busy:  # lost a race with another process
        raise EngineBusy(busy)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:800] if lines else type(exc).__name__


def _entry_point(name: str) -> Callable[..., Mapping[str, Any]]:
    """The pipeline's demo (raises ImportError when a package it needs is not installed)."""
    if name == "eventhubs":
        from shared.demo.eventhubs import run_demo as eventhubs

        return eventhubs
    from shared.demo.engagement import run_demo as engagement

    return engagement


def run_pipelines(
    settings: Settings,
    *,
    events: int,
    seed: int,
    progress: Progress | None = None,
    results: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Each pipeline's summary (with its ``seconds``) by name, the pipelines that could not be loaded, and
    those that failed (their summary is ``{"error": ...}``).

    ``results`` is filled as each pipeline ends, so a caller that is interrupted still has what finished.
    """
    results = {} if results is None else results
    missing: list[str] = []
    failed: list[str] = []
    for name, module_name in PIPELINES:
        check()
        try:
            run = _entry_point(name)
        except ImportError as exc:
            missing.append(f"{name} ({module_name}: {exc})")
            results[name] = {"error": f"not available: {exc}"}
            continue
        started = time.monotonic()
        status = progress(f"demo: {name} pipeline, {events:,} events ...") if progress else nullcontext()
        try:
            with status, quiet_indexing():
                if name == "engagement":
                    open_engine(settings)
                result = run(settings, events=events, seed=seed)
        except StreamDuckError as exc:
            failed.append(name)
            results[name] = {
                "error": _first_line(exc),
                "unavailable": isinstance(exc, EngineBusy),
                "seconds": round(time.monotonic() - started, 3),
            }
            continue
        results[name] = {**dict(result), "seconds": round(time.monotonic() - started, 3)}
    return results, missing, failed
