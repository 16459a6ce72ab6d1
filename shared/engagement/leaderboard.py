"""Real-time leaderboard in Redis: event-time minute buckets, exactly-once updates, precomputed windows.

Keys (``REDIS_KEY_PREFIX`` in front of each; with the default empty prefix the bucket names are the earlier
pipeline's):

- ``zset:eng:minute:<YYYYMMDDHHMM>`` (UTC minute of ``event_ts``): member content id, score engagement
  seconds. Every write sets the TTL ``LEADERBOARD_BUCKET_TTL_SECONDS``, which settings require to be at least
  ``(longest window + 1) * 60`` seconds; every reader (:meth:`Leaderboard.top`, the windows timer) refuses a
  window longer than the TTL serves (:class:`WindowTooLongError`), so no window is silently cut short.
- ``eng:seen:<YYYYMMDDHHMM>``: the minute's change log, the version and centis counted per engagement id
  (64 consecutive ids per field, same TTL as the bucket), so that a change Debezium re-emits at a new Kafka offset (after a Kafka Connect
  crash, or a re-snapshot) is recognised and counts nothing again.
- ``eng:wm:<consumer group>:<topic>``: hash partition -> highest Kafka offset already counted.
- ``zset:eng:window:<W>``: top list of the last ``W`` complete minutes, rebuilt by the timer when the minute
  turns; ``eng:window:meta`` says which minute each window was built for.
- ``zset:eng:window:adhoc:<W>:<minute>``: a window the timer does not keep, built on first read (60 s TTL).

A batch is one ``EVALSHA``: its changes, grouped by minute (one MessagePack array per minute), and the range
of offsets per partition. The script checks and moves the per-partition offset watermark in the same atomic
step, so a batch that Kafka redelivers at the same offsets is skipped (the caller resends only the records
above the watermark), and sets each engagement's counted seconds from its change when the change's version
(``__source_ts_ms``) is at least the one remembered: an older or repeated change adds nothing.

Scores: an engagement scores its engagement seconds while it exists: ``c`` (insert) and ``r`` (snapshot)
add them, ``u`` (update) replaces them, ``d`` (delete) takes them off (the row is in the delete record). Events
without a duration (clicks) score 0. See docs/engagement.md, "Re-emitted changes".

A window of ``W`` minutes at time ``now`` covers the ``W`` complete UTC minutes before the minute of ``now``;
``W`` is at most ``(LEADERBOARD_BUCKET_TTL_SECONDS - 60) // 60`` (and never more than 1440).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec
import redis

from shared.engagement.content_store import ContentStore
from shared.engagement.records import EngagementColumns
from shared.engagement.redis_io import redis_errors
from shared.errors import TerminalError, TransientError
from shared.settings import Settings, leaderboard_max_window_minutes, leaderboard_min_bucket_ttl_seconds

_MSGPACK = msgspec.msgpack.Encoder()
_APPLY_LUA = resources.files("shared.engagement").joinpath("leaderboard.lua").read_text(encoding="utf-8")
WINDOW_KEY_TTL_SECONDS = 180
ADHOC_WINDOW_TTL_SECONDS = 60
MAX_WINDOW_MINUTES = 1440


class WindowTooLongError(TerminalError, ValueError):
    """A window longer than the minute buckets live: its oldest minutes would be missing, not zero."""

    def __init__(self, minutes: int, bucket_ttl_seconds: int) -> None:
        longest = leaderboard_max_window_minutes(bucket_ttl_seconds)
        super().__init__(
            f"a {minutes}-minute leaderboard window is longer than the minute buckets live: "
            f"LEADERBOARD_BUCKET_TTL_SECONDS={bucket_ttl_seconds} serves windows of at most {longest} minutes; "
            f"set LEADERBOARD_BUCKET_TTL_SECONDS={leaderboard_min_bucket_ttl_seconds(minutes)} or more "
            "(buckets written before the change keep their old TTL) or ask for a shorter window"
        )
        self.minutes = minutes
        self.bucket_ttl_seconds = bucket_ttl_seconds
        self.longest = longest


# One change of an engagement, as the leaderboard counts it: (index of the record in the batch, epoch minute of
# event_ts, member (content id), op (c, r, u or d), the row's engagement seconds in hundredths (0 for a click),
# engagement id, version (the change's source commit time in ms)). Records without a change (dead letters,
# tombstones) still move the watermark.
Change = tuple[int, int, str, str, int, int, int]


def changes_of(columns: EngagementColumns) -> list[Change]:
    """The leaderboard changes of decoded engagement rows: every row that scores or may change a score
    (inserts, snapshot reads and deletes with seconds, every update)."""
    result: list[Change] = []
    for i, op, event_id, content_id, ts_ms, duration, version in zip(
        columns["position"],
        columns["op"],
        columns["id"],
        columns["content_id"],
        columns["event_ts_ms"],
        columns["duration_ms"],
        columns["version_ms"],
        strict=True,
    ):
        centis = 0 if duration is None else (duration + 5) // 10
        if centis or op == "u":
            result.append((i, ts_ms // 60_000, content_id, op, centis, event_id, version))
    return result


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    rank: int
    content_id: str
    engagement_seconds: float
    title: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Call:
    keys: list[str]
    args: list[str | int | bytes]
    tps: list[tuple[str, int]]  # topic-partitions in the order of the script's header


class PreparedScores:
    """A batch's leaderboard update, packed, sent by :meth:`apply` (see ``Leaderboard.apply``)."""

    __slots__ = ("_changes", "_first", "leaderboard", "offsets", "partitions", "topics")

    def __init__(
        self,
        leaderboard: Leaderboard,
        topics: Sequence[str],
        partitions: Sequence[int],
        offsets: Sequence[int],
        changes: Sequence[Change] | Callable[[], Sequence[Change]],
        first: _Call | None,
    ) -> None:
        self.leaderboard = leaderboard
        self.topics = topics
        self.partitions = partitions
        self.offsets = offsets
        self._changes = changes
        self._first = first

    @property
    def changes(self) -> Sequence[Change]:
        """The batch's changes (built on first use when they were given as a function)."""
        if callable(self._changes):
            self._changes = self._changes()
        return self._changes

    def apply(self) -> int:
        """Send the update; returns how many records were skipped as already counted (by offset).

        When some records are at or below a partition's watermark the script writes nothing; the records
        above it are packed again and sent (the watermark may move meanwhile: at most 16 rounds).
        """
        topics, partitions, offsets = self.topics, self.partitions, self.offsets
        n = len(offsets)
        call = self._first
        floor = self.leaderboard._run(call) if call is not None else None
        if floor is None:  # the usual case: nothing of the batch was counted before
            return 0
        # Some records were counted already: from here on, per record.
        selected = list(range(n))
        chosen = self.changes
        for _ in range(15):
            selected = [
                i
                for i in selected
                if offsets[i] < 0 or offsets[i] > floor.get((topics[i], partitions[i]), -1)
            ]
            if not selected:
                return n
            keep = set(selected)
            chosen = [c for c in chosen if c[0] in keep]
            call = self.leaderboard._pack(topics, partitions, offsets, selected, chosen)
            floor = self.leaderboard._run(call) if call is not None else None
            if floor is None:
                return n - len(selected)
        raise TransientError("the offset watermark kept moving during the update", store="redis")


_MINUTE_NAMES: dict[int, str] = {}


def minute_name(minute: int) -> str:
    """``YYYYMMDDHHMM`` (UTC) of an epoch minute."""
    name = _MINUTE_NAMES.get(minute)
    if name is None:
        if len(_MINUTE_NAMES) > 50_000:
            _MINUTE_NAMES.clear()
        name = time.strftime("%Y%m%d%H%M", time.gmtime(minute * 60))
        _MINUTE_NAMES[minute] = name
    return name


def _offset_ranges(
    topics: Sequence[str], partitions: Sequence[int], offsets: Sequence[int], selected: list[int]
) -> dict[tuple[str, int], tuple[int, int]]:
    """Lowest and highest known offset per topic-partition of the selected records."""
    if selected and len(set(topics)) == 1 and len(set(partitions)) == 1:  # the usual trigger batch
        known = [offsets[i] for i in selected if offsets[i] >= 0]
        return {(topics[0], partitions[0]): (min(known), max(known))} if known else {}
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for i in selected:
        offset = offsets[i]
        if offset < 0:
            continue
        tp = (topics[i], partitions[i])
        span = ranges.get(tp)
        if span is None:
            ranges[tp] = (offset, offset)
        elif offset < span[0]:
            ranges[tp] = (offset, span[1])
        elif offset > span[1]:
            ranges[tp] = (span[0], offset)
    return ranges


class Leaderboard:
    """Writes batches to the minute buckets, precomputes windows and reads the top N."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "",
        consumer_group: str = "streamduck-engagement",
        bucket_ttl_seconds: int = 7200,
        windows: Sequence[int] = (5, 10, 30, 60),
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.consumer_group = consumer_group
        self.bucket_ttl_seconds = bucket_ttl_seconds
        self.windows = tuple(windows)
        self.meta_key = f"{prefix}eng:window:meta"
        # EVALSHA, and after a NOSCRIPT reply SCRIPT LOAD and EVALSHA again (redis-py's Script).
        self._apply = client.register_script(_APPLY_LUA)

    # ----------------------------------------------------------------------------------- keys

    def bucket_key(self, minute: int) -> str:
        return f"{self.prefix}zset:eng:minute:{minute_name(minute)}"

    def seen_key(self, minute: int) -> str:
        """The minute's change log: engagement id -> the version and seconds last counted for it."""
        return f"{self.prefix}eng:seen:{minute_name(minute)}"

    def watermark_key(self, topic: str) -> str:
        return f"{self.prefix}eng:wm:{self.consumer_group}:{topic}"

    @property
    def max_window_minutes(self) -> int:
        """The longest window this leaderboard serves: what the bucket TTL keeps, at most 1440 minutes."""
        return min(MAX_WINDOW_MINUTES, leaderboard_max_window_minutes(self.bucket_ttl_seconds))

    def check_window(self, minutes: int) -> None:
        """Refuse a window the buckets cannot serve in full (:class:`WindowTooLongError`, a ``ValueError``)."""
        if minutes < 1:
            raise ValueError(f"a leaderboard window is at least 1 minute, got {minutes}")
        if minutes > leaderboard_max_window_minutes(self.bucket_ttl_seconds):
            raise WindowTooLongError(minutes, self.bucket_ttl_seconds)
        if minutes > MAX_WINDOW_MINUTES:
            raise ValueError(f"a leaderboard window is at most {MAX_WINDOW_MINUTES} minutes, got {minutes}")

    def window_key(self, minutes: int) -> str:
        return f"{self.prefix}zset:eng:window:{minutes}"

    def watermark(self, topic: str, partition: int) -> int | None:
        with redis_errors():
            value = self.client.hget(self.watermark_key(topic), str(partition))
        return int(value) if value is not None else None

    # ----------------------------------------------------------------------------------- writes

    def apply(
        self,
        topics: Sequence[str],
        partitions: Sequence[int],
        offsets: Sequence[int],
        changes: Sequence[Change],
    ) -> int:
        """Count a batch exactly once. Returns how many records were skipped as already counted by offset.

        ``topics``, ``partitions`` and ``offsets`` describe every record of the batch (dead letters and
        tombstones included: they move the watermark too); ``changes`` refer to records by index. A record
        with an unknown offset (``-1``) is never skipped by offset; its change is still counted at most once.

        Raises :class:`TransientError` when Redis is unavailable; nothing is then written (the script is
        atomic) and the host's retry applies the batch.
        """
        return self.prepare(topics, partitions, offsets, changes).apply()

    def prepare(
        self,
        topics: Sequence[str],
        partitions: Sequence[int],
        offsets: Sequence[int],
        changes: Sequence[Change] | Callable[[], Sequence[Change]],
    ) -> PreparedScores:
        """:meth:`apply` in two steps: pack now (no I/O), send with ``.apply()`` later."""
        chosen = changes() if callable(changes) else changes
        selected = list(range(len(offsets)))
        return PreparedScores(
            self,
            topics,
            partitions,
            offsets,
            chosen,
            self._pack(topics, partitions, offsets, selected, chosen),
        )

    def prepare_columns(
        self,
        topics: Sequence[str],
        partitions: Sequence[int],
        offsets: Sequence[int],
        columns: EngagementColumns,
    ) -> PreparedScores:
        """:meth:`prepare` of a batch's decoded engagement rows (``columns``; its ``index`` refers to
        ``offsets``)."""
        return self.prepare(topics, partitions, offsets, changes_of(columns))

    def _header(self, ranges: dict[tuple[str, int], tuple[int, int]]) -> tuple[list[str], list[str | int]]:
        """Watermark keys and the script's leading arguments (``K``, TTL, ``T``, then 4 per topic-partition)."""
        keys: list[str] = []
        wm_index: dict[str, int] = {}
        header: list[str | int] = []
        for topic, partition in ranges:
            wm_key = self.watermark_key(topic)
            if wm_key not in wm_index:
                keys.append(wm_key)
                wm_index[wm_key] = len(keys)
            lo, hi = ranges[(topic, partition)]
            header.extend((wm_index[wm_key], partition, lo, hi))
        return keys, [len(keys), self.bucket_ttl_seconds, len(ranges), *header]

    def _pack(
        self,
        topics: Sequence[str],
        partitions: Sequence[int],
        offsets: Sequence[int],
        selected: list[int],
        changes: Sequence[Change],
    ) -> _Call | None:
        """Keys and arguments of one script call for the selected records (``None``: nothing to do)."""
        ranges = _offset_ranges(topics, partitions, offsets, selected)
        by_minute: dict[int, list[str | int]] = {}
        for _, minute, member, op, centis, event_id, version in changes:
            values = by_minute.get(minute)
            if values is None:
                values = by_minute[minute] = []
            values.extend((event_id, version, op, centis, member))
        keys, head = self._header(ranges)
        tps = list(ranges)
        packed: list[bytes] = []
        for minute, values in by_minute.items():
            keys.extend((self.bucket_key(minute), self.seen_key(minute)))
            packed.append(_MSGPACK.encode(values))
        if not packed and not tps:
            return None
        return _Call(keys, [*head, *packed], tps)

    def _run(self, call: _Call) -> dict[tuple[str, int], int] | None:
        """One script call; ``None`` when applied, else the watermarks that were in the way."""
        with redis_errors():
            reply = self._apply(keys=call.keys, args=call.args)
        if int(reply[0]) == 1:
            return None
        return {call.tps[int(reply[i]) - 1]: int(reply[i + 1]) for i in range(1, len(reply), 2)}

    # ----------------------------------------------------------------------------------- windows

    def window_buckets(self, minutes: int, now_ms: int) -> list[str]:
        """Bucket keys of the ``minutes`` complete minutes before the minute of ``now_ms``."""
        self.check_window(minutes)
        current = now_ms // 60_000
        return [self.bucket_key(current - i) for i in range(1, minutes + 1)]

    def precompute_windows(self, now_ms: int) -> dict[int, int]:
        """Rebuild every configured window for the minute of ``now_ms`` (one transaction); sizes by window.

        Refuses (:class:`WindowTooLongError`, before writing anything) when a configured window is longer than
        the bucket TTL serves.
        """
        for minutes in self.windows:
            self.check_window(minutes)
        current = str(now_ms // 60_000)
        with redis_errors():
            pipe = self.client.pipeline(transaction=True)
            for minutes in self.windows:
                key = self.window_key(minutes)
                pipe.zunionstore(key, self.window_buckets(minutes, now_ms))
                pipe.expire(key, WINDOW_KEY_TTL_SECONDS)
                pipe.hset(self.meta_key, str(minutes), current)
            replies = pipe.execute()
        return {minutes: int(replies[3 * i]) for i, minutes in enumerate(self.windows)}

    def top(self, minutes: int, n: int, now_ms: int) -> list[tuple[str, float]]:
        """``(content id, engagement seconds)`` of the top ``n`` of the window, best first.

        Raises :class:`WindowTooLongError` for a window longer than the bucket TTL serves, even when a window
        of that length was precomputed.
        """
        self.check_window(minutes)
        if n <= 0:
            return []
        current = now_ms // 60_000
        rows: Any
        with redis_errors():
            if (
                minutes in self.windows
                and self.client.hget(self.meta_key, str(minutes)) == str(current).encode()
            ):
                rows = self.client.zrevrange(self.window_key(minutes), 0, n - 1, withscores=True)
            else:
                key = f"{self.prefix}zset:eng:window:adhoc:{minutes}:{current}"
                pipe = self.client.pipeline(transaction=True)
                pipe.zunionstore(key, self.window_buckets(minutes, now_ms))
                pipe.expire(key, ADHOC_WINDOW_TTL_SECONDS)
                pipe.zrevrange(key, 0, n - 1, withscores=True)
                rows = pipe.execute()[2]
        return [(member.decode(), round(float(score), 2)) for member, score in rows]


def redis_stores(
    settings: Settings, client: redis.Redis, *, cached: bool = False
) -> tuple[Leaderboard, ContentStore]:
    """The leaderboard and the content store of ``settings`` on ``client``: the one place they are built.

    ``cached``: the content store keeps known content in process for ``CONTENT_CACHE_TTL_SECONDS`` (the
    pipeline's enrichment); without it every lookup reads Redis (readers such as the status and the dashboard,
    which must show a change at once).
    """
    leaderboard = Leaderboard(
        client,
        prefix=settings.redis_key_prefix,
        consumer_group=settings.kafka_consumer_group,
        bucket_ttl_seconds=settings.leaderboard_bucket_ttl_seconds,
        windows=settings.leaderboard_windows,
    )
    store = ContentStore(
        client,
        prefix=settings.redis_key_prefix,
        cache_ttl_seconds=settings.content_cache_ttl_seconds if cached else 0,
    )
    return leaderboard, store


def top_n_with_titles(
    leaderboard: Leaderboard, store: ContentStore, *, minutes: int, n: int, now_ms: int | None = None
) -> list[LeaderboardEntry]:
    """The top ``n`` content of the last ``minutes`` complete minutes, with titles from the content store.

    Raises :class:`WindowTooLongError` (its message names ``LEADERBOARD_BUCKET_TTL_SECONDS``) for a window
    longer than the minute buckets live.
    """
    leaderboard.check_window(minutes)
    at = int(time.time() * 1000) if now_ms is None else now_ms
    top = leaderboard.top(minutes, n, at)
    infos = store.get_many([content_id for content_id, _ in top])
    entries: list[LeaderboardEntry] = []
    for rank, (content_id, seconds) in enumerate(top, start=1):
        info = infos.get(content_id)
        entries.append(
            LeaderboardEntry(
                rank=rank,
                content_id=content_id,
                engagement_seconds=seconds,
                title=info.title if info else None,
                content_type=info.content_type if info else None,
            )
        )
    return entries
