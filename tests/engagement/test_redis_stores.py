"""One factory builds the leaderboard and the content store from the settings (pipeline, status, dashboard)."""

from __future__ import annotations

import redis

from shared.engagement.leaderboard import redis_stores
from shared.settings import load_settings


def test_redis_stores_follow_the_settings() -> None:
    settings = load_settings(
        {
            "REDIS_KEY_PREFIX": "p:",
            "KAFKA_CONSUMER_GROUP": "group-7",
            "LEADERBOARD_BUCKET_TTL_SECONDS": "3660",
            "LEADERBOARD_WINDOWS": "5,15",
            "CONTENT_CACHE_TTL_SECONDS": "7",
        }
    )
    client = redis.Redis()  # no connection is made until a command runs
    board, store = redis_stores(settings, client)
    assert (board.client, store.client) == (client, client)
    assert (board.prefix, board.consumer_group, board.bucket_ttl_seconds, board.windows) == (
        "p:",
        "group-7",
        3660,
        (5, 15),
    )
    assert (store.data_key, store.version_key, store.cache_ttl) == (
        "p:eng:content",
        "p:eng:content:version",
        0,
    )
    _, cached = redis_stores(settings, client, cached=True)
    assert cached.cache_ttl == 7
