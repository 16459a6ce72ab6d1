"""``streamduck verify``: tagged test events through every configured source, then proof they landed.

1. Send: one event per Event Hubs mapping, and a content row plus an engagement for it on the Kafka CDC topics
   (``shared.verify.marks`` says how they are marked).
2. Wait: poll until ``timeout`` until each lands: the mapping table's row, the ClickHouse engagement row, the
   Redis leaderboard score, the enriched message on ``TOPIC_OUT``. A store that cannot be reached is retried
   until the timeout and then reported as an ``error`` with its message; a final failure (an event parked in a
   dead-letter table, a wrong score, refused credentials) ends its step at once.
3. Cleanup (``cleanup=True``): delete what this run left in DuckDB/MotherDuck, ClickHouse and Redis.

Embedded chDB allows one process per folder: while a dev host runs it, the ClickHouse step waits until the
leaderboard step succeeded (the enrichment function writes Redis only after its ClickHouse insert succeeded,
so verify never takes the folder before the host) and then until the folder is free; see docs/cli.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from shared.errors import ConfigError, StreamDuckError, TransientError
from shared.settings import EventHubMapping, Settings
from shared.verify import engagement as kafka_path
from shared.verify import eventhubs as eh_path
from shared.verify.marks import PROPERTY, RunMarks
from shared.verify.steps import Failed, Found, Status, Step, error_text, summary

DEFAULT_TIMEOUT = 120.0
POLL_INTERVAL = 1.0


class Source(StrEnum):
    EVENTHUBS = "eventhubs"
    KAFKA = "kafka"


@dataclass
class VerifyReport:
    marks: RunMarks
    timeout: float
    cleanup: bool
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status in (Status.ERROR, Status.MISSING)]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        e = self.marks.engagement
        return {
            "ok": self.ok,
            "run_id": self.marks.run_id,
            "timeout": self.timeout,
            "cleanup": self.cleanup,
            "marks": {
                "property": PROPERTY,
                "content_id": self.marks.content.id,
                "engagement_id": e.id,
                "event_ts": e.event_ts.isoformat(),
            },
            "steps": [s.as_dict() for s in self.steps],
            "summary": summary(self.steps),
        }


def run_verify(
    settings: Settings,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    only: Source | None = None,
    cleanup: bool = False,
    sender: eh_path.EventSender | None = None,
    poll_interval: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> VerifyReport:
    """Send, wait, optionally clean up; every step ends ``ok``, ``missing``, ``error`` or ``skipped``.

    ``sender`` replaces the Event Hubs SDK sender. Raises :class:`ConfigError` for ``only=EVENTHUBS`` without
    a mapping; store failures are reported in the steps, never raised.
    """
    if only is Source.EVENTHUBS and not settings.mappings:
        raise ConfigError(
            {
                "EVENTHUBNAME_1": "no Event Hubs mapping is configured (--only eventhubs needs one), "
                "for example EVENTHUBNAME_1=telemetry"
            }
        )
    report = VerifyReport(marks=RunMarks.new(settings), timeout=timeout, cleanup=cleanup)
    marks = report.marks
    mappings = settings.mappings if only in (None, Source.EVENTHUBS) else ()
    with_kafka = only in (None, Source.KAFKA)
    watch: kafka_path.EnrichedWatch | None = None
    try:
        if mappings:
            own = sender is None
            active = sender if sender is not None else eh_path.SdkSender(settings, timeout=min(timeout, 60.0))
            try:
                for m in mappings:
                    report.steps.extend(_send_eventhubs(settings, marks, m, active, clock))
            finally:
                if own:
                    active.close()
        if with_kafka:
            steps, watch = _send_kafka(settings, marks, timeout, clock)
            report.steps.extend(steps)
        _wait(report.steps, deadline=clock() + timeout, poll_interval=poll_interval, clock=clock)
        if cleanup:
            report.steps.extend(_cleanup(settings, marks, mappings, with_kafka, clock))
    finally:
        if watch is not None:
            watch.close()
    return report


def _send_eventhubs(
    settings: Settings,
    marks: RunMarks,
    m: EventHubMapping,
    sender: eh_path.EventSender,
    clock: Callable[[], float],
) -> list[Step]:
    send = Step(f"eventhubs_send_{m.index}", eh_path.send_target(settings, m))
    land = Step(
        f"duckdb_row_{m.index}",
        eh_path.table_target(settings, m),
        check=partial(eh_path.find_rows, settings, m, marks.run_id),
    )
    started = clock()
    try:
        sender.send(m, eh_path.build_events(marks, m))
    except StreamDuckError as exc:
        send.finish(Status.ERROR, clock() - started, error_text(exc))
        land.finish(Status.SKIPPED, None, f"{send.name} failed")
        return [send, land]
    send.finish(Status.OK, clock() - started, f"1 event with {PROPERTY}={marks.run_id}")
    land.since = clock()
    return [send, land]


def _send_kafka(
    settings: Settings, marks: RunMarks, timeout: float, clock: Callable[[], float]
) -> tuple[list[Step], kafka_path.EnrichedWatch | None]:
    send = Step("kafka_send", kafka_path.kafka_target(settings))
    redis_step = Step(
        "redis_leaderboard",
        kafka_path.redis_target(settings, marks),
        check=partial(kafka_path.find_score, settings, marks),
    )
    clickhouse = Step(
        "clickhouse_row",
        kafka_path.clickhouse_target(settings),
        check=partial(kafka_path.find_clickhouse_row, settings, marks),
        # Embedded chDB: one process per folder. Read it only once the leaderboard shows the event, which the
        # enrichment function writes after its ClickHouse insert, so verify never takes the folder first.
        ready=None if settings.clickhouse_host else (lambda: redis_step.status is Status.OK),
    )
    enriched = Step("enriched_topic", kafka_path.enriched_target(settings))
    steps = [send, clickhouse, redis_step, enriched]
    started = clock()
    watch: kafka_path.EnrichedWatch | None = None
    try:
        watch = kafka_path.EnrichedWatch(settings, marks.run_id)
        detail = kafka_path.send(settings, marks, watch, timeout=min(timeout, 30.0), content_wait=timeout / 2)
    except StreamDuckError as exc:
        send.finish(Status.ERROR, clock() - started, error_text(exc))
        for step in steps[1:]:
            step.finish(Status.SKIPPED, None, f"{send.name} failed")
        return steps, watch
    send.finish(Status.OK, clock() - started, detail)
    enriched.check = partial(watch.check, marks)
    for step in steps[1:]:
        step.since = clock()
    return steps, watch


def _wait(
    steps: Sequence[Step], *, deadline: float, poll_interval: float, clock: Callable[[], float]
) -> None:
    pending = [s for s in steps if s.check is not None and not s.done]
    erring: set[str] = set()
    while pending:
        last = clock() >= deadline
        for step in pending:
            if step.ready is not None and not step.ready() and not last:
                continue
            check = step.check
            if check is None:
                continue
            since = step.since if step.since is not None else clock()
            try:
                outcome = check()
            except TransientError as exc:  # unreachable for now: retried until the deadline
                step.detail = error_text(exc)
                erring.add(step.name)
                continue
            except StreamDuckError as exc:  # refused (credentials, a bad query): waiting cannot help
                step.finish(Status.ERROR, clock() - since, error_text(exc))
                continue
            elapsed = clock() - since
            erring.discard(step.name)
            if isinstance(outcome, Found):
                step.finish(Status.OK, elapsed, outcome.detail)
            elif isinstance(outcome, Failed):
                step.finish(Status.ERROR, elapsed, outcome.detail)
            else:
                step.detail = outcome.detail
        pending = [s for s in pending if not s.done]
        if last:
            for step in pending:
                status = Status.ERROR if step.name in erring else Status.MISSING
                since = step.since if step.since is not None else clock()
                step.finish(status, clock() - since, step.detail or "not found")
            return
        time.sleep(max(0.0, min(poll_interval, deadline - clock())))


def _cleanup(
    settings: Settings,
    marks: RunMarks,
    mappings: Sequence[EventHubMapping],
    with_kafka: bool,
    clock: Callable[[], float],
) -> list[Step]:
    jobs: list[tuple[Step, Callable[[], dict[str, Any]]]] = [
        (
            Step(f"cleanup_duckdb_{m.index}", eh_path.table_target(settings, m)),
            partial(eh_path.delete_rows, settings, m, marks.run_id),
        )
        for m in mappings
    ]
    if with_kafka:
        jobs.append(
            (
                Step("cleanup_clickhouse", kafka_path.clickhouse_target(settings)),
                partial(kafka_path.delete_clickhouse, settings, marks),
            )
        )
        jobs.append(
            (
                Step("cleanup_redis", kafka_path.redis_target(settings, marks)),
                partial(kafka_path.delete_redis, settings, marks),
            )
        )
    for step, job in jobs:
        started = clock()
        try:
            deleted = job()
        except StreamDuckError as exc:
            step.finish(Status.ERROR, clock() - started, error_text(exc))
            continue
        step.finish(
            Status.OK, clock() - started, "deleted " + ", ".join(f"{n} {k}" for k, n in deleted.items())
        )
    return [step for step, _ in jobs]
