"""Real-time leaderboard in Redis: event-time minute buckets, exactly-once updates, precomputed windows.

Keys (``REDIS_KEY_PREFIX`` in front of each; with the default empty prefix the bucket names are the earlier
pipeline's):

- ``zset:eng:minute:<YYYYMMDDHHMM>`` (UTC minute of ``event_ts``): member content id, score engagement
  seconds. Every write sets the TTL ``LEADERBOARD_BUCKET_TTL_SECONDS``, which settings require to exceed the
  longest window plus a minute, so no offered window is cut short.
- ``eng:wm:<consumer group>:<topic>``: hash partition -> highest Kafka offset already counted.
- ``zset:eng:window:<W>``: top list of the last ``W`` complete minutes, rebuilt by the timer when the minute
  turns; ``eng:window:meta`` says which minute each window was built for.
- ``zset:eng:window:adhoc:<W>:<minute>``: a window the timer does not keep, built on first read (60 s TTL).

A batch is pre-aggregated per (minute, content) and applied with one ``EVALSHA``. The script also checks and
moves the per-partition offset watermark in the same atomic step, so a batch that Kafka redelivers (after a
crash, a rebalance or a retry) is never counted twice, and a batch that overlaps one already counted only adds
its new records.

Scores: ``c`` (insert) and ``r`` (snapshot) add the engagement seconds, ``d`` (delete) subtracts them
(the row is in the delete record), ``u`` (update) adds nothing (engagement rows are append-only upstream; the
ClickHouse row is still replaced). Events without a duration (clicks) score 0.

A window of ``W`` minutes at time ``now`` covers the ``W`` complete UTC minutes before the minute of ``now``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared.engagement.content_store import ContentStore
from shared.engagement.redis_io import LuaScript, load_lua, redis_errors
from shared.errors import TransientError

_APPLY = LuaScript(load_lua("leaderboard.lua"))
WINDOW_KEY_TTL_SECONDS = 180
ADHOC_WINDOW_TTL_SECONDS = 60
MAX_WINDOW_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class ScoreItem:
    """One record of a batch as the leaderboard sees it; records without a score still move the watermark."""

    topic: str
    partition: int
    offset: int
    minute: int | None = None  # epoch minute of event_ts
    member: str | None = None
    centis: int = 0  # engagement seconds in hundredths (negative for deletes)


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    rank: int
    content_id: str
    engagement_seconds: float
    title: str | None
    content_type: str | None


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


def _score_text(centis: int) -> str:
    sign = "-" if centis < 0 else ""
    centis = abs(centis)
    return f"{sign}{centis // 100}.{centis % 100:02d}"


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

    # ----------------------------------------------------------------------------------- keys

    def bucket_key(self, minute: int) -> str:
        return f"{self.prefix}zset:eng:minute:{minute_name(minute)}"

    def watermark_key(self, topic: str) -> str:
        return f"{self.prefix}eng:wm:{self.consumer_group}:{topic}"

    def window_key(self, minutes: int) -> str:
        return f"{self.prefix}zset:eng:window:{minutes}"

    def watermark(self, topic: str, partition: int) -> int | None:
        with redis_errors():
            value = self.client.hget(self.watermark_key(topic), str(partition))
        return int(value) if value is not None else None

    # ----------------------------------------------------------------------------------- writes

    def apply(self, items: Sequence[ScoreItem]) -> int:
        """Count a batch exactly once. Returns how many records were skipped as already counted.

        Raises :class:`TransientError` when Redis is unavailable; nothing is then written (the script is
        atomic) and the host's retry applies the batch.
        """
        floor: dict[tuple[str, int], int] = {}
        for _ in range(16):
            selected = [
                it for it in items if it.offset < 0 or it.offset > floor.get((it.topic, it.partition), -1)
            ]
            if not selected:
                return len(items)
            reply = self._apply_once(selected)
            if reply is None:
                return len(items) - len(selected)
            floor.update(reply)
        raise TransientError("the offset watermark kept moving during the update", store="redis")

    def _apply_once(self, items: Sequence[ScoreItem]) -> dict[tuple[str, int], int] | None:
        ranges: dict[tuple[str, int], list[int]] = {}
        totals: dict[tuple[int, str], int] = {}
        for it in items:
            if it.offset >= 0:
                span = ranges.get((it.topic, it.partition))
                if span is None:
                    ranges[(it.topic, it.partition)] = [it.offset, it.offset]
                elif it.offset < span[0]:
                    span[0] = it.offset
                elif it.offset > span[1]:
                    span[1] = it.offset
            if it.centis and it.member is not None and it.minute is not None:
                key = (it.minute, it.member)
                totals[key] = totals.get(key, 0) + it.centis
        wm_index: dict[str, int] = {}
        keys: list[str] = []
        tps = list(ranges)
        header: list[str | int] = []
        for topic, partition in tps:
            wm_key = self.watermark_key(topic)
            if wm_key not in wm_index:
                keys.append(wm_key)
                wm_index[wm_key] = len(keys)
            lo, hi = ranges[(topic, partition)]
            header.extend((wm_index[wm_key], partition, lo, hi))
        k = len(keys)
        bucket_index: dict[int, int] = {}
        triples: list[str | int] = []
        for (minute, member), centis in totals.items():
            if centis == 0:
                continue
            index = bucket_index.get(minute)
            if index is None:
                keys.append(self.bucket_key(minute))
                index = bucket_index[minute] = len(keys) - k
            triples.extend((index, member, _score_text(centis)))
        if not triples and not tps:
            return None
        args: list[str | int] = [k, self.bucket_ttl_seconds, len(tps), *header, *triples]
        reply = _APPLY(self.client, keys, args)
        if int(reply[0]) == 1:
            return None
        return {tps[int(reply[i]) - 1]: int(reply[i + 1]) for i in range(1, len(reply), 2)}

    # ----------------------------------------------------------------------------------- windows

    def window_buckets(self, minutes: int, now_ms: int) -> list[str]:
        """Bucket keys of the ``minutes`` complete minutes before the minute of ``now_ms``."""
        if not 1 <= minutes <= MAX_WINDOW_MINUTES:
            raise ValueError(f"window must be 1..{MAX_WINDOW_MINUTES} minutes, got {minutes}")
        current = now_ms // 60_000
        return [self.bucket_key(current - i) for i in range(1, minutes + 1)]

    def precompute_windows(self, now_ms: int) -> dict[int, int]:
        """Rebuild every configured window for the minute of ``now_ms`` (one transaction); sizes by window."""
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
        """``(content id, engagement seconds)`` of the top ``n`` of the window, best first."""
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


def top_n_with_titles(
    leaderboard: Leaderboard, store: ContentStore, *, minutes: int, n: int, now_ms: int | None = None
) -> list[LeaderboardEntry]:
    """The top ``n`` content of the last ``minutes`` complete minutes, with titles from the content store."""
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
