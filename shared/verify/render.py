"""The verify report as text, a line per step (``--json`` prints ``VerifyReport.as_dict`` instead)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from shared.verify.core import VerifyReport
from shared.verify.steps import Status

_STYLE = {Status.OK: "green", Status.MISSING: "yellow", Status.ERROR: "red", Status.SKIPPED: "dim"}


def render(report: VerifyReport, console: Console) -> None:
    """``step  status  seconds  target  detail``, one line each, then the outcome."""
    console.print(f"streamduck verify: run {report.marks.run_id}, timeout {report.timeout:g}s")
    width = max((len(s.name) for s in report.steps), default=4)
    for step in report.steps:
        status = step.status or Status.MISSING
        seconds = "-" if step.seconds is None else f"{step.seconds:.2f}s"
        console.print(
            f"{step.name:<{width}}  [{_STYLE[status]}]{status:<7}[/]  {seconds:>8}  {escape(step.target)}"
            + (f"  {escape(step.detail)}" if step.detail else "")
        )
    if report.ok:
        console.print(f"[green]every step ok[/] (run {report.marks.run_id})")


def failure_line(report: VerifyReport) -> str:
    """One line naming each failed step: ``clickhouse_row missing, redis_leaderboard error (...)``."""
    parts = []
    for step in report.failed:
        parts.append(
            f"{step.name} {step.status}" + (f" ({step.detail})" if step.status is Status.ERROR else "")
        )
    return "verify failed: " + ", ".join(parts)
