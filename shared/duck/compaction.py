"""Timer-triggered upkeep of each mapping's tables: retention, then CHECKPOINT.

Idempotent (running it twice does nothing more), bounded in time (stops starting new tables after the
budget) and safe while ingestion runs: every step is its own short transaction, and a conflict with a
concurrent ingest is reported and left for the next run instead of failing ingestion.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import duckdb

from shared.clock import Clock, utc_now
from shared.duck import tables
from shared.duck.connection import DuckConnections, fetch_one
from shared.settings import EventHubMapping, Settings
from shared.telemetry import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompactionReport:
    target: str
    rows_before: int
    rows_after: int
    rows_expired: int
    dead_letters_expired: int
    checkpointed: bool
    seconds: float
    note: str = ""
    row_groups_before: int | None = None  # local DuckDB files: small appends merged by CHECKPOINT
    row_groups_after: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CompactionRun:
    compacted: list[CompactionReport]
    skipped: list[str]  # targets not started because the time budget was used up (next run)
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "compacted": [r.as_dict() for r in self.compacted],
            "skipped": self.skipped,
            "seconds": self.seconds,
        }


def compact_all(
    settings: Settings,
    connections: DuckConnections,
    *,
    clock: Clock = utc_now,
    budget_seconds: float | None = None,
) -> CompactionRun:
    """Compact every mapping; returns a report with what was done and what was skipped for lack of time.

    Recorded as one run of the ``compaction`` job (outcome, duration, rows and dead letters deleted, tables
    compacted and skipped); a failure is recorded as ``outcome=error`` and raised.
    """
    budget = settings.compaction_budget_seconds if budget_seconds is None else budget_seconds
    started = time.monotonic()
    done: list[CompactionReport] = []
    skipped: list[str] = []
    with metrics.job_run(metrics.JOB_COMPACTION) as run:
        for m in settings.mappings:
            if time.monotonic() - started > budget:
                skipped.append(m.target)
                continue
            report = compact_mapping(m, connections, clock=clock)
            done.append(report)
            run.count("rows_deleted", report.rows_expired)
            run.count("dead_letters_deleted", report.dead_letters_expired)
            run.count("tables_compacted", 1)
        run.count("tables_skipped", len(skipped))
    if skipped:
        log.warning("compaction budget of %.0f s used up; skipped %s (next run)", budget, ", ".join(skipped))
    return CompactionRun(done, skipped, round(time.monotonic() - started, 3))


def _scalar(cur: duckdb.DuckDBPyConnection, sql: str, *params: object) -> int:
    """The integer a count (or a DELETE, which returns its row count) answers; 0 when there is no row."""
    row = fetch_one(cur, sql, list(params))
    return int(str(row[0])) if row else 0


def _count(cur: duckdb.DuckDBPyConnection, table: str) -> int:
    return _scalar(cur, f"SELECT count(*) FROM {table}")


def _row_groups(cur: duckdb.DuckDBPyConnection, m: EventHubMapping) -> int:
    return _scalar(
        cur,
        "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info(?)",
        f"{m.database}.{m.schema_name}.{m.table}",
    )


def compact_mapping(
    m: EventHubMapping, connections: DuckConnections, *, clock: Clock = utc_now
) -> CompactionReport:
    t0 = time.monotonic()
    started = clock()
    location = connections.location(m.database, m.token)
    cur = connections.cursor(m.database, m.token)
    try:
        tables.ensure(cur, m, location)
        target = tables.target(m)
        before = _count(cur, target)
        expired = letters_expired = 0
        if m.retention_days is not None:
            horizon: datetime = started - timedelta(days=m.retention_days)
            expired = _scalar(cur, f"DELETE FROM {target} WHERE enqueued_time < ?", horizon)
            letters_expired = _scalar(
                cur,
                f"DELETE FROM {tables.control(m, tables.DEAD_LETTERS)} WHERE target_table = ? AND parked_at < ?",
                m.table,
                horizon,
            )
        after = _count(cur, target)
        checkpointed, note = False, ""
        groups_before = groups_after = None
        if location.startswith("md:"):
            note = "MotherDuck manages storage layout itself; CHECKPOINT not needed"
        else:
            groups_before = _row_groups(cur, m)
            try:
                cur.execute(f"CHECKPOINT {tables.quote_db(m.database)}")
                checkpointed = True
            except (
                duckdb.TransactionException
            ) as exc:  # ingestion holds the database: reported, retried next run
                note = f"CHECKPOINT deferred to the next run: {exc}"
                log.warning("compaction of %s: %s", m.target, note)
            groups_after = _row_groups(cur, m)
        cur.execute(
            f"INSERT INTO {tables.control(m, tables.MAINTENANCE)} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [m.table, started, clock(), before, after, expired, letters_expired, checkpointed, note or None],
        )
    except duckdb.Error as exc:
        raise connections.handle_error(exc, m.database, m.token) from exc
    finally:
        cur.close()
    report = CompactionReport(
        m.target,
        before,
        after,
        expired,
        letters_expired,
        checkpointed,
        round(time.monotonic() - t0, 3),
        note,
        groups_before,
        groups_after,
    )
    log.info("compacted %s: %s", m.target, report)
    return report
