"""Debezium delivers at least once: after a Kafka Connect crash it re-emits the changes since its last flushed
offset, and a re-snapshot reads every row again. Such duplicates arrive at NEW Kafka offsets. Each engagement
change still counts once in the Redis leaderboard, which keeps agreeing with ClickHouse (``FINAL``).

Real Kafka, Redis and chDB; expectations are computed independently from the rows sent.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.engagement.functions import use_pipeline

from .pipeline_support import (
    content_msgs,
    engage_rows,
    exp_seconds,
    make_contents,
    make_events,
    minute_of,
    setup_topics,
)
from .support import T0_MS, Env, content_row, dumps, engagement_row, local_batch


def alive_sums(rows: list[dict[str, Any]]) -> dict[tuple[int, str], Decimal]:
    """Seconds per (minute, content) of the last change of each engagement that is not a delete."""
    last: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["id"] not in last or row["__source_ts_ms"] >= last[row["id"]]["__source_ts_ms"]:
            last[row["id"]] = row
    sums: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for row in last.values():
        if row["__op"] != "d":
            sums[(minute_of(row), row["content_id"])] += exp_seconds(row["duration_ms"]) or Decimal(0)
    return {k: v for k, v in sums.items() if v}


def board_sums(env: Env, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Decimal]:
    board = env.pipeline.leaderboard
    result: dict[tuple[int, str], Decimal] = {}
    for minute, member in keys:
        score = board.client.zscore(board.bucket_key(minute), member)
        if score is not None and round(score, 2):
            result[(minute, member)] = Decimal(str(round(score, 2)))
    return result


def clickhouse_sums(env: Env, members: set[str]) -> dict[tuple[int, str], Decimal]:
    rows = env.pipeline.warehouse.query(
        "SELECT intDiv(toUnixTimestamp(event_ts), 60), toString(content_id), sum(engagement_seconds) "
        "FROM {db}.engagement_enriched FINAL WHERE is_deleted = 0 GROUP BY 1, 2"
    )
    return {(int(m), str(c)): Decimal(str(s)) for m, c, s in rows if str(c) in members and s}


def check_agreement(env: Env, rows: list[dict[str, Any]]) -> None:
    expected = alive_sums(rows)
    members = {row["content_id"] for row in rows}
    keys = set(expected) | {(minute_of(row), row["content_id"]) for row in rows}
    assert board_sums(env, keys) == expected
    assert clickhouse_sums(env, members) == expected


def enrich(env: Env, rows: list[dict[str, Any]], first_offset: int) -> int:
    """One trigger batch of ``rows`` at offsets from ``first_offset`` (no broker); records skipped by offset."""
    batch = local_batch(env.settings.topic_engage, [dumps(r) for r in rows], first_offset=first_offset)
    with use_pipeline(env.pipeline):
        return env.pipeline.enrich(batch).already_counted


def with_content(env: Env, contents: list[dict[str, Any]]) -> None:
    batch = local_batch(env.settings.topic_content, [dumps(c) for c in contents])
    with use_pipeline(env.pipeline):
        env.pipeline.content(batch)


def test_the_last_200_of_500_re_emitted_at_new_offsets_count_once(env: Env) -> None:
    """The measured defect: Redis 64,341.43 before, 90,964.83 after the re-emission; now unchanged."""
    setup_topics(env)
    contents = make_contents(5)
    rows = make_events(contents, 500)
    env.call("engagement_content_cdc", env.send(env.settings.topic_content, content_msgs(contents)))
    env.call("engagement_enrich", env.send(env.settings.topic_engage, engage_rows(rows)))
    before = env.pipeline.leaderboard.top(60, 10, T0_MS + 4 * 60_000)
    check_agreement(env, rows)

    # Kafka Connect crashed before flushing its offsets: the last 200 changes arrive again, at offsets 500..699
    again = env.send(env.settings.topic_engage, engage_rows(rows[300:]))
    assert [e.offset for e in again] == list(range(500, 700))
    env.call("engagement_enrich", again)

    assert env.pipeline.leaderboard.top(60, 10, T0_MS + 4 * 60_000) == before
    check_agreement(env, rows)
    total = sum(alive_sums(rows).values())
    assert sum(Decimal(str(s)) for _, s in env.pipeline.leaderboard.top(60, 10, T0_MS + 4 * 60_000)) == total


def test_a_re_snapshot_counts_nothing_again_and_an_update_replaces_once(env: Env) -> None:
    contents = [content_row(str(uuid.uuid4()))]
    with_content(env, contents)
    cid = contents[0]["id"]
    ts = T0_MS - 5 * 60_000
    inserted = [engagement_row(i, cid, ts_ms=ts + i, duration_ms=10_000 * i) for i in range(1, 6)]
    enrich(env, inserted, 0)
    # row 2 grows to 99 s, row 3 is deleted
    changed = [
        engagement_row(2, cid, ts_ms=ts + 2, duration_ms=99_000, op="u", version=ts + 10_000),
        engagement_row(3, cid, ts_ms=ts + 3, duration_ms=30_000, op="d", version=ts + 11_000),
    ]
    enrich(env, changed, 5)
    rows = inserted + changed
    assert alive_sums(rows) == {(ts // 60_000, cid): Decimal(10 + 99 + 40 + 50)}
    check_agreement(env, rows)

    # a new slot: the connector reads the table again (op r, the snapshot's time), at new offsets
    snapshot = [
        engagement_row(
            i, cid, ts_ms=ts + i, duration_ms=99_000 if i == 2 else 10_000 * i, op="r", version=ts + 60_000
        )
        for i in (1, 2, 4, 5)
    ]
    enrich(env, snapshot, 7)
    check_agreement(env, rows + snapshot)
    # and a Connect crash re-emits the update and the delete once more
    assert enrich(env, changed, 11) == 0
    check_agreement(env, rows + snapshot)


def test_a_re_emitted_insert_does_not_bring_a_deleted_engagement_back(env: Env) -> None:
    contents = [content_row(str(uuid.uuid4()))]
    with_content(env, contents)
    cid = contents[0]["id"]
    ts = T0_MS - 3 * 60_000
    insert = engagement_row(7, cid, ts_ms=ts, duration_ms=20_000, version=ts + 1)
    delete = engagement_row(7, cid, ts_ms=ts, duration_ms=20_000, op="d", version=ts + 2)
    enrich(env, [insert, delete], 0)
    enrich(env, [insert], 2)
    check_agreement(env, [insert, delete])
    assert alive_sums([insert, delete]) == {}


def test_an_insert_and_delete_committed_in_the_same_millisecond_leave_nothing(env: Env) -> None:
    """Changes of one row with the same source time are applied in stream order (the later one wins)."""
    contents = [content_row(str(uuid.uuid4()))]
    with_content(env, contents)
    cid = contents[0]["id"]
    ts = T0_MS - 2 * 60_000
    insert = engagement_row(8, cid, ts_ms=ts, duration_ms=20_000, version=ts + 1)
    delete = engagement_row(8, cid, ts_ms=ts, duration_ms=20_000, op="d", version=ts + 1)
    other = engagement_row(9, cid, ts_ms=ts, duration_ms=5_000, version=ts + 1)
    enrich(env, [insert, other], 0)
    enrich(env, [delete], 2)
    board = env.pipeline.leaderboard
    assert board.client.zscore(board.bucket_key(ts // 60_000), cid) == 5.0
    enrich(env, [insert, delete], 3)  # the same two re-emitted together
    assert board.client.zscore(board.bucket_key(ts // 60_000), cid) == 5.0


def test_a_redelivery_starting_at_the_watermark_offset_skips_that_record(env: Env) -> None:
    contents = [content_row(str(uuid.uuid4()))]
    with_content(env, contents)
    cid = contents[0]["id"]
    rows = [engagement_row(i, cid, ts_ms=T0_MS - 60_000 + i, duration_ms=1_000) for i in range(1, 11)]
    assert enrich(env, rows[:5], 0) == 0
    assert env.pipeline.leaderboard.watermark(env.settings.topic_engage, 0) == 4
    assert enrich(env, rows[4:], 4) == 1  # offset 4 is the watermark: counted already
    assert enrich(env, rows[5:], 5) == 5
    check_agreement(env, rows)


_CHANGES = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["u", "d"]), st.integers(0, 400_000)), max_size=12
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    durations=st.lists(st.one_of(st.none(), st.integers(0, 400_000)), min_size=1, max_size=6),
    changes=_CHANGES,
    slices=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=4),
    batch_size=st.integers(1, 7),
)
def test_re_emitted_slices_at_new_offsets_count_once(
    env: Env,
    durations: list[int | None],
    changes: list[tuple[int, str, int]],
    slices: list[tuple[int, int]],
    batch_size: int,
) -> None:
    """Inserts, then updates and deletes (each with a later source time), then any slices of that stream
    again at new offsets, in batches of any size: the leaderboard equals the sum of each engagement's last
    change and ClickHouse's ``FINAL`` sums, minute by minute."""
    contents = [content_row(str(uuid.uuid4())) for _ in range(2)]
    with_content(env, contents)
    base = uuid.uuid4().int % 10**12
    ts = T0_MS - 10 * 60_000
    stream: list[dict[str, Any]] = []
    for i, duration in enumerate(durations):
        event_type = "click" if duration is None else "play"
        stream.append(
            engagement_row(
                base + i,
                contents[i % 2]["id"],
                ts_ms=ts + i * 20_000,
                duration_ms=duration,
                event_type=event_type,
            )
        )
    version = ts + 1_000_000
    deleted: set[int] = set()
    for pick, op, duration in changes:
        i = pick % len(durations)
        if i in deleted:
            continue
        version += 1
        event_type = "click" if durations[i] is None else "play"
        stream.append(
            engagement_row(
                base + i,
                contents[i % 2]["id"],
                ts_ms=ts + i * 20_000,
                duration_ms=None
                if durations[i] is None
                else duration
                if op == "u"
                else stream[-1]["duration_ms"],
                event_type=event_type,
                op=op,
                version=version,
            )
        )
        if op == "d":
            deleted.add(i)
            # a delete carries the row as it was
            last = [r for r in stream[:-1] if r["id"] == base + i][-1]
            stream[-1]["duration_ms"] = last["duration_ms"]
    delivered = list(stream)
    for a, b in slices:
        delivered.extend(stream[min(a, b) : max(a, b)])
    offset = env.produced.get("hypothesis", 0)
    for start in range(0, len(delivered), batch_size):
        chunk = delivered[start : start + batch_size]
        enrich(env, chunk, offset)
        offset += len(chunk)
    env.produced["hypothesis"] = offset
    check_agreement(env, stream)


def test_a_click_that_an_update_gives_seconds_counts_them_once(env: Env) -> None:
    contents = [content_row(str(uuid.uuid4()))]
    with_content(env, contents)
    cid = contents[0]["id"]
    ts = T0_MS - 4 * 60_000
    click = engagement_row(21, cid, ts_ms=ts, duration_ms=None, event_type="click", version=ts + 1)
    update = engagement_row(21, cid, ts_ms=ts, duration_ms=4_000, event_type="click", op="u", version=ts + 2)
    enrich(env, [click], 0)
    enrich(env, [update], 1)
    enrich(env, [update], 2)  # re-emitted
    check_agreement(env, [click, update])
    assert alive_sums([click, update]) == {(ts // 60_000, cid): Decimal(4)}


def test_a_delete_of_an_engagement_counted_before_the_change_log_existed_takes_its_seconds_off(
    env: Env,
) -> None:
    """Buckets written before the change log was kept hold scores with no entry behind them."""
    contents = [content_row(str(uuid.uuid4()))]
    with_content(env, contents)
    cid = contents[0]["id"]
    ts = T0_MS - 6 * 60_000
    board = env.pipeline.leaderboard
    board.client.zincrby(board.bucket_key(ts // 60_000), 12.5, cid)  # counted by the earlier script
    board.client.zincrby(board.bucket_key(ts // 60_000), 3.0, cid)  # and another engagement, still there
    delete = engagement_row(31, cid, ts_ms=ts, duration_ms=12_500, op="d", version=ts + 5)
    enrich(env, [delete], 0)
    enrich(env, [delete], 1)  # re-emitted: takes nothing more off
    assert board.client.zscore(board.bucket_key(ts // 60_000), cid) == 3.0


def test_content_deleted_in_the_millisecond_it_was_written_stays_deleted_after_a_re_emission(
    env: Env,
) -> None:
    """Changes of one content row with the same source time apply in stream order: the delete wins, and a
    re-emission of both ends the same way."""
    content_id = str(uuid.uuid4())
    version = T0_MS - 120_000
    upsert = content_row(content_id, title="Short-lived", version=version)
    delete = content_row(content_id, title="Short-lived", op="d", version=version)
    with_content(env, [upsert])
    with_content(env, [delete])
    assert env.pipeline.store.get_many([content_id], use_cache=False) == {content_id: None}
    with_content(env, [upsert, delete])
    assert env.pipeline.store.get_many([content_id], use_cache=False) == {content_id: None}
