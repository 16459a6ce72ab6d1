"""What the dashboard shows, read from the stores: nothing here writes data.

- ClickHouse (``CLICKHOUSE_HOST`` over HTTP, else the embedded chDB engine at ``CLICKHOUSE_CHDB_PATH``):
  the newest enriched events and the engagement seconds per content over the last minutes, with titles from
  the content dimension. The client is the pipeline's own (:func:`shared.engagement.clickhouse.client_for`),
  opened on the first request and kept: chDB lets one process open a folder at a time, and closing and
  reopening the engine on every refresh costs memory each time. Until it opens (another process holds the
  folder, the server is down), every request tries again and answers 503 with the reason.
- Redis: the top N of a precomputed leaderboard window, with titles from the content store
  (:func:`shared.engagement.leaderboard.top_n_with_titles`).
- Activity (``/api/activity``): ingest and enrichment rates, lag and freshness, counted from the same stores'
  rows by their ``ingested_at`` (:meth:`DashboardData.activity`).
- DuckDB / MotherDuck: each Event Hubs mapping's rows, watermarks, dead letters and last compaction, as
  ``streamduck status`` reports them (:func:`shared.readmodel.status.mapping_status`, read-only connections).

Every value reaches SQL as a bound parameter; the database and table names come from validated settings and
are quoted by :mod:`shared.sqlident`. A store that cannot answer raises :class:`StoreUnavailable` with a
one-line reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared.demo.state import chdb_holder as holder_of
from shared.engagement.clickhouse import CONTENT_TABLE, ENRICHED_TABLE, Warehouse
from shared.errors import ConfigError, StreamDuckError
from shared.settings import EventHubMapping, Settings
from shared.sqlident import quote_ident
from shared.telemetry import catalog

# Parameter ranges of the endpoints (the earlier dashboard's sliders, kept).
ROWS = (10, 500, 50)  # /api/recent?rows=
MINUTES = (1, 1440, 60)  # /api/by-content?minutes=
LIMIT = (1, 100, 20)  # /api/by-content?limit=
TOP_N = (3, 20, 10)  # /api/top?n=
ACTIVITY_MINUTES = (1, 1440, 15)  # /api/activity?minutes=
BUCKETS = 60  # points of each activity series
DEFAULT_WINDOW = 10  # /api/top?window= when LEADERBOARD_WINDOWS has it, else the shortest window


class BadRequest(ValueError):
    """A parameter is missing its rules; the message says which and what is accepted."""


class StoreUnavailable(Exception):
    """A store could not answer; ``reason`` is one line, fit to show to a user."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"{store}: {reason}")
        self.store = store
        self.reason = reason


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error, prefixed by its type unless it is one of StreamDuck's own."""
    if isinstance(exc, ConfigError):
        text = "; ".join(f"{name}: {reason}" for name, reason in sorted(exc.problems.items()))
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0].strip() if lines else ""
        if not isinstance(exc, StreamDuckError):
            text = f"{type(exc).__name__}: {text}"
    return text[:limit]


def iso_ms(epoch_ms: int) -> str:
    """``2026-03-01T23:58:00.123Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _float(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def chdb_holder(path: Path) -> str | None:
    """```streamduck demo` (pid 1234)`` when another live process runs the chDB engine of ``path``."""
    found = holder_of(path)
    return None if found is None else f"`{found[1]}` (pid {found[0]})"


# --------------------------------------------------------------------------------------- parameters


def int_param(query: Mapping[str, Sequence[str]], name: str, bounds: tuple[int, int, int]) -> int:
    """The whole number ``name`` within ``bounds`` (low, high, default); its default when absent."""
    low, high, default = bounds
    values = query.get(name)
    if values is None:
        return default
    if len(values) != 1:
        raise BadRequest(f"{name} is given {len(values)} times; give it once")
    raw = values[0].strip()
    if not raw.lstrip("+-").isdigit() or len(raw) > 9:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}, got {value}")
    return value


def only_params(query: Mapping[str, Sequence[str]], path: str, accepted: Sequence[str]) -> None:
    """Refuse parameters the endpoint does not know (a typo would otherwise silently use a default)."""
    unknown = sorted(set(query) - set(accepted))
    if unknown:
        names = ", ".join(accepted) if accepted else "none"
        raise BadRequest(f"unknown parameter {unknown[0]!r} for {path}; accepted: {names}")


# --------------------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class _Tables:
    database: str
    enriched: str
    content: str


class DashboardData:
    """The stores of one configuration, opened on first use and shared by the server's threads."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._environ = dict(environ) if environ is not None else None
        self._clock = clock
        db = quote_ident(settings.clickhouse_database)
        self._tables = _Tables(
            database=db,
            enriched=f"{db}.{quote_ident(ENRICHED_TABLE)}",
            content=f"{db}.{quote_ident(CONTENT_TABLE)}",
        )
        self._lock = threading.Lock()
        self._warehouse: Warehouse | None = None
        self._tables_found: set[str] = set()
        self._redis: Any = None

    # ----------------------------------------------------------------------------------- settings

    @property
    def windows(self) -> tuple[int, ...]:
        return self.settings.leaderboard_windows

    @property
    def default_window(self) -> int:
        return DEFAULT_WINDOW if DEFAULT_WINDOW in self.windows else self.windows[0]

    def window_param(self, query: Mapping[str, Sequence[str]]) -> int:
        """``window``: one of the precomputed windows, never another (it would not be kept up to date)."""
        values = query.get("window")
        if values is None:
            return self.default_window
        if len(values) != 1:
            raise BadRequest(f"window is given {len(values)} times; give it once")
        accepted = ", ".join(str(w) for w in self.windows)
        raw = values[0].strip()
        if not raw.isdigit() or int(raw) not in self.windows:
            raise BadRequest(
                f"window must be one of the precomputed leaderboard windows ({accepted} minutes, "
                f"LEADERBOARD_WINDOWS), got {raw!r}; other windows are refused rather than cut short"
            )
        return int(raw)

    def info(self) -> dict[str, Any]:
        """What the page needs before any store answers: the windows to offer, where the data is."""
        return {
            "windows": list(self.windows),
            "default_window": self.default_window,
            "clickhouse": self.describe_clickhouse(),
            "mappings": len(self.settings.mappings),
        }

    def describe_clickhouse(self) -> str:
        s = self.settings
        if s.clickhouse_host:
            return f"ClickHouse {s.clickhouse_host}:{s.clickhouse_port}, database {s.clickhouse_database}"
        return f"chDB {s.clickhouse_chdb_path}, database {s.clickhouse_database}"

    # ----------------------------------------------------------------------------------- ClickHouse

    def _open_warehouse(self) -> Warehouse:
        with self._lock:
            if self._warehouse is not None:
                return self._warehouse
            s = self.settings
            if not s.clickhouse_host and not s.clickhouse_chdb_path.is_dir():
                raise StoreUnavailable(
                    "clickhouse",
                    f"no data yet: the chDB folder {s.clickhouse_chdb_path} does not exist "
                    "(run the engagement functions or `streamduck demo` first, or set CLICKHOUSE_HOST)",
                )
            # Asked first: opening a folder another process holds fails, after the engine printed its own
            # diagnostics on the dashboard's terminal.
            holder = None if s.clickhouse_host else chdb_holder(s.clickhouse_chdb_path)
            if holder is not None:
                raise StoreUnavailable(
                    "clickhouse",
                    f"the embedded ClickHouse (chDB) folder {s.clickhouse_chdb_path} is in use by "
                    f"{holder}; chDB lets one process open a folder at a time: stop that process and refresh, "
                    "or point CLICKHOUSE_HOST at a ClickHouse server",
                )
            try:
                self._warehouse = Warehouse.from_settings(s)
            except StreamDuckError as exc:
                raise StoreUnavailable("clickhouse", one_line(exc)) from exc
            return self._warehouse

    def _clickhouse(
        self, sql: str, parameters: dict[str, Any], tables: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        warehouse = self._open_warehouse()
        try:
            missing = [t for t in tables if t not in self._tables_found]
            if missing:
                found = warehouse.query(
                    "SELECT name FROM system.tables WHERE database = {database:String} AND name IN {names:Array(String)}",
                    {"database": self.settings.clickhouse_database, "names": missing},
                )
                self._tables_found.update(str(row[0]) for row in found)
                absent = [t for t in missing if t not in self._tables_found]
                if absent:
                    raise StoreUnavailable(
                        "clickhouse",
                        f"no data yet: table {self.settings.clickhouse_database}.{absent[0]} does not exist "
                        f"in {self.describe_clickhouse()} (the engagement functions create it)",
                    )
            return warehouse.query(sql, parameters)
        except StreamDuckError as exc:
            raise StoreUnavailable("clickhouse", one_line(exc)) from exc

    def recent(self, rows: int) -> dict[str, Any]:
        """The ``rows`` newest enriched events (by event time), with the title they were enriched with."""
        sql = (
            "SELECT id, toUnixTimestamp64Milli(event_ts), toString(content_id), title, content_type, event_type, "
            "device, if(isNull(user_id), NULL, toString(user_id)), duration_ms, engagement_seconds, "
            f"engagement_pct, content_known FROM {self._tables.enriched} FINAL WHERE is_deleted = 0 "
            "ORDER BY event_ts DESC, id DESC LIMIT {rows:UInt32}"
        )
        result = self._clickhouse(sql, {"rows": rows}, [ENRICHED_TABLE])
        events = [
            {
                "id": int(r[0]),
                "event_ts": iso_ms(int(r[1])),
                "event_ts_ms": int(r[1]),
                "content_id": r[2],
                "title": r[3],
                "content_type": r[4],
                "event_type": r[5],
                "device": r[6],
                "user_id": r[7],
                "duration_ms": None if r[8] is None else int(r[8]),
                "engagement_seconds": _float(r[9]),
                "engagement_pct": _float(r[10]),
                "content_known": bool(r[11]),
            }
            for r in result
        ]
        return {"rows": rows, "count": len(events), "events": events, "source": self.describe_clickhouse()}

    def by_content(self, minutes: int, limit: int) -> dict[str, Any]:
        """Engagement seconds per content over the last ``minutes`` (event time), best first, with titles."""
        now_ms = int(self._clock() * 1000)
        since_ms = now_ms - minutes * 60_000
        sql = (
            "SELECT toString(e.content_id) AS cid, sum(e.engagement_seconds) AS seconds, count() AS events, "
            "uniqExact(e.user_id) AS users, coalesce(any(c.title), any(e.title)) AS title, "
            "coalesce(any(c.content_type), any(e.content_type)) AS content_type "
            f"FROM {self._tables.enriched} AS e FINAL "
            f"LEFT JOIN (SELECT id, title, content_type FROM {self._tables.content} FINAL WHERE is_deleted = 0) "
            "AS c ON c.id = e.content_id "
            "WHERE e.is_deleted = 0 AND e.event_ts >= fromUnixTimestamp64Milli({since:Int64}) "
            "AND e.event_ts < fromUnixTimestamp64Milli({until:Int64}) "
            "GROUP BY cid ORDER BY seconds DESC, cid LIMIT {limit:UInt32}"
        )
        result = self._clickhouse(
            sql,
            {"since": since_ms, "until": now_ms + 1, "limit": limit},
            [ENRICHED_TABLE, CONTENT_TABLE],
        )
        return {
            "minutes": minutes,
            "limit": limit,
            "from": iso_ms(since_ms),
            "to": iso_ms(now_ms),
            "content": [
                {
                    "rank": rank,
                    "content_id": r[0],
                    "engagement_seconds": _float(r[1]) or 0.0,
                    "events": int(r[2]),
                    "users": int(r[3]),
                    "title": r[4],
                    "content_type": r[5],
                }
                for rank, r in enumerate(result, start=1)
            ],
            "source": self.describe_clickhouse(),
        }

    # ----------------------------------------------------------------------------------- Redis

    def _redis_client(self) -> Any:
        from shared.engagement.redis_io import redis_client

        with self._lock:
            if self._redis is None:
                try:
                    self._redis = redis_client(
                        self.settings.redis_url.get_secret_value(),
                        entra=self.settings.redis_entra_auth,
                        environ=self._environ,
                    )
                except StreamDuckError as exc:
                    raise StoreUnavailable("redis", one_line(exc)) from exc
            return self._redis

    def top(self, n: int, window: int) -> dict[str, Any]:
        """The top ``n`` content of a precomputed window, with titles from the content store."""
        from shared.engagement.leaderboard import redis_stores, top_n_with_titles
        from shared.engagement.redis_io import redis_errors

        client = self._redis_client()
        board, store = redis_stores(self.settings, client)
        now_ms = int(self._clock() * 1000)
        current = now_ms // 60_000
        try:
            with redis_errors():
                built = client.hget(board.meta_key, str(window))
            entries = top_n_with_titles(board, store, minutes=window, n=n, now_ms=now_ms)
        except StreamDuckError as exc:
            raise StoreUnavailable("redis", one_line(exc)) from exc
        built_minute = int(built) if built is not None else None
        return {
            "n": n,
            "window": window,
            "windows": list(self.windows),
            "from": iso_ms((current - window) * 60_000),
            "to": iso_ms(current * 60_000),
            "precomputed": built_minute == current,
            "built_for": iso_ms(built_minute * 60_000) if built_minute is not None else None,
            "key": board.window_key(window),
            "entries": [
                {
                    "rank": e.rank,
                    "content_id": e.content_id,
                    "title": e.title,
                    "content_type": e.content_type,
                    "engagement_seconds": e.engagement_seconds,
                }
                for e in entries
            ],
        }

    # ----------------------------------------------------------------------------------- Event Hubs

    def eventhubs(self) -> dict[str, Any]:
        """Per mapping: rows, watermark per partition, dead letters by kind, last compaction (or its error)."""
        from shared.readmodel.status import mapping_status

        mappings = []
        for m in self.settings.mappings:
            report = mapping_status(self.settings, m)
            for partition in report["partitions"]:
                partition.pop("lag", None)  # the hub is not asked here (`streamduck status` does)
            report["dead_letters_total"] = sum(report["dead_letters"].values())
            mappings.append(report)
        note = None if mappings else "no Event Hubs mappings are configured (EVENTHUBNAME_N, MOTHERDUCK_N_*)"
        return {"mappings": mappings, "note": note}

    # ----------------------------------------------------------------------------------- activity

    def activity(self, minutes: int) -> dict[str, Any]:
        """Rates and lag over the last ``minutes``, in :data:`BUCKETS` buckets, from the stores' own rows.

        Each series counts what the metric of the same name counts (``shared/telemetry/catalog.py``), read
        back from where the functions wrote it, so it also covers work done before the dashboard started:

        - ingest rate per mapping: rows of the mapping's table by ``ingested_at`` (the commit time of their
          batch) per second: ``streamduck.eventhubs.events.written`` (replays are not written twice);
        - enrichment rate: rows of ``engagement_enriched`` (current versions) by ``ingested_at`` per second,
          with known content (``records.enriched``, an event re-enriched when its content arrived counting
          at that time, as ``records.reenriched``) and still without (``records.unknown_content``);
        - lag per mapping: per batch (rows of one partition sharing ``ingested_at``), commit time minus the
          newest enqueued time, the largest in each bucket: ``streamduck.eventhubs.lag``;
        - freshness: the newest ``ingested_at`` of all of them.
        """
        now_ms = int(self._clock() * 1000)
        bucket_ms = max(1, minutes * 60 // BUCKETS) * 1000
        first = (now_ms // bucket_ms - BUCKETS + 1) * bucket_ms
        starts = [first + i * bucket_ms for i in range(BUCKETS)]
        errors: dict[str, str] = {}
        newest: list[tuple[int, str]] = []
        ingest: list[dict[str, Any]] = []
        lag: list[dict[str, Any]] = []
        for m in self.settings.mappings:
            label = f"{m.event_hub} \u2192 {m.target}"
            try:
                counts, lags, last = _mapping_activity(self.settings, m, first, bucket_ms)
            except StoreUnavailable as exc:
                errors[f"mapping {m.index}"] = exc.reason
                continue
            if last is not None:
                newest.append((last, f"mapping {m.index} ({m.target})"))
            seconds = bucket_ms / 1000
            ingest.append(
                {
                    "label": label,
                    "function": m.function_name,
                    "metric": catalog.EH_WRITTEN.name,
                    "points": [[t, counts.get(t, 0) / seconds] for t in starts],
                }
            )
            lag.append(
                {
                    "label": label,
                    "function": m.function_name,
                    "metric": catalog.EH_LAG.name,
                    "points": [[t, lags[t]] for t in starts if t in lags],
                }
            )
        enrichment: list[dict[str, Any]] = []
        try:
            known, unknown, last = self._enrichment_activity(first, bucket_ms)
        except StoreUnavailable as exc:
            errors["clickhouse"] = exc.reason
        else:
            seconds = bucket_ms / 1000
            for name, metric, counts in (
                ("known content", catalog.KAFKA_ENRICHED.name, known),
                ("unknown content", catalog.KAFKA_UNKNOWN_CONTENT.name, unknown),
            ):
                points = [[t, counts.get(t, 0) / seconds] for t in starts]
                enrichment.append({"label": name, "metric": metric, "points": points})
            if last is not None:
                newest.append((last, f"ClickHouse {self.settings.clickhouse_database}.{ENRICHED_TABLE}"))
        freshness = None
        if newest:
            last_ms, where = max(newest)
            freshness = {
                "last": iso_ms(last_ms),
                "last_ms": last_ms,
                "seconds_ago": (now_ms - last_ms) / 1000,
            }
            freshness["store"] = where
        return {
            "minutes": minutes,
            "bucket_seconds": bucket_ms // 1000,
            "from": iso_ms(first),
            "to": iso_ms(now_ms),
            "now_ms": now_ms,
            "freshness": freshness,
            "ingest": ingest,
            "enrichment": enrichment,
            "lag": lag,
            "errors": errors,
        }

    def _enrichment_activity(
        self, first_ms: int, bucket_ms: int
    ) -> tuple[dict[int, int], dict[int, int], int | None]:
        sql = (
            "SELECT intDiv(toUnixTimestamp64Milli(ingested_at), {bucket:Int64}) * {bucket:Int64} AS t, "
            "countIf(content_known), countIf(NOT content_known) "
            f"FROM {self._tables.enriched} FINAL WHERE is_deleted = 0 "
            "AND ingested_at >= fromUnixTimestamp64Milli({since:Int64}) GROUP BY t ORDER BY t"
        )
        rows = self._clickhouse(sql, {"bucket": bucket_ms, "since": first_ms}, [ENRICHED_TABLE])
        newest = self._clickhouse(
            f"SELECT toUnixTimestamp64Milli(max(ingested_at)), count() FROM {self._tables.enriched}",
            {},
            [ENRICHED_TABLE],
        )
        last = int(newest[0][0]) if newest and int(newest[0][1]) else None
        return {int(t): int(k) for t, k, _ in rows}, {int(t): int(u) for t, _, u in rows}, last


def _mapping_activity(
    settings: Settings, m: EventHubMapping, first_ms: int, bucket_ms: int
) -> tuple[dict[int, int], dict[int, float], int | None]:
    """Rows per bucket, the largest batch lag (s) per bucket, and the newest ``ingested_at`` of a mapping."""
    import duckdb

    from shared.duck.tables import target

    token = settings.token_for(m)
    try:
        if token is not None:
            con = duckdb.connect(
                f"md:{m.database}",
                config={"motherduck_token": token.get_secret_value(), "autoinstall_known_extensions": False},
            )
        else:
            path = settings.data_dir / f"{m.database}.duckdb"
            if not path.exists():
                raise StoreUnavailable("duckdb", f"no data yet ({path} does not exist)")
            con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise StoreUnavailable("duckdb", one_line(exc)) from exc
    table = target(m)
    since = first_ms / 1000
    try:
        counts = con.execute(
            f"SELECT epoch_ms(ingested_at) // ? * ? AS t, count(*) FROM {table} "
            "WHERE ingested_at >= to_timestamp(?) GROUP BY t",
            [bucket_ms, bucket_ms, since],
        ).fetchall()
        batches = con.execute(
            f"SELECT epoch_ms(ingested_at), epoch_ms(ingested_at) - epoch_ms(max(enqueued_time)) FROM {table} "
            "WHERE ingested_at >= to_timestamp(?) AND enqueued_time IS NOT NULL "
            "GROUP BY partition_id, ingested_at",
            [since],
        ).fetchall()
        newest = con.execute(f"SELECT epoch_ms(max(ingested_at)) FROM {table}").fetchall()
    except duckdb.CatalogException as exc:
        raise StoreUnavailable("duckdb", f"no data yet ({one_line(exc)})") from exc
    except duckdb.Error as exc:
        raise StoreUnavailable("duckdb", one_line(exc)) from exc
    finally:
        con.close()
    lags: dict[int, float] = {}
    for committed, lag_ms in batches:
        t = int(committed) // bucket_ms * bucket_ms
        lags[t] = max(lags.get(t, float("-inf")), int(lag_ms) / 1000)
    last = newest[0][0] if newest else None
    return {int(t): int(n) for t, n in counts}, lags, None if last is None else int(last)
