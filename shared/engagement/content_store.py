"""The content store every function instance shares (Redis), with a short-lived in-process cache in front.

Keys (``REDIS_KEY_PREFIX`` in front of each):

- ``eng:content``          hash: content id -> JSON ``{id, title, version, slug, content_type, length_seconds,
                           publish_ts_ms}``; deleted content is absent.
- ``eng:content:version``  hash: content id -> version (``__source_ts_ms``) of the last applied change, kept
                           after a delete so that a replayed older upsert cannot resurrect it.

Writes go through one Lua script per batch (newest version wins, so replays are harmless). Reads are one
``HMGET`` per batch for the ids the cache does not hold. Only known content is cached (for
``CONTENT_CACHE_TTL_SECONDS``), so content that arrives is seen by the next batch of every instance; an update
of known content is seen after at most the TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources

import msgspec
import redis

from shared.engagement.records import ContentChange, ContentInfo
from shared.engagement.redis_io import redis_errors

_APPLY_LUA = resources.files("shared.engagement").joinpath("content_apply.lua").read_text(encoding="utf-8")
_decode_info = msgspec.json.Decoder(ContentInfo).decode
_encode = msgspec.json.Encoder().encode


class ContentStore:
    """Shared content lookups and versioned upserts/deletes."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "",
        cache_ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.data_key = f"{prefix}eng:content"
        self.version_key = f"{prefix}eng:content:version"
        # EVALSHA, and after a NOSCRIPT reply SCRIPT LOAD and EVALSHA again (redis-py's Script).
        self._apply = client.register_script(_APPLY_LUA)
        self.cache_ttl = cache_ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ContentInfo]] = {}
        self._lock = threading.Lock()
        self.round_trips = 0

    # ----------------------------------------------------------------------------------- reads

    def get_many(self, ids: Iterable[str], *, use_cache: bool = True) -> dict[str, ContentInfo | None]:
        """Content for each id (``None`` when unknown or deleted): cache first, then one ``HMGET``."""
        result: dict[str, ContentInfo | None] = {}
        missing: list[str] = []
        now = self._clock()
        cache = self._cache
        for content_id in dict.fromkeys(ids):
            hit = cache.get(content_id) if use_cache and self.cache_ttl > 0 else None
            if hit is not None and hit[0] > now:
                result[content_id] = hit[1]
            else:
                missing.append(content_id)
        if not missing:
            return result
        with redis_errors():
            values = self.client.hmget(self.data_key, missing)
        self.round_trips += 1
        expires = now + self.cache_ttl
        with self._lock:
            if len(cache) > 200_000:
                cache.clear()
            for content_id, raw in zip(missing, values, strict=True):
                if raw is None:
                    result[content_id] = None
                    cache.pop(content_id, None)
                    continue
                info = _decode_info(raw)
                result[content_id] = info
                if self.cache_ttl > 0:
                    cache[content_id] = (expires, info)
        return result

    def invalidate(self, ids: Iterable[str]) -> None:
        with self._lock:
            for content_id in ids:
                self._cache.pop(content_id, None)

    # ----------------------------------------------------------------------------------- writes

    def apply(self, changes: Sequence[ContentChange]) -> int:
        """Apply upserts and deletes atomically (one script call); returns how many were newer and applied."""
        if not changes:
            return 0
        args: list[str | int | bytes] = []
        for change in changes:
            args.extend(
                (change.content_id, change.version, _encode(change.info) if change.info is not None else b"")
            )
        with redis_errors():
            applied = self._apply(keys=[self.data_key, self.version_key], args=args)
        self.invalidate(c.content_id for c in changes)
        return int(applied)

    def versions(self, ids: Sequence[str]) -> dict[str, int | None]:
        with redis_errors():
            values = self.client.hmget(self.version_key, list(ids))
        return {i: int(v) if v is not None else None for i, v in zip(ids, values, strict=True)}
