"""Timer triggers on their six-field NCRONTAB schedules (:mod:`shared.ncrontab`), in UTC.

Like the host without ``runOnStartup``, the first run is the first scheduled time after the start. A run still
going when the next is due delays it (no overlapping runs).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import azure.functions as func

from shared.devhost.functions import HostedFunction
from shared.devhost.outputs import OutputProducer
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.ncrontab import Schedule
from shared.settings import Settings

log = logging.getLogger("streamduck.devhost")


class TimerSource:
    """Runs one timer-triggered function on its schedule in its own thread."""

    def __init__(
        self,
        fn: HostedFunction,
        settings: Settings,
        invoker: Invoker,
        stats: HostStats,
        stop: threading.Event,
    ) -> None:
        self.fn = fn
        self.schedule = Schedule(fn.source)
        self.invoker = invoker
        self.stats = stats
        self.stop = stop
        self.outputs = OutputProducer(fn, settings)

    def run(self) -> None:
        self.stats.ready(self.fn.name)
        due = self.schedule.next_after(datetime.now(tz=UTC))
        try:
            while not self.stop.is_set():
                wait = (due - datetime.now(tz=UTC)).total_seconds()
                if wait > 0 and self.stop.wait(min(wait, 1.0)):
                    break
                if wait > 0:
                    continue
                now = datetime.now(tz=UTC)
                request = func.TimerRequest(past_due=(now - due).total_seconds() > 1)
                outcome = self.invoker.invoke(
                    self.fn, request, deliver_outputs=self.outputs.deliver, label="timer"
                )
                if outcome.status == "abandoned":
                    break
                self.stats.batch_done(self.fn.name, "timer", 0, due.strftime("%H:%M:%S"), outcome.status)
                due = self.schedule.next_after(max(due, datetime.now(tz=UTC)))
        finally:
            self.outputs.close()
