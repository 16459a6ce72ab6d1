"""``streamduck simulate``: drive a :class:`~shared.simulate.model.TrafficModel` into a target."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from shared.cli.output import EXIT_USAGE, err, fail
from shared.settings import Settings
from shared.simulate.model import CONTENT_TYPES, DEVICES, TrafficModel
from shared.simulate.targets import EventHubsTarget, KafkaTarget, PostgresTarget, Target


def _start(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--start-time {value!r} is not ISO 8601, for example 2026-01-31T12:00:00Z", EXIT_USAGE)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def make_target(target: str, settings: Settings, *, dsn: str | None, hub: str | None) -> Target:
    if target == "postgres":
        if not dsn:
            fail(
                "--target postgres needs --dsn or PG_DSN, for example postgresql://app:app@127.0.0.1:5432/appdb",
                EXIT_USAGE,
            )
        return PostgresTarget(dsn)
    if target == "kafka":
        return KafkaTarget(settings)
    name = hub or (settings.mappings[0].event_hub if settings.mappings else None)
    if not name:
        fail("--target eventhubs needs --hub NAME or a mapping (EVENTHUBNAME_1)", EXIT_USAGE)
    return EventHubsTarget(settings, name)


def simulate_command(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    target: str,
    count: int | None,
    seed: int | None,
    rate: float,
    burst: int,
    jitter: float,
    ensure_content: int,
    devices: list[str] | None,
    content_types: list[str] | None,
    raw_payload: bool,
    dsn: str | None,
    hub: str | None,
    start_time: str | None,
    first_id: int | None,
    progress: bool,
) -> dict[str, Any]:
    try:
        model = TrafficModel(
            seed=seed,
            devices=devices or DEVICES,
            content_types=content_types or CONTENT_TYPES,
            raw_payload=raw_payload,
            start=_start(start_time),
            rate=rate,
            jitter=jitter,
            first_id=first_id,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    sink = make_target(target, settings, dsn=dsn, hub=hub)
    return drive(model, sink, count=count, burst=burst, ensure_content=ensure_content, progress=progress)


def drive(
    model: TrafficModel,
    sink: Target,
    *,
    count: int | None,
    burst: int,
    ensure_content: int,
    progress: bool,
) -> dict[str, Any]:
    """Seed content, then send events in bursts at the model's rate until ``count`` (or Ctrl+C)."""
    started = time.monotonic()
    sent = 0
    interrupted = False
    first_id = model.next_id
    new_content: list[Any] = []
    content_ids: list[str] = []
    try:
        content_ids = sink.existing_content()
        new_content = model.content(max(0, ensure_content - len(content_ids)))
        if new_content:
            sink.send_content(new_content)
        content_ids = content_ids + [c.id for c in new_content]
        events = model.events(content_ids)
        columns = [
            SpinnerColumn(),
            TextColumn("simulate"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=err, disable=not progress, transient=True) as bar:
            task = bar.add_task("events", total=count)
            while count is None or sent < count:
                size = burst if count is None else min(burst, count - sent)
                if model.rate > 0:
                    size = min(size, max(1, int(model.rate)))
                chunk = [next(events) for _ in range(size)]
                sink.send_events(chunk)
                sent += len(chunk)
                bar.update(task, completed=sent)
                pause = model.pause(len(chunk))
                if pause:
                    time.sleep(pause)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sink.close()
    return {
        "target": sink.name,
        "events": sent,
        "content": len(new_content),
        "content_total": len(content_ids),
        "first_id": first_id,
        "seconds": round(time.monotonic() - started, 3),
        "interrupted": interrupted,
    }
