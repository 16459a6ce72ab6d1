"""Fixtures of the engagement tests: real Kafka and Redis (root fixtures, which fail when missing) and the
embedded chDB engine of the test process (root fixture), with a fresh database, Redis key prefix and topics
per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import load_settings

from .support import Env


@pytest.fixture
def env(redis_url: str, kafka_brokers: str, unique_name: str, chdb_path: Path) -> Env:
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"test:{unique_name}:",
            "KAFKA_BROKERS": kafka_brokers,
            "CLICKHOUSE_CHDB_PATH": str(chdb_path),
            "CLICKHOUSE_DATABASE": f"eng_{unique_name}",
            "TOPIC_CONTENT": f"content.flat.{unique_name}",
            "TOPIC_ENGAGE": f"engagement_events.flat.{unique_name}",
            "TOPIC_OUT": f"engagement_enriched.{unique_name}",
            "LEADERBOARD_WINDOWS": "1,5,10,30,60",
            "CONTENT_CACHE_TTL_SECONDS": "0",
        }
    )
    return Env(settings=settings, brokers=kafka_brokers)
