"""``streamduck run`` and ``streamduck run --dry-run``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from shared.cli.output import EXIT_FAILED, err, fail, out, print_json
from shared.devhost.functions import TriggerKind, discover, import_app, select
from shared.devhost.host import DevHost, PlannedFunction, plan, read_host_json
from shared.errors import ConfigError
from shared.settings import Settings
from shared.telemetry.local import LocalMetrics


def build_plan(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    app_module: str,
    app_dir: Path,
    functions: list[str] | None,
    batch_size: int | None,
) -> list[PlannedFunction]:
    app = import_app(app_module, app_dir)
    found = select(discover(app, environ), functions)
    return plan(found, settings, environ, read_host_json(app_dir), batch_override=batch_size)


def print_plan(planned: list[PlannedFunction], *, as_json: bool) -> None:
    if as_json:
        print_json({"functions": [p.as_dict() for p in planned]})
        return
    table = Table(title="Plan (dry run: nothing is read or written)", title_justify="left")
    for column in ("function", "trigger / source", "batch", "retry", "checkpoints", "targets"):
        table.add_column(column, overflow="fold")
    for p in planned:
        if not p.runs:
            table.add_row(p.fn.name, p.fn.source_label, "-", "-", "-", p.note)
            continue
        if p.fn.kind is TriggerKind.TIMER:
            outputs = [f"-> {o.type}:{o.topic or o.name}" for o in p.fn.outputs]
            retry = p.fn.retry.describe() if p.fn.retry else "none"
            table.add_row(p.fn.name, f"{p.fn.source_label} (UTC)", "-", retry, "-", "\n".join(outputs) or "-")
            continue
        wait = f", wait {p.max_wait_seconds:g}s" if p.max_wait_seconds else ""
        outputs = [f"-> {o.type}:{o.topic or o.name}" for o in p.fn.outputs]
        batch = f"{p.batch_size} ({p.batch_size_from}{wait})"
        if p.host_batch_size is not None and p.host_batch_size != p.batch_size:
            batch += f"\nFunctions host: {p.host_batch_size} ({p.host_batch_size_from})"
        table.add_row(
            p.fn.name,
            f"{p.fn.source_label}\n{p.connection}",
            batch,
            p.fn.retry.describe() if p.fn.retry else "none",
            p.checkpoints,
            "\n".join([*p.targets, *outputs]) or "-",
        )
    out.print(table)
    if not planned:
        out.print("No functions are registered (no mappings configured and no Kafka section?).")


def install_metrics(environ: Mapping[str, str], *, port: int | None, host: str) -> LocalMetrics:
    """The dev host's metrics (live view and summary; Prometheus on ``port``; OTLP from the ``OTEL_*``
    variables), installed before the function app is imported."""
    try:
        metrics = LocalMetrics(environ, metrics_port=port, metrics_host=host)
    except OSError as exc:
        raise ConfigError({"--metrics-port": f"cannot serve /metrics on {host}:{port}: {exc}"}) from exc
    metrics.install()
    return metrics


def run_host(
    planned: list[PlannedFunction],
    settings: Settings,
    environ: Mapping[str, str],
    *,
    live: bool,
    exit_when_idle: float | None,
    start_from: str,
    connect_timeout: float | None = 30.0,
    metrics: LocalMetrics | None = None,
) -> dict[str, Any]:
    from shared.devhost.live import LiveView
    from shared.devhost.metrics_view import MetricsView

    runnable = [p for p in planned if p.runs]
    if not runnable:
        fail("nothing to run: no Event Hubs or Kafka triggered function is registered", EXIT_FAILED)
    host = DevHost(planned, settings, environ, start_from=start_from)
    host.install_signal_handlers()
    logging.getLogger("streamduck.devhost").info(
        "running %s", ", ".join(f"{p.fn.name} <- {p.fn.source_label}" for p in runnable)
    )
    topics = {p.fn.source: p.fn.name for p in runnable if p.fn.kind is TriggerKind.KAFKA}
    emitted = MetricsView(metrics, topics) if metrics is not None else None
    host.start()
    with LiveView(host.stats, err, enabled=live, view=emitted) as view:
        host.wait(exit_when_idle=exit_when_idle, connect_timeout=connect_timeout, tick=view.tick)
    summary = host.stats.summary()
    if emitted is not None:
        summary.update(emitted.summary(summary["partitions"]))
    summary["failures"] = host.failures
    summary["sources"] = [
        {
            "function": p.fn.name,
            "source": p.fn.source_label,
            "connected": host.stats.is_connected(p.fn.name),
            "error": host.unreachable.get(p.fn.name),
        }
        for p in runnable
        if p.fn.kind is not TriggerKind.TIMER
    ]
    summary["unreachable"] = sorted(set(host.unreachable.values()))
    if host.failures:
        fail("; ".join(host.failures), EXIT_FAILED)
    return summary
