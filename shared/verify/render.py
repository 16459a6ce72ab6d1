"""The verify report as a table (the CLI passes its console; ``--json`` prints ``VerifyReport.as_dict``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.verify.core import VerifyReport
from shared.verify.steps import Status

_STYLE = {Status.OK: "green", Status.MISSING: "yellow", Status.ERROR: "red", Status.SKIPPED: "dim"}


def render(report: VerifyReport, console: Console) -> None:
    table = Table(title=f"streamduck verify {report.marks.run_id}", title_justify="left")
    for column in ("step", "target", "status", "seconds", "detail"):
        table.add_column(column, overflow="fold")
    for step in report.steps:
        status = step.status or Status.MISSING
        table.add_row(
            step.name,
            escape(step.target),
            f"[{_STYLE[status]}]{status}[/]",
            "-" if step.seconds is None else f"{step.seconds:.2f}",
            escape(step.detail),
        )
    console.print(table)
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
