"""The MotherDuck / DuckDB sink for Event Hubs batches: ``write_batch`` applies a batch exactly once.

Contract of :meth:`MotherDuckSink.write_batch`:

- **All or nothing.** Data rows, dead letters and the partition's watermark commit in one transaction.
- **Idempotent.** Events at or below the partition's watermark were applied before and are skipped, so any
  replay (retry, crash, rebalance, any split of the same events) writes nothing twice.
- **Bad input never fails the batch.** It is parked in the dead-letter table in the same transaction.
- **Failures raise.** A DuckDB/MotherDuck failure rolls back and raises :class:`~shared.errors.TransientError`
  (or :class:`~shared.errors.TerminalError` for a schema/configuration problem); nothing is half-written.

The watermark rules are written down in ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

from shared.clock import Clock, utc_now
from shared.duck import tables
from shared.duck.connection import DuckConnections, fetch_one
from shared.errors import StreamDuckError, TransientError
from shared.eventhubs.decode import BadEvent, DecodedBatch, json_error_reason
from shared.settings import BodyFormat, EventHubMapping

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# _ARROW_BY_NAME: the statements read the batch's Arrow tables through DuckDB's replacement scan, which finds a
# table that is not in the catalog among the calling function's local variables (``_streamduck_*``; mapping
# tables cannot be named so). It reads the same Arrow data as ``register`` without creating and dropping a
# view in the catalog for every batch, which costs about 0.8 ms per statement.


def rows_insert_sql(target: str, body_format: BodyFormat) -> str:
    """The statement that inserts a batch's decoded rows, the Arrow table ``_streamduck_batch`` of the calling
    function (_ARROW_BY_NAME), into ``target`` (a quoted name). Parameters: event hub, consumer group,
    partition id, ingestion time. A ``json`` body is cast, which validates it."""
    body = "body::JSON" if body_format is BodyFormat.JSON else "body"
    return (
        f"INSERT INTO {target} SELECT {body}, ?, ?, ?, sequence_number, event_offset, enqueued_time, "
        "partition_key, properties, system_properties, ? FROM _streamduck_batch"
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    """A mapping's SQL, built once per sink (names validated and quoted by :mod:`shared.duck.tables`)."""

    read_mark: str
    insert_mark: str
    update_mark: str  # the update of a row read in this transaction
    begin_and_compare_and_set: str  # BEGIN and the update against the remembered row, in one call
    rows: str
    dead_letters: str

    @classmethod
    def of(cls, m: EventHubMapping) -> _Statements:
        wm_table = tables.control(m, tables.WATERMARKS)
        update = (
            f"UPDATE {wm_table} SET sequence_number = ?, event_offset = ?, enqueued_time = ?, epoch = ?, "
            "updated_at = ? WHERE namespace = ? AND event_hub = ? AND consumer_group = ? AND partition_id = ? "
            "AND target_table = ?"
        )
        return cls(
            read_mark=(
                f"SELECT sequence_number, epoch_us(enqueued_time), epoch FROM {wm_table} "
                "WHERE namespace = ? AND event_hub = ? AND consumer_group = ? AND partition_id = ? "
                "AND target_table = ?"
            ),
            insert_mark=(
                f"INSERT INTO {wm_table} (namespace, event_hub, consumer_group, partition_id, target_table, "
                "sequence_number, event_offset, enqueued_time, epoch, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            update_mark=update,
            begin_and_compare_and_set=f"BEGIN TRANSACTION; {update} AND sequence_number = ? AND epoch = ?",
            rows=rows_insert_sql(tables.target(m), m.body_format),
            dead_letters=(
                f"INSERT INTO {tables.control(m, tables.DEAD_LETTERS)} SELECT ?, ?, ?, ?, ?, "
                "sequence_number, event_offset, enqueued_time, "
                "partition_key, kind, reason, body_bytes, raw, properties::JSON, ? FROM _streamduck_dead"
            ),
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one ``write_batch`` call did."""

    partition_id: str
    received: int
    written: int
    dead_lettered: int
    skipped: int  # at or below the watermark: applied by an earlier delivery
    watermark: int
    epoch: int
    reset: bool  # sequence numbers went backwards: a new epoch started
    dead_letter_reasons: tuple[tuple[str, int], ...] = ()  # (reason, events) of the parked events

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class _Mark:
    """A partition's watermark row: the last applied sequence number, its enqueued time and the epoch."""

    sequence_number: int
    enqueued_us: int | None
    epoch: int


_NO_MARK = _Mark(-1, None, 0)


class _StaleMark(Exception):
    """The remembered watermark no longer matches the table (another instance moved it): redo the batch
    after reading the row."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a batch does against a given watermark, computed before any statement runs."""

    rows: pa.Table
    parked: list[BadEvent]
    skipped: int
    mark: _Mark  # the watermark after the batch
    advances: bool  # the watermark row changes
    reset: bool
    top_index: int  # row of the batch that becomes the watermark (when it advances)


class MotherDuckSink:
    """Writes decoded batches of one or more mappings. Safe to share between threads.

    The sink remembers the watermark it last committed for each partition. The next batch of that partition
    then skips the read and moves the row with a compare-and-set ``UPDATE ... WHERE sequence_number = <the
    remembered one> AND epoch = <...>`` as its first statement. When another instance moved the row in the
    meantime, the update matches nothing, the transaction is rolled back before anything was written, and
    the batch is redone from the row as read. A concurrent, uncommitted move makes the update conflict and
    raise (transient), exactly as a read-then-update would.
    """

    def __init__(
        self,
        connections: DuckConnections,
        *,
        clock: Clock = utc_now,
        before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> None:
        self._connections = connections
        self._clock = clock
        # Seam for fault injection (tests, drills): called inside the transaction, just before COMMIT.
        self._before_commit = before_commit
        self._marks: dict[tuple[str, ...], _Mark] = {}
        self._statements: dict[tuple[str, str, str, BodyFormat], _Statements] = {}

    def _sql(self, m: EventHubMapping) -> _Statements:
        key = (m.database, m.schema_name, m.table, m.body_format)
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements.setdefault(key, _Statements.of(m))
        return sql

    def write_batch(self, mapping: EventHubMapping, batch: DecodedBatch) -> BatchResult:
        # This thread's cursor, kept between batches (DuckDB cursors are not shared between threads).
        token = mapping.token
        with self._connections.thread_cursor(mapping.database, token) as cur:
            result = self._write_batch(cur, mapping, token, batch)
        if result.reset:
            log.warning(
                "sequence numbers went backwards on %s partition %s (hub recreated?): started epoch %d",
                mapping.event_hub,
                batch.partition.partition_id,
                result.epoch,
            )
        return result

    def _write_batch(
        self,
        cur: duckdb.DuckDBPyConnection,
        mapping: EventHubMapping,
        token: SecretStr | None,
        batch: DecodedBatch,
    ) -> BatchResult:
        location = self._connections.location(mapping.database, token)
        p = batch.partition
        key = (p.namespace, p.event_hub, p.consumer_group, p.partition_id, mapping.table)
        mark_key = (location, mapping.schema_name, *key)
        # Optimistic: the JSON column's cast validates the bodies during the insert. Only when it rejects
        # one does the batch pay for a separate validation pass, and the transaction is redone without it.
        bad: list[BadEvent] | None = None if mapping.body_format is BodyFormat.JSON else list(batch.bad)
        try:
            tables.ensure(cur, mapping, location)
            while True:
                try:
                    result, mark = self._transaction(cur, mapping, batch, key, self._marks.get(mark_key), bad)
                    break
                except _StaleMark:
                    self._marks.pop(mark_key, None)
                except duckdb.ConversionException:
                    if bad is not None:
                        raise
                    bad = self._bad_events(cur, mapping, batch)
            self._marks[mark_key] = mark
        except duckdb.Error as exc:
            self._marks.pop(mark_key, None)
            raise self._connections.handle_error(exc, mapping.database, token) from exc
        except BaseException:
            self._marks.pop(mark_key, None)
            raise
        return result

    def _transaction(
        self,
        cur: duckdb.DuckDBPyConnection,
        m: EventHubMapping,
        batch: DecodedBatch,
        key: tuple[str, ...],
        remembered: _Mark | None,
        bad: list[BadEvent] | None,
    ) -> tuple[BatchResult, _Mark]:
        bad = list(batch.bad) if bad is None else bad
        sql = self._sql(m)
        now = self._clock()
        plan = None if remembered is None else self._plan(batch, remembered, bad=bad)
        if plan is not None and not (plan.advances and (plan.rows.num_rows or plan.parked)):
            plan = None  # nothing new against the remembered row: a replay, which reads the row to be sure
        if plan is None:
            cur.execute("BEGIN TRANSACTION")
        try:
            if plan is None:
                row = fetch_one(cur, sql.read_mark, list(key))
                mark = _NO_MARK if row is None else _Mark(_int(row[0]), _opt_int(row[1]), _int(row[2]))
                plan = self._plan(batch, mark, bad=bad)
                if plan.advances:
                    self._move_mark(cur, sql, key, batch, plan, now, insert=row is None)
            else:
                # BEGIN and the compare-and-set in one call (parameters bind to the last statement).
                changed = self._move_mark(cur, sql, key, batch, plan, now, expect=remembered)
                if changed != 1:
                    raise _StaleMark
            if plan.rows.num_rows:
                p = batch.partition
                _streamduck_batch = plan.rows  # read by name in the SQL below (_ARROW_BY_NAME)
                cur.execute(sql.rows, [p.event_hub, p.consumer_group, p.partition_id, now])
            if plan.parked:
                self._park(cur, m, sql, batch, plan.parked, now)
            if self._before_commit is not None:
                self._before_commit(cur)
            cur.execute("COMMIT")
        except BaseException:
            _rollback(cur)
            raise
        p = batch.partition
        result = BatchResult(
            partition_id=p.partition_id,
            received=batch.size,
            written=plan.rows.num_rows,
            dead_lettered=len(plan.parked),
            skipped=plan.skipped,
            watermark=plan.mark.sequence_number,
            epoch=plan.mark.epoch,
            reset=plan.reset,
            dead_letter_reasons=_reasons(plan.parked),
        )
        return result, plan.mark

    @staticmethod
    def _plan(batch: DecodedBatch, mark: _Mark, *, bad: list[BadEvent]) -> _Plan:
        """The batch against ``mark`` (``_NO_MARK`` when the partition has no row yet)."""
        t = batch.table
        n = batch.size
        if not n:
            return _Plan(rows=t, parked=[], skipped=0, mark=mark, advances=False, reset=False, top_index=-1)
        seq = t.column("sequence_number")
        bounds = pc.min_max(seq)
        low, top = int(bounds["min"].as_py()), int(bounds["max"].as_py())
        watermark, epoch, reset = mark.sequence_number, mark.epoch, False
        if low <= watermark and mark.enqueued_us is not None:
            enqueued_us = t.column("enqueued_time").cast(pa.int64())
            backwards = pc.and_(pc.less_equal(seq, watermark), pc.greater(enqueued_us, mark.enqueued_us))
            if pc.any(backwards).as_py():
                reset, epoch, watermark = True, epoch + 1, -1

        if low > watermark:  # the usual case: the whole batch is new
            fresh: pa.ChunkedArray | None = None
            fresh_count = n
            parked = list(bad)
        else:
            fresh = pc.greater(seq, watermark)
            fresh_count = int(pc.sum(fresh).as_py() or 0)
            fresh_list = fresh.to_pylist()
            parked = [b for b in bad if fresh_list[b.index]]
        good = fresh
        if bad:
            keep = pc.invert(_mask(n, bad))
            good = keep if fresh is None else pc.and_(fresh, keep)
        advances = top > watermark or reset
        top_index = -1
        new_mark = mark
        if advances:
            top_index = n - 1 if seq[n - 1].as_py() == top else int(pc.index(seq, top).as_py())
            # The scalar's value in the column's unit, as the column cast to int64 above (None when null).
            new_mark = _Mark(top, t.column("enqueued_time")[top_index].value, epoch)
        return _Plan(
            rows=t if good is None else t.filter(good),
            parked=parked,
            skipped=n - fresh_count,
            mark=new_mark,
            advances=advances,
            reset=reset,
            top_index=top_index,
        )

    def _move_mark(
        self,
        cur: duckdb.DuckDBPyConnection,
        sql: _Statements,
        key: tuple[str, ...],
        batch: DecodedBatch,
        plan: _Plan,
        now: datetime,
        *,
        insert: bool = False,
        expect: _Mark | None = None,
    ) -> int:
        """Write the watermark row; returns the number of rows the statement changed. With ``expect``, the
        transaction is begun in the same call and the row is compared with ``expect`` (compare-and-set)."""
        mark = plan.mark
        values = [
            mark.sequence_number,
            batch.table.column("event_offset")[plan.top_index].as_py(),
            # The top event's enqueued time, which the plan read as microseconds (no timezone conversion).
            None if mark.enqueued_us is None else _EPOCH + timedelta(microseconds=mark.enqueued_us),
            mark.epoch,
            now,
        ]
        params: list[object]
        if insert:
            # First batch of the partition. Two first deliveries racing both insert: the primary key makes
            # the later insert or commit fail (transient either way), and its retry finds the row.
            statement, params = sql.insert_mark, [*key, *values]
        elif expect is None:
            # Read in this transaction: a concurrent writer of the row makes one commit fail.
            statement, params = sql.update_mark, [*values, *key]
        else:
            # Compared here: a concurrent writer of the row makes the update or one commit fail.
            statement = sql.begin_and_compare_and_set
            params = [*values, *key, expect.sequence_number, expect.epoch]
        try:
            row = fetch_one(cur, statement, params)
        except duckdb.ConstraintException as exc:
            if not insert:
                raise
            # Another first delivery of the partition committed its row after this one read none: a harmless
            # race. The retry reads that row and skips what it applied.
            raise TransientError(
                f"another delivery of {key[1]} partition {key[3]} wrote its first watermark meanwhile; "
                "the retry reads it",
                store="duckdb",
                cause=exc,
            ) from exc
        return 0 if row is None else _int(row[0])

    @staticmethod
    def _bad_events(
        cur: duckdb.DuckDBPyConnection, m: EventHubMapping, batch: DecodedBatch
    ) -> list[BadEvent]:
        bad = list(batch.bad)
        known = {b.index for b in bad}
        # Validate with DuckDB's own JSON parser: the one that types the JSON column.
        _streamduck_bodies = pa.table(  # read by name in the SQL below (_ARROW_BY_NAME)
            {"i": pa.array(range(batch.size), pa.int64()), "body": batch.table["body"]}
        )
        invalid = cur.execute(
            "SELECT i FROM _streamduck_bodies WHERE NOT json_valid(body) ORDER BY i"
        ).fetchall()
        for (i,) in invalid:
            if i not in known:
                bad.append(BadEvent(i, "invalid_json", json_error_reason(batch.raw[i].as_py())))
        return sorted(bad, key=lambda b: b.index)

    @staticmethod
    def _park(
        cur: duckdb.DuckDBPyConnection,
        m: EventHubMapping,
        sql: _Statements,
        batch: DecodedBatch,
        parked: list[BadEvent],
        now: datetime,
    ) -> None:
        p = batch.partition
        idx = pa.array([b.index for b in parked], pa.int64())
        t = batch.table
        raw = pc.take(batch.raw, idx)
        _streamduck_dead = pa.table(  # read by name in the SQL below (_ARROW_BY_NAME)
            {
                "sequence_number": pc.take(t["sequence_number"], idx),
                "event_offset": pc.take(t["event_offset"], idx),
                "enqueued_time": pc.take(t["enqueued_time"], idx),
                "partition_key": pc.take(t["partition_key"], idx),
                "kind": pa.array([b.kind for b in parked], pa.string()),
                "reason": pa.array([b.reason for b in parked], pa.string()),
                "body_bytes": pc.binary_length(raw).cast(pa.int64()),
                "raw": raw,
                "properties": pc.take(t["properties"], idx),
            }
        )
        cur.execute(
            sql.dead_letters,
            [m.table, p.namespace, p.event_hub, p.consumer_group, p.partition_id, now],
        )


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer from the watermark table, got {value!r}")
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _reasons(parked: list[BadEvent]) -> tuple[tuple[str, int], ...]:
    """(kind, count) of the parked events, by kind (the machine reason: ``invalid_json``, ``oversized``...)."""
    if not parked:
        return ()
    return tuple(sorted(Counter(b.kind for b in parked).items()))


def _mask(n: int, bad: list[BadEvent]) -> pa.Array:
    mask = [False] * n
    for b in bad:
        mask[b.index] = True
    return pa.array(mask, pa.bool_())


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failure; the caller re-raises the original error, which is what the host must see."""
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error as exc:
        if "no transaction is active" in str(exc):
            return  # the failed COMMIT already ended (and undid) the transaction
        log.warning("rollback after a failed batch also failed (the batch was not applied): %s", exc)


__all__ = ["BatchResult", "MotherDuckSink", "StreamDuckError", "rows_insert_sql"]
