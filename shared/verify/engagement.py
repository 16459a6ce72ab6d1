"""Kafka engagement pipeline: send a tagged content row and an engagement, then find them in ClickHouse, in
the Redis leaderboard and on ``TOPIC_OUT``; delete them from ClickHouse and Redis.

Records are the simulator's (``shared.simulate.model``), sent by its :class:`~shared.simulate.targets.KafkaTarget`
(Debezium-flattened, murmur2 keyed like Debezium; missing topics are created as ``simulate`` does).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared.errors import TransientError
from shared.settings import Settings
from shared.verify.marks import DURATION_MS, RunMarks
from shared.verify.steps import Failed, Found, Outcome, Pending

POLL_SECONDS = 0.5
POLL_BUDGET_SECONDS = 5.0


def kafka_target(settings: Settings) -> str:
    return f"{settings.kafka_brokers}: {settings.topic_content}, {settings.topic_engage}"


def clickhouse_target(settings: Settings) -> str:
    from shared.engagement.clickhouse import ENRICHED_TABLE

    table = f"{settings.clickhouse_database}.{ENRICHED_TABLE}"
    if settings.clickhouse_host:
        return f"{table} (ClickHouse {settings.clickhouse_host}:{settings.clickhouse_port})"
    return f"{table} (chDB {settings.clickhouse_chdb_path})"


def redis_target(settings: Settings, marks: RunMarks) -> str:
    from urllib.parse import urlsplit

    from shared.engagement.leaderboard import minute_name

    url = urlsplit(settings.redis_url.get_secret_value())
    where = f"{url.hostname}:{url.port or 6379}"
    return f"{settings.redis_key_prefix}zset:eng:minute:{minute_name(marks.event_minute)} ({where})"


def enriched_target(settings: Settings) -> str:
    return f"{settings.kafka_brokers}: {settings.topic_out}"


# --------------------------------------------------------------------------------------- send


class EnrichedWatch:
    """Reads ``TOPIC_OUT`` from the offsets it had before the send, with a consumer group of its own."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        from confluent_kafka import Consumer

        from shared.kafkaconfig import client_config

        self.topic = settings.topic_out
        self.group = f"streamduck-{run_id}"
        self.consumer: Any = Consumer(
            {
                **client_config(settings),
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.seen: list[dict[str, Any]] = []

    def start(self, timeout: float) -> None:
        """Assign every partition of ``TOPIC_OUT`` at its current end (call before sending).

        A topic just created may take a moment to appear in the metadata and to elect its leaders: retriable
        broker errors are retried for ``timeout`` seconds.
        """
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

        from shared.engagement.kafka_io import kafka_errors

        # What brokers answer while a topic just created elects its partition leaders (not flagged retriable).
        not_ready = {
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.NOT_LEADER_FOR_PARTITION,
        }
        deadline = time.monotonic() + timeout
        with kafka_errors():
            while True:
                try:
                    parts = self._ends(timeout)
                    break
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if not isinstance(error, KafkaError) or not (
                        error.retriable() or error.code() in not_ready
                    ):
                        raise
                    if time.monotonic() >= deadline:
                        raise
                time.sleep(0.2)
            self.consumer.assign(
                [TopicPartition(self.topic, p, high if high >= 0 else OFFSET_BEGINNING) for p, high in parts]
            )

    def _ends(self, timeout: float) -> list[tuple[int, int]]:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        metadata = self.consumer.list_topics(self.topic, timeout=timeout)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaException(
                KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {self.topic} not ready", retriable=True)
            )
        ends = []
        for p in sorted(topic.partitions):
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=timeout, cached=False
            )
            ends.append((p, high))
        return ends

    def poll(self, wanted: str, seconds: float) -> None:
        """Read what arrived (for up to ``POLL_BUDGET_SECONDS`` on a busy topic); keep messages of event ``wanted``."""
        from shared.engagement.kafka_io import kafka_errors

        budget = time.monotonic() + POLL_BUDGET_SECONDS
        with kafka_errors():
            while True:
                messages = self.consumer.consume(num_messages=1000, timeout=seconds)
                for message in messages:
                    if message.error() is not None:
                        raise TransientError(str(message.error()), store="kafka")
                    headers = dict(message.headers() or [])
                    if (headers.get("event_id") or b"").decode("utf-8", "replace") != wanted:
                        continue
                    try:
                        value = json.loads(message.value() or b"null")
                    except ValueError:
                        value = None  # not an enriched event: reported as not enriched below
                    self.seen.append({"value": value, "partition": message.partition()})
                if len(messages) < 1000 or time.monotonic() >= budget:
                    return

    def check(self, marks: RunMarks) -> Outcome:
        wanted = str(marks.engagement.id)
        self.poll(wanted, POLL_SECONDS)
        if not self.seen:
            return Pending("no enriched message with this event id yet")
        known = [m for m in self.seen if isinstance(m["value"], dict) and m["value"].get("content_known")]
        if not known:
            return Pending(
                f"{len(self.seen)} message(s) with this event id, none enriched with the content yet"
            )
        value = known[-1]["value"]
        if value.get("title") != marks.content.title:
            return Failed(f"enriched with title {value.get('title')!r}, expected {marks.content.title!r}")
        return Found(
            f"event {wanted} enriched with {value.get('title')!r} (partition {known[-1]['partition']})"
        )

    def close(self) -> None:
        self.consumer.close()


def send(
    settings: Settings, marks: RunMarks, watch: EnrichedWatch, *, timeout: float, content_wait: float
) -> str:
    """Send the run's content row, then its engagement; returns a detail line. Raises StreamDuckError.

    The engagement is sent once the content store holds the content (at most ``content_wait`` seconds): the two
    topics are consumed independently, and an engagement enriched before its content arrived is completed only
    when the content change finds its stored row, or by the upkeep timer's sweep minutes later.
    """
    from shared.simulate.targets import KafkaTarget

    target = KafkaTarget(settings)  # creates missing topics (TOPIC_OUT too), like `streamduck simulate`
    try:
        watch.start(timeout)
        target.send_content([marks.content])
        unconfirmed = _content_unconfirmed(settings, marks, content_wait)
        target.send_events([marks.engagement])
    finally:
        target.close()
    note = f" (sent without seeing the content stored: {unconfirmed})" if unconfirmed else ""
    return f"content {marks.content.id}, engagement {marks.engagement.id}{note}"


def _content_unconfirmed(settings: Settings, marks: RunMarks, seconds: float) -> str | None:
    """Wait until the content store holds the test content: ``None`` then, else why not after ``seconds``."""
    from shared.engagement.leaderboard import redis_stores
    from shared.verify.steps import error_text

    deadline = time.monotonic() + seconds
    reason = f"not in the content store within {seconds:g}s"
    while True:
        try:
            _, store = redis_stores(settings, _redis(settings))
            if store.get_many([marks.content.id], use_cache=False).get(marks.content.id) is not None:
                return None
        except TransientError as exc:  # kept for the detail; the leaderboard step reports Redis itself
            reason = error_text(exc)
        if time.monotonic() >= deadline:
            return reason
        time.sleep(0.2)


# --------------------------------------------------------------------------------------- ClickHouse


def chdb_held(path: Path) -> bool:
    """Whether another process runs the embedded engine in ``path`` (it locks ``status``; one per folder)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: let the engine itself say so
        return False
    import os

    try:
        fd = os.open(path / "status", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


_OPENED: set[Path] = set()


class ChdbInUse(TransientError):
    """The embedded chDB folder is held by another process (chDB allows one engine per folder)."""


def _warehouse(settings: Settings) -> Any:
    from shared.engagement.clickhouse import Warehouse

    if not settings.clickhouse_host:
        path = settings.clickhouse_chdb_path.resolve()
        if path not in _OPENED and chdb_held(path):
            raise ChdbInUse(
                "the embedded chDB folder is held by another process (a running `streamduck run`?); "
                "it can be read once that process stops (or set CLICKHOUSE_HOST)",
                store=f"chDB {settings.clickhouse_chdb_path}",
            )
        warehouse = Warehouse.from_settings(settings)
        _OPENED.add(path)  # this process runs the engine now: its own lock is no sign of another process
        return warehouse
    return Warehouse.from_settings(settings)


def _has_table(warehouse: Any, table: str) -> bool:
    from shared.sqlident import quote_ident

    rows = warehouse.query(f"EXISTS TABLE {{db}}.{quote_ident(table)}")
    return bool(rows) and bool(int(rows[0][0]))


def find_clickhouse_row(settings: Settings, marks: RunMarks) -> Outcome:
    """The test engagement's current row (``FINAL``), enriched with the test content."""
    from shared.engagement.clickhouse import ENRICHED_TABLE
    from shared.sqlident import quote_ident

    if not settings.clickhouse_host and not settings.clickhouse_chdb_path.is_dir():
        return Pending("no data yet (the chDB folder does not exist)")
    warehouse = _warehouse(settings)
    if not _has_table(warehouse, ENRICHED_TABLE):
        return Pending("no data yet (the table does not exist)")
    rows = warehouse.query(
        "SELECT content_known, title, toString(engagement_seconds) "
        f"FROM {{db}}.{quote_ident(ENRICHED_TABLE)} FINAL WHERE id = {{id:Int64}}",
        {"id": marks.engagement.id},
    )
    if not rows:
        return Pending("no row with this id yet")
    known, title, seconds = rows[0]
    if not known:
        return Pending("row stored without its content so far")
    if title != marks.content.title or Decimal(str(seconds)) != Decimal(DURATION_MS) / 1000:
        return Failed(
            f"row has title {title!r} and {seconds} engagement seconds; expected "
            f"{marks.content.title!r} and {marks.engagement_seconds}"
        )
    return Found(f"id {marks.engagement.id}, {seconds} s, {title!r}")


def delete_clickhouse(settings: Settings, marks: RunMarks) -> dict[str, int]:
    """Delete the run's engagement row(s) and content row(s) (a mutation, waited for)."""
    deleted = {"engagement_rows": 0, "content_rows": 0}
    if not settings.clickhouse_host and not settings.clickhouse_chdb_path.is_dir():
        return deleted
    from shared.engagement.clickhouse import CONTENT_TABLE, ENRICHED_TABLE, clickhouse_errors
    from shared.sqlident import quote_ident

    warehouse = _warehouse(settings)
    for table, key, where, params in (
        (ENRICHED_TABLE, "engagement_rows", "id = {id:Int64}", {"id": marks.engagement.id}),
        (CONTENT_TABLE, "content_rows", "id = {cid:UUID}", {"cid": marks.content.id}),
    ):
        if not _has_table(warehouse, table):
            continue
        name = f"{quote_ident(settings.clickhouse_database)}.{quote_ident(table)}"
        count = warehouse.query(f"SELECT count() FROM {name} WHERE {where}", params)
        deleted[key] = int(count[0][0]) if count else 0
        if deleted[key]:
            with clickhouse_errors():
                warehouse.client.command(
                    f"ALTER TABLE {name} DELETE WHERE {where}",
                    parameters=params,
                    settings={"mutations_sync": 2},
                )
    return deleted


# --------------------------------------------------------------------------------------- Redis


def _redis(settings: Settings) -> Any:
    from shared.engagement.redis_io import redis_client

    return redis_client(settings.redis_url.get_secret_value(), entra=settings.redis_entra_auth)


def find_score(settings: Settings, marks: RunMarks) -> Outcome:
    """The test content's score in the minute bucket of the test engagement's event time."""
    from shared.engagement.leaderboard import redis_stores
    from shared.engagement.redis_io import redis_errors

    board, _ = redis_stores(settings, _redis(settings))
    key = board.bucket_key(marks.event_minute)
    with redis_errors():
        score = board.client.zscore(key, marks.content.id)
    if score is None:
        return Pending("no score for the test content yet")
    if abs(float(score) - marks.engagement_seconds) >= 0.005:
        return Failed(f"score {float(score):.2f}, expected {marks.engagement_seconds:.2f}")
    return Found(f"{marks.content.id} scored {float(score):.2f}")


def delete_redis(settings: Settings, marks: RunMarks) -> dict[str, int]:
    """Remove the test content from its minute bucket, the precomputed windows and the content store.

    The offset watermarks stay: they belong to the real records around the test ones.
    """
    from shared.engagement.leaderboard import redis_stores
    from shared.engagement.redis_io import redis_errors

    board, store = redis_stores(settings, _redis(settings))
    keys = [board.bucket_key(marks.event_minute), *(board.window_key(w) for w in board.windows)]
    with redis_errors():
        pipe = board.client.pipeline(transaction=True)
        for key in keys:
            pipe.zrem(key, marks.content.id)
        pipe.hdel(store.data_key, marks.content.id)
        pipe.hdel(store.version_key, marks.content.id)
        replies = pipe.execute()
    return {"leaderboard_members": sum(int(r) for r in replies[: len(keys)]), "content": int(replies[-2])}
