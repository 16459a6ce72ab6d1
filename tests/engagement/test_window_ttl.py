"""Leaderboard windows never outlive the minute buckets: settings, the top-N reader and the windows timer
refuse a window longer than ``(LEADERBOARD_BUCKET_TTL_SECONDS - 60) // 60`` minutes (real Redis)."""

from __future__ import annotations

import uuid

import pytest
import redis

from shared.engagement.content_store import ContentStore
from shared.engagement.leaderboard import Leaderboard, WindowTooLongError, top_n_with_titles
from shared.errors import ConfigError, TerminalError
from shared.settings import load_settings

from .support import T0_MS, Env


def _board(redis_url: str, ttl: int, windows: tuple[int, ...] = (5,)) -> tuple[Leaderboard, ContentStore]:
    client = redis.Redis.from_url(redis_url)
    prefix = f"test:ttl:{uuid.uuid4().hex[:8]}:"
    board = Leaderboard(client, prefix=prefix, bucket_ttl_seconds=ttl, windows=windows)
    return board, ContentStore(client, prefix=prefix, cache_ttl_seconds=0)


def test_settings_refuse_windows_longer_than_the_bucket_ttl() -> None:
    # the default TTL (7200 s) serves 119 minutes; the 1440 the windows parser allows is refused
    for windows, ttl in (("5,1440", None), ("120", None), ("60,61", "3660")):
        environ = {"LEADERBOARD_WINDOWS": windows}
        if ttl is not None:
            environ["LEADERBOARD_BUCKET_TTL_SECONDS"] = ttl
        with pytest.raises(ConfigError) as info:
            load_settings(environ)
        problem = info.value.problems["LEADERBOARD_BUCKET_TTL_SECONDS"]
        assert "LEADERBOARD_WINDOWS" in problem
        assert "for example LEADERBOARD_BUCKET_TTL_SECONDS=7200" not in problem  # no misleading hint
    assert load_settings({"LEADERBOARD_WINDOWS": "119"}).leaderboard_windows == (119,)
    assert load_settings({"LEADERBOARD_WINDOWS": "60", "LEADERBOARD_BUCKET_TTL_SECONDS": "3660"})
    assert load_settings({"LEADERBOARD_WINDOWS": "1440", "LEADERBOARD_BUCKET_TTL_SECONDS": "86460"})


def test_reader_refuses_a_window_the_buckets_do_not_keep(redis_url: str) -> None:
    board, store = _board(redis_url, 7200)
    assert board.max_window_minutes == 119
    for minutes in (120, 180, 1440):
        with pytest.raises(WindowTooLongError) as info:
            top_n_with_titles(board, store, minutes=minutes, n=5, now_ms=T0_MS)
        assert isinstance(info.value, TerminalError)
        message = str(info.value)
        assert "LEADERBOARD_BUCKET_TTL_SECONDS=7200" in message
        assert "at most 119 minutes" in message
        assert f"LEADERBOARD_BUCKET_TTL_SECONDS={(minutes + 1) * 60}" in message
    assert top_n_with_titles(board, store, minutes=119, n=5, now_ms=T0_MS) == []
    # nothing was built for the refused windows
    assert not list(board.client.scan_iter(f"{board.prefix}*"))


def test_reader_refuses_even_a_precomputed_window(redis_url: str) -> None:
    """A window precomputed under a longer TTL is still refused by a reader whose TTL does not serve it."""
    long_ttl, _ = _board(redis_url, 86_460, windows=(180,))
    long_ttl.precompute_windows(T0_MS)
    short = Leaderboard(long_ttl.client, prefix=long_ttl.prefix, bucket_ttl_seconds=7200, windows=(180,))
    with pytest.raises(WindowTooLongError, match="LEADERBOARD_BUCKET_TTL_SECONDS"):
        short.top(180, 5, T0_MS)
    assert long_ttl.top(180, 5, T0_MS) == []
    long_ttl.client.delete(*long_ttl.client.scan_iter(f"{long_ttl.prefix}*"))


def test_windows_timer_refuses_and_writes_nothing(env: Env) -> None:
    """The registered timer with a window the TTL does not serve (settings bypassed) fails, writing nothing."""
    board = env.pipeline.leaderboard
    board.windows = (5, 150)
    client = env.pipeline.store.client
    with pytest.raises(WindowTooLongError, match="LEADERBOARD_BUCKET_TTL_SECONDS"):
        env.call("engagement_leaderboard_windows")
    assert client.exists(board.meta_key, board.window_key(5), board.window_key(150)) == 0
    board.windows = (5, 119)
    env.call("engagement_leaderboard_windows")
    assert client.hkeys(board.meta_key)  # the windows the TTL serves are built
