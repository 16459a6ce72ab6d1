"""The dev host runs a timer-triggered function on its NCRONTAB schedule, once per scheduled second."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from itertools import pairwise

import azure.functions as func
import pytest

from shared.devhost.functions import TriggerKind
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.devhost.timer import TimerSource
from shared.settings import load_settings
from tests.devhost.support import hosted


@pytest.mark.slow  # waits for the clock to reach the scheduled seconds
def test_a_timer_fires_on_each_scheduled_second_until_stopped() -> None:
    fired: list[tuple[datetime, bool]] = []

    def tick(timer: func.TimerRequest) -> None:
        fired.append((datetime.now(tz=UTC), timer.past_due))

    fn = hosted(
        TriggerKind.TIMER,
        tick,
        name="tick",
        arg_name="timer",
        many=False,
        source="*/2 * * * * *",
        consumer_group=None,
        trigger={"type": "timerTrigger", "schedule": "*/2 * * * * *"},
    )
    stop, stats = threading.Event(), HostStats()
    source = TimerSource(fn, load_settings({}), Invoker(stop), stats, stop)
    runner = threading.Thread(target=source.run)
    runner.start()
    time.sleep(4.5)
    stop.set()
    runner.join(timeout=5)

    assert not runner.is_alive()
    assert 2 <= len(fired) <= 3  # 4.5 s hold two or three even seconds
    assert all(t.second % 2 == 0 and not past_due for t, past_due in fired)
    gaps = [round((b - a).total_seconds()) for (a, _), (b, _) in pairwise(fired)]
    assert gaps == [2] * (len(fired) - 1)
    [row] = stats.snapshot()
    assert (row.function, row.batches, row.failed_batches) == ("tick", len(fired), 0)
