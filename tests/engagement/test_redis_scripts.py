"""The stores' Lua scripts (redis-py ``register_script``): EVALSHA, one round trip per batch, and loaded again
when the server has forgotten them (NOSCRIPT), with real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import redis

from shared.engagement.batch import RawRecord
from shared.engagement.content_store import ContentStore
from shared.engagement.records import ContentChange, ContentInfo

T0_MS = 1_772_409_480_000  # 2026-03-01 23:58:00 UTC


def _calls(client: redis.Redis, command: str) -> int:
    """How often the server ran ``command`` (``evalsha``, ``script|load``), by its command statistics."""
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _change(version: int) -> ContentChange:
    content_id = str(uuid.uuid4())
    record = RawRecord(
        topic="content", partition=0, offset=version, key=None, value=b"{}", timestamp_ms=T0_MS
    )
    info = ContentInfo(id=content_id, title=f"title {version}", version=version)
    return ContentChange(record=record, content_id=content_id, version=version, info=info)


def test_a_batch_is_one_evalsha_and_a_flushed_script_is_loaded_again(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = ContentStore(client, prefix=f"test:scripts:{uuid.uuid4().hex[:8]}:", cache_ttl_seconds=0)
    assert store.apply([_change(1)]) == 1  # loads the script if this server does not know it yet

    evalsha, load = _calls(client, "evalsha"), _calls(client, "script|load")
    assert store.apply([_change(2), _change(3)]) == 2
    assert (_calls(client, "evalsha") - evalsha, _calls(client, "script|load") - load) == (1, 0)

    client.script_flush()  # a restarted or failed-over server knows no scripts
    assert store.apply([_change(4)]) == 1
    assert _calls(client, "script|load") - load == 1  # after the NOSCRIPT reply
    evalsha, load = _calls(client, "evalsha"), _calls(client, "script|load")
    assert store.apply([_change(5)]) == 1
    assert (_calls(client, "evalsha") - evalsha, _calls(client, "script|load") - load) == (1, 0)


def test_the_script_runs_inside_a_pipeline(redis_url: str) -> None:
    """redis-py loads a pipeline's scripts before it sends the pipeline, so a batch can share a round trip."""
    client = redis.Redis.from_url(redis_url)
    store = ContentStore(client, prefix=f"test:scripts:{uuid.uuid4().hex[:8]}:", cache_ttl_seconds=0)
    client.script_flush()
    change = _change(7)
    with client.pipeline(transaction=True) as pipe:
        store._apply(
            keys=[store.data_key, store.version_key], args=[change.content_id, 7, b"{}"], client=pipe
        )
        pipe.hget(store.version_key, change.content_id)
        applied, version = pipe.execute()
    assert (int(applied), int(version)) == (1, 7)
