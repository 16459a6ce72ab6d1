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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shared.duck import tables
from shared.duck.connection import DuckConnections, fetch_one
from shared.errors import StreamDuckError
from shared.eventhubs.decode import BadEvent, DecodedBatch, json_error_reason
from shared.settings import BodyFormat, EventHubMapping

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


class MotherDuckSink:
    """Writes decoded batches of one or more mappings. Safe to share between threads."""

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

    def write_batch(self, mapping: EventHubMapping, batch: DecodedBatch) -> BatchResult:
        # One cursor per call: Arrow tables registered on it (streamduck_*) go away when it is closed.
        token = mapping.token
        cur = self._connections.cursor(mapping.database, token)
        location = self._connections.location(mapping.database, token)
        # Optimistic: the JSON column's cast validates the bodies during the insert. Only when it rejects
        # one does the batch pay for a separate validation pass, and the transaction is redone without it.
        bad: list[BadEvent] | None = None if mapping.body_format is BodyFormat.JSON else list(batch.bad)
        try:
            tables.ensure(cur, mapping, location)
            while True:
                try:
                    result = self._transaction(cur, mapping, batch, bad)
                    break
                except duckdb.ConversionException:
                    if bad is not None:
                        raise
                    bad = self._bad_events(cur, mapping, batch)
        except duckdb.Error as exc:
            raise self._connections.handle_error(exc, mapping.database, token) from exc
        finally:
            cur.close()
        if result.reset:
            log.warning(
                "sequence numbers went backwards on %s partition %s (hub recreated?): started epoch %d",
                mapping.event_hub,
                batch.partition.partition_id,
                result.epoch,
            )
        return result

    def _transaction(
        self,
        cur: duckdb.DuckDBPyConnection,
        m: EventHubMapping,
        batch: DecodedBatch,
        bad: list[BadEvent] | None,
    ) -> BatchResult:
        cur.execute("BEGIN TRANSACTION")
        try:
            result = self._apply(cur, m, batch, list(batch.bad) if bad is None else bad)
            if self._before_commit is not None:
                self._before_commit(cur)
            cur.execute("COMMIT")
        except BaseException:
            _rollback(cur)
            raise
        return result

    def _apply(
        self, cur: duckdb.DuckDBPyConnection, m: EventHubMapping, batch: DecodedBatch, bad: list[BadEvent]
    ) -> BatchResult:
        p = batch.partition
        key = [p.namespace, p.event_hub, p.consumer_group, p.partition_id, m.table]
        row = fetch_one(
            cur,
            f"SELECT sequence_number, epoch_us(enqueued_time), epoch FROM {tables.control(m, tables.WATERMARKS)} "
            "WHERE namespace = ? AND event_hub = ? AND consumer_group = ? AND partition_id = ? AND target_table = ?",
            list(key),
        )
        watermark, watermark_time, epoch = (
            (-1, None, 0) if row is None else (_int(row[0]), row[1], _int(row[2]))
        )

        t = batch.table
        seq = t.column("sequence_number")
        reset = False
        if row is not None and watermark_time is not None:
            enqueued_us = t.column("enqueued_time").cast(pa.int64())
            backwards = pc.and_(pc.less_equal(seq, watermark), pc.greater(enqueued_us, _int(watermark_time)))
            if pc.any(backwards).as_py():
                reset, epoch, watermark = True, epoch + 1, -1

        fresh = pc.fill_null(pc.greater(seq, watermark), False)
        bad_mask = pa.array([False] * batch.size) if not bad else _mask(batch.size, bad)
        good = pc.and_(fresh, pc.invert(bad_mask))
        now = self._clock()

        rows = t.filter(good)
        if rows.num_rows:
            cur.register("streamduck_batch", rows)
            body = "body::JSON" if m.body_format is BodyFormat.JSON else "body"
            cur.execute(
                f"INSERT INTO {tables.target(m)} SELECT {body}, ?, ?, ?, sequence_number, event_offset, "
                "enqueued_time, partition_key, properties::JSON, system_properties::JSON, ? FROM streamduck_batch",
                [p.event_hub, p.consumer_group, p.partition_id, now],
            )

        fresh_list = fresh.to_pylist()
        parked = [b for b in bad if fresh_list[b.index]]
        if parked:
            self._park(cur, m, batch, parked, now)

        if batch.size:
            top = int(pc.max(seq).as_py())
            if top > watermark or reset:
                i = int(pc.index(seq, top).as_py())
                values = [
                    top,
                    t.column("event_offset")[i].as_py(),
                    t.column("enqueued_time")[i].as_py(),
                    epoch,
                    now,
                ]
                wm_table = tables.control(m, tables.WATERMARKS)
                if row is None:
                    # First batch of the partition. Two first deliveries racing both insert: the primary
                    # key makes the later commit fail (transient), and its retry finds the row.
                    cur.execute(
                        f"INSERT INTO {wm_table} (namespace, event_hub, consumer_group, partition_id, target_table, "
                        "sequence_number, event_offset, enqueued_time, epoch, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [*key, *values],
                    )
                else:
                    # The row was read in this transaction: a concurrent writer of it makes one commit fail.
                    cur.execute(
                        f"UPDATE {wm_table} SET sequence_number = ?, event_offset = ?, enqueued_time = ?, "
                        "epoch = ?, updated_at = ? WHERE namespace = ? AND event_hub = ? AND consumer_group = ? "
                        "AND partition_id = ? AND target_table = ?",
                        [*values, *key],
                    )
                watermark = top
        return BatchResult(
            partition_id=p.partition_id,
            received=batch.size,
            written=rows.num_rows,
            dead_lettered=len(parked),
            skipped=batch.size - sum(fresh_list),
            watermark=watermark,
            epoch=epoch,
            reset=reset,
        )

    @staticmethod
    def _bad_events(
        cur: duckdb.DuckDBPyConnection, m: EventHubMapping, batch: DecodedBatch
    ) -> list[BadEvent]:
        bad = list(batch.bad)
        known = {b.index for b in bad}
        # Validate with DuckDB's own JSON parser: the one that types the JSON column.
        cur.register(
            "streamduck_bodies",
            pa.table({"i": pa.array(range(batch.size), pa.int64()), "body": batch.table["body"]}),
        )
        invalid = cur.execute(
            "SELECT i FROM streamduck_bodies WHERE NOT json_valid(body) ORDER BY i"
        ).fetchall()
        for (i,) in invalid:
            if i not in known:
                bad.append(BadEvent(i, "invalid_json", json_error_reason(batch.raw[i].as_py())))
        return sorted(bad, key=lambda b: b.index)

    @staticmethod
    def _park(
        cur: duckdb.DuckDBPyConnection,
        m: EventHubMapping,
        batch: DecodedBatch,
        parked: list[BadEvent],
        now: datetime,
    ) -> None:
        p = batch.partition
        idx = pa.array([b.index for b in parked], pa.int64())
        t = batch.table
        raw = pc.take(batch.raw, idx)
        letters = pa.table(
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
        cur.register("streamduck_dead", letters)
        cur.execute(
            f"INSERT INTO {tables.control(m, tables.DEAD_LETTERS)} SELECT ?, ?, ?, ?, ?, "
            "sequence_number, event_offset, enqueued_time, "
            "partition_key, kind, reason, body_bytes, raw, properties::JSON, ? FROM streamduck_dead",
            [m.table, p.namespace, p.event_hub, p.consumer_group, p.partition_id, now],
        )


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer from the watermark table, got {value!r}")
    return value


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


__all__ = ["BatchResult", "Clock", "MotherDuckSink", "StreamDuckError", "utc_now"]
