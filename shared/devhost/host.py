"""Run the registered functions against their sources, with the host's semantics, until told to stop.

``plan()`` is what ``streamduck run --dry-run`` prints and exactly what ``run()`` uses: the functions, their
sources, the **effective** batch sizes (host.json ``extensions.*`` unless overridden), retry policies and
targets.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from shared.devhost.functions import HostedFunction, TriggerKind
from shared.devhost.kafka import KafkaBatching
from shared.devhost.retry import Invoker
from shared.devhost.stats import HostStats
from shared.errors import ConfigError, UnavailableError
from shared.settings import Settings
from shared.timespan import parse_timespan

log = logging.getLogger("streamduck.devhost")


@dataclass(frozen=True)
class PlannedFunction:
    fn: HostedFunction
    batch_size: int
    batch_size_from: str
    max_wait_seconds: float | None
    prefetch: int | None
    connection: str
    checkpoints: str
    targets: tuple[str, ...]
    runs: bool  # False: listed, but the dev host does not run this trigger type
    note: str = ""
    # What the Functions host would use in Azure (host.json only: no MOTHERDUCK_N_BATCH, no --batch-size).
    host_batch_size: int | None = None
    host_batch_size_from: str = ""
    kafka: KafkaBatching | None = None  # a Kafka trigger's host.json settings

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.fn.name,
            "trigger": self.fn.kind.value,
            "source": self.fn.source,
            "consumer_group": self.fn.consumer_group,
            "cardinality": "many" if self.fn.many else "one",
            "batch_size": self.batch_size,
            "batch_size_from": self.batch_size_from,
            "functions_host_batch_size": self.host_batch_size,
            "functions_host_batch_size_from": self.host_batch_size_from,
            "max_wait_seconds": self.max_wait_seconds,
            "prefetch": self.prefetch,
            "retry": self.fn.retry.describe()
            if self.fn.retry
            else "none (the host moves on after one failure)",
            "connection": self.connection,
            "checkpoints": self.checkpoints,
            "outputs": [f"{o.type}:{o.topic or o.name}" for o in self.fn.outputs],
            "targets": list(self.targets),
            "runs": self.runs,
            "note": self.note,
        }


@dataclass
class HostJson:
    raw: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def ext(self, name: str) -> Mapping[str, Any]:
        extensions = self.raw.get("extensions") or {}
        section = extensions.get(name) or {}
        return section if isinstance(section, Mapping) else {}


def read_host_json(app_dir: Path) -> HostJson:
    path = app_dir / "host.json"
    if not path.is_file():
        return HostJson()
    try:
        return HostJson(json.loads(path.read_text(encoding="utf-8")), path)
    except ValueError as exc:
        raise ConfigError({"host.json": f"not valid JSON: {exc}"}) from exc


def _targets(fn: HostedFunction, settings: Settings) -> tuple[str, ...]:
    if fn.kind is TriggerKind.EVENT_HUB:
        for m in settings.mappings:
            if m.function_name == fn.name:
                where = (
                    "MotherDuck"
                    if settings.token_for(m)
                    else f"DuckDB file {settings.data_dir / m.database}.duckdb"
                )
                return (f"{m.target} ({where})",)
        return ()
    if fn.kind is TriggerKind.KAFKA:
        clickhouse = (
            f"ClickHouse {settings.clickhouse_host}:{settings.clickhouse_port}/{settings.clickhouse_database}"
            if settings.clickhouse_host
            else f"chDB {settings.clickhouse_chdb_path}/{settings.clickhouse_database}"
        )
        return (clickhouse, f"Redis {_redact(settings.redis_url.get_secret_value())}")
    return ()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def plan(
    functions: list[HostedFunction],
    settings: Settings,
    environ: Mapping[str, str],
    host_json: HostJson,
    *,
    batch_override: int | None = None,
) -> list[PlannedFunction]:
    from shared.devhost.eventhubs import hub_connection, storage_target
    from shared.kafkaconfig import client_config

    planned: list[PlannedFunction] = []
    for fn in functions:
        if fn.kind is TriggerKind.KAFKA:
            kafka = host_json.ext("kafka")
            size, source = int(kafka.get("maxBatchSize", 64)), "host.json extensions.kafka.maxBatchSize"
            if "maxBatchSize" not in kafka:
                source = "Kafka extension default"
            host_size, host_source = size, source
            if batch_override:
                size, source = batch_override, "--batch-size"
            batching = KafkaBatching.from_host_json(kafka, max_batch_size=size if fn.many else 1)
            brokers = client_config(settings, fn.connection)["bootstrap.servers"]
            planned.append(
                PlannedFunction(
                    fn,
                    size if fn.many else 1,
                    source if fn.many else "cardinality one",
                    batching.max_wait_seconds,
                    None,
                    f"{brokers} ({settings.kafka_protocol.value})",
                    f"Kafka consumer group {fn.consumer_group} (offsets stored after the function, "
                    f"committed every {batching.auto_commit_interval_ms} ms)",
                    _targets(fn, settings),
                    True,
                    host_batch_size=host_size if fn.many else 1,
                    host_batch_size_from=host_source if fn.many else "cardinality one",
                    kafka=batching,
                )
            )
        elif fn.kind is TriggerKind.EVENT_HUB:
            eh = host_json.ext("eventHubs")
            size, source = (
                int(eh.get("maxEventBatchSize", 100)),
                "host.json extensions.eventHubs.maxEventBatchSize",
            )
            if "maxEventBatchSize" not in eh:
                source = "Event Hubs extension default"
            host_size, host_source = size, source
            mapping = next((m for m in settings.mappings if m.function_name == fn.name), None)
            if mapping is not None and environ.get(f"MOTHERDUCK_{mapping.index}_BATCH", "").strip():
                # The earlier CLI's per-mapping knob (in Azure, host.json's maxEventBatchSize rules).
                size, source = mapping.batch, f"MOTHERDUCK_{mapping.index}_BATCH"
            if batch_override:
                size, source = batch_override, "--batch-size"
            eh_wait: float | None = None
            if int(eh.get("minEventBatchSize", 1)) > 1:
                eh_wait = parse_timespan(str(eh.get("maxWaitTime", "00:01:00")))
            prefetch = max(int(eh.get("prefetchCount", 300)), size)
            try:
                connection = hub_connection(fn, settings, environ).describe()
            except ConfigError as exc:
                connection = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
            try:
                checkpoints = storage_target(environ).describe()
            except ConfigError as exc:
                checkpoints = "; ".join(f"{k}: {v}" for k, v in exc.problems.items())
            planned.append(
                PlannedFunction(
                    fn,
                    size if fn.many else 1,
                    source if fn.many else "cardinality one",
                    eh_wait,
                    prefetch,
                    connection,
                    checkpoints,
                    _targets(fn, settings),
                    True,
                    host_batch_size=host_size if fn.many else 1,
                    host_batch_size_from=host_source if fn.many else "cardinality one",
                )
            )
        elif fn.kind is TriggerKind.TIMER:
            from shared.ncrontab import Schedule

            try:
                Schedule(fn.source)
            except ValueError as exc:
                raise ConfigError({f"function {fn.name} schedule": str(exc)}) from exc
            planned.append(
                PlannedFunction(
                    fn, 0, "-", None, None, "-", "-", _targets(fn, settings), True, note="schedule (UTC)"
                )
            )
        else:
            planned.append(
                PlannedFunction(
                    fn,
                    0,
                    "-",
                    None,
                    None,
                    "-",
                    "-",
                    (),
                    False,
                    note="not run by the dev host (Event Hubs, Kafka and timer triggers are)",
                )
            )
    return planned


class DevHost:
    """Starts one thread per source; stops them gracefully (batch in flight finishes and checkpoints)."""

    def __init__(
        self,
        planned: list[PlannedFunction],
        settings: Settings,
        environ: Mapping[str, str],
        *,
        start_from: str = "earliest",
    ) -> None:
        self.planned = [p for p in planned if p.runs]
        self.settings = settings
        self.environ = environ
        self.stop = threading.Event()
        self.stats = HostStats()
        self.invoker = Invoker(
            self.stop, on_retry=lambda name, label, n, exc: self.stats.retried(name, label)
        )
        self.start_from = start_from
        self.threads: list[threading.Thread] = []
        self.failures: list[str] = []
        # Function -> why its source never connected (plain sentence), when the host gave up on it.
        self.unreachable: dict[str, str] = {}
        # Function -> its Kafka source (its ``phases`` say where the time went).
        self.kafka_sources: dict[str, Any] = {}

    def _runner(self, p: PlannedFunction) -> Callable[[], None]:
        if p.fn.kind is TriggerKind.TIMER:
            from shared.devhost.timer import TimerSource

            return TimerSource(p.fn, self.settings, self.invoker, self.stats, self.stop).run
        if p.fn.kind is TriggerKind.KAFKA:
            from shared.devhost.kafka import KafkaSource

            if p.kafka is None:
                raise ValueError(f"{p.fn.name}: a Kafka trigger planned without its host.json settings")
            k_source = KafkaSource(
                p.fn,
                self.settings,
                p.kafka,
                self.invoker,
                self.stats,
                self.stop,
                start_from=self.start_from,
            )
            self.kafka_sources[p.fn.name] = k_source
            return k_source.run
        from shared.devhost.eventhubs import EventHubBatching, EventHubSource, hub_connection, storage_target

        e_source = EventHubSource(
            p.fn,
            hub_connection(p.fn, self.settings, self.environ),
            storage_target(self.environ),
            EventHubBatching(p.batch_size, p.max_wait_seconds, p.prefetch or 300),
            self.invoker,
            self.stats,
            self.stop,
            starting_position="-1" if self.start_from == "earliest" else "@latest",
        )
        return e_source.run

    def start(self) -> None:
        # What is alive now (the app, its libraries) lives as long as the host: out of the collector's sight,
        # so a full collection between batches walks only what the batches left (as long-running servers do).
        gc.collect()
        gc.freeze()
        for p in self.planned:
            target = self._runner(p)

            def guarded(target: Callable[[], None] = target, name: str = p.fn.name) -> None:
                try:
                    target()
                except UnavailableError as exc:
                    log.error("%s: %s", name, exc)
                    self.stats.unreached(name, str(exc))
                    self.unreachable[name] = str(exc)
                    self.stop.set()
                except Exception as exc:
                    log.exception("%s: source stopped", name)
                    self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
                    self.stop.set()

            thread = threading.Thread(target=guarded, name=f"source-{p.fn.name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.stop.is_set():
                return
            log.warning(
                "%s: finishing the batch in flight, then checkpointing and exiting", signal.strsignal(signum)
            )
            self.stop.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def wait(
        self,
        *,
        exit_when_idle: float | None = None,
        connect_timeout: float | None = None,
        tick: Callable[[], None] | None = None,
        interval: float = 0.5,
    ) -> None:
        """Until stopped; or idle (``exit_when_idle``); or a source not connected after ``connect_timeout``
        seconds: then every such source is in :attr:`unreachable` with its reason."""
        started = time.monotonic()
        sources = [p.fn.name for p in self.planned if p.fn.kind is not TriggerKind.TIMER]
        while self.alive() and not self.stop.is_set():
            if tick is not None:
                tick()
            if connect_timeout is not None and time.monotonic() - started >= connect_timeout:
                waiting = self.stats.not_connected(sources)
                if waiting:
                    for name, reason in waiting.items():
                        self.unreachable[name] = (
                            reason or f"{name}: no connection within {connect_timeout:g} s"
                        )
                    log.error("not connected after %gs: %s", connect_timeout, ", ".join(waiting))
                    break
                connect_timeout = None  # every source connected once: later outages are retried, not fatal
            if (
                exit_when_idle is not None
                and self.stats.ready_count() >= len(self.planned)
                and self.stats.idle_for() >= exit_when_idle
                and self.stats.total_lag() == 0
            ):
                log.info("idle for %.1fs with no lag: stopping", exit_when_idle)
                self.stop.set()
                break
            time.sleep(interval)
        self.stop.set()
        for thread in self.threads:
            while thread.is_alive():
                thread.join(timeout=interval)
                if tick is not None:
                    tick()
