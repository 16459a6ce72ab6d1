"""The live view of ``streamduck run``: events/s, batches, retries and lag per function and partition, with the
dead letters and end-to-end lag (seconds) of the emitted metrics."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from shared.devhost.metrics_view import MetricsView
from shared.devhost.stats import HostStats


def render(stats: HostStats, view: MetricsView | None = None, title: str = "streamduck dev host") -> Table:
    now = time.monotonic()
    table = Table(title=title, title_justify="left", expand=False)
    for column in (
        "function",
        "partition",
        "events",
        "events/s",
        "batches",
        "retries",
        "failed",
        "position",
        "lag",
        "dead letters",
        "lag s",
    ):
        table.add_column(
            column, justify="left" if column in {"function", "partition", "position"} else "right"
        )
    parts = stats.snapshot()
    for p in parts:
        emitted = view.row(p.function, p.partition) if view is not None else None
        table.add_row(
            p.function,
            p.partition,
            f"{p.events:,}",
            f"{p.rate(now):,.0f}",
            f"{p.batches:,}",
            f"{p.retries:,}",
            f"{p.failed_batches:,}",
            p.position,
            "-" if p.lag is None else f"{p.lag:,}",
            "-" if emitted is None else f"{emitted.dead_letters:,}",
            "-" if emitted is None or emitted.lag_seconds is None else f"{emitted.lag_seconds:,.1f}",
        )
    waiting = stats.waiting()
    for function, reason in waiting.items():
        table.add_row(function, "-", "", "", "", "", "", f"not connected: {reason}", "", "", "")
    if not parts and not waiting:
        table.add_row("(waiting for partitions)", "", "", "", "", "", "", "", "", "", "")
    return table


class LiveView:
    """Rich ``Live`` on a terminal; a one-line progress log every ``every`` seconds otherwise."""

    def __init__(
        self,
        stats: HostStats,
        console: Console,
        *,
        enabled: bool,
        every: float = 10.0,
        view: MetricsView | None = None,
    ) -> None:
        self.stats = stats
        self.view = view
        self.console = console
        self.enabled = enabled and console.is_terminal
        self.every = every
        self._last = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(
                render(self.stats, self.view), console=self.console, refresh_per_second=4, transient=False
            )
            self._live.__enter__()
        return self

    def tick(self) -> None:
        if self._live is not None:
            if self.view is not None:
                self.view.refresh()
            self._live.update(render(self.stats, self.view))
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            s = self.stats.summary()
            dead = ""
            if self.view is not None:
                dead = f" dead_letters={self.view.summary(s['partitions'])['dead_letters']}"
            self.console.print(
                f"events={s['events']} batches={s['batches']} retries={s['retries']} "
                f"failed_batches={s['failed_batches']} lag={self.stats.total_lag()}{dead}",
                markup=False,
                highlight=False,
            )
            for function, reason in self.stats.waiting().items():
                self.console.print(f"{function}: not connected: {reason}", markup=False, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            if self.view is not None:
                self.view.refresh()
            self._live.update(render(self.stats, self.view))
            self._live.__exit__(None, None, None)
