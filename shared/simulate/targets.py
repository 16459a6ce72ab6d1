"""Where simulated traffic goes. Each ``send_*`` call is one commit / flushed produce: when it returns, the
rows or messages are durable (a Postgres commit, Kafka acks, an Event Hubs batch accepted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from shared.errors import ConfigError, TransientError
from shared.settings import Settings
from shared.simulate.model import Content, Engagement, debezium_content, debezium_engagement

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS content (
  id UUID PRIMARY KEY,
  slug TEXT UNIQUE NOT NULL,
  title TEXT NOT NULL,
  content_type TEXT CHECK (content_type IN ('podcast','newsletter','video')),
  length_seconds INTEGER,
  publish_ts TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS engagement_events (
  id BIGSERIAL PRIMARY KEY,
  content_id UUID REFERENCES content(id),
  user_id UUID,
  event_type TEXT CHECK (event_type IN ('play','pause','finish','click')),
  event_ts TIMESTAMPTZ NOT NULL,
  duration_ms INTEGER,
  device TEXT,
  raw_payload JSONB
);
"""


class Target(Protocol):
    name: str

    def existing_content(self) -> list[str]: ...
    def send_content(self, items: Sequence[Content]) -> None: ...
    def send_events(self, items: Sequence[Engagement]) -> None: ...
    def close(self) -> None: ...


class PostgresTarget:
    """Rows in ``content`` and ``engagement_events`` (Debezium turns them into the CDC topics)."""

    name = "postgres"

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is in requirements-dev.txt
            raise ConfigError({"--target": "postgres needs psycopg: pip install 'psycopg[binary]'"}) from exc
        try:
            # autocommit: each transaction() block below is its own commit (no enclosing implicit transaction)
            self.conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
        except psycopg.Error as exc:
            raise ConfigError({"PG_DSN": f"cannot connect: {str(exc).strip().splitlines()[0]}"}) from exc
        with self.conn.transaction():
            self.conn.execute(SCHEMA_SQL)

    def existing_content(self) -> list[str]:
        rows = self.conn.execute("SELECT id::text FROM content ORDER BY slug").fetchall()
        return [str(r[0]) for r in rows]

    def send_content(self, items: Sequence[Content]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO content (id, slug, title, content_type, length_seconds, publish_ts) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                [(c.id, c.slug, c.title, c.content_type, c.length_seconds, c.publish_ts) for c in items],
            )

    def send_events(self, items: Sequence[Engagement]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO engagement_events "
                "(content_id, user_id, event_type, event_ts, duration_ms, device, raw_payload) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        e.content_id,
                        e.user_id,
                        e.event_type,
                        e.event_ts,
                        e.duration_ms,
                        e.device,
                        None if e.raw_payload is None else json.dumps(e.raw_payload),
                    )
                    for e in items
                ],
            )

    def close(self) -> None:
        self.conn.close()


class KafkaTarget:
    """Debezium-flattened messages straight to ``TOPIC_CONTENT`` / ``TOPIC_ENGAGE``.

    Missing topics (these two and ``TOPIC_OUT``) are created with three partitions.
    """

    name = "kafka"

    def __init__(self, settings: Settings, *, partitions: int = 3) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        from shared.devhost.kafka import client_config

        conf = client_config(settings)
        self.topic_content = settings.topic_content
        self.topic_engage = settings.topic_engage
        admin = AdminClient(conf)
        try:
            existing = admin.list_topics(timeout=10).topics
        except Exception as exc:
            raise ConfigError({"KAFKA_BROKERS": f"cannot reach {settings.kafka_brokers}: {exc}"}) from exc
        # The enriched output topic too: the pipeline's output binding needs it before the first batch.
        wanted = (self.topic_content, self.topic_engage, settings.topic_out)
        missing = [t for t in wanted if t not in existing]
        if missing:
            futures = admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing]
            )
            for topic, future in futures.items():
                try:
                    future.result(timeout=30)
                except Exception as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise TransientError(f"cannot create topic {topic}: {exc}", store="kafka") from exc
        # murmur2 keyed partitioning: the same partition a Java producer (Debezium) picks for a key.
        self.producer = Producer(
            {**conf, "enable.idempotence": True, "linger.ms": 5, "partitioner": "murmur2_random"}
        )
        self._errors: list[str] = []

    def existing_content(self) -> list[str]:
        return []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _send(self, topic: str, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        for key, value in pairs:
            while True:
                try:
                    self.producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        remaining = self.producer.flush(60)
        if remaining or self._errors:
            raise TransientError(f"{remaining} message(s) undelivered: {self._errors[:3]}", store="kafka")

    def send_content(self, items: Sequence[Content]) -> None:
        self._send(self.topic_content, [debezium_content(c) for c in items])

    def send_events(self, items: Sequence[Engagement]) -> None:
        self._send(self.topic_engage, [debezium_engagement(e) for e in items])

    def close(self) -> None:
        self.producer.flush(30)


class EventHubsTarget:
    """JSON engagement events to one Event Hub (partition key: content id)."""

    name = "eventhubs"

    def __init__(self, settings: Settings, hub: str) -> None:
        from azure.eventhub import EventHubProducerClient

        if settings.eventhub_connection_string is not None:
            self.client = EventHubProducerClient.from_connection_string(
                settings.eventhub_connection_string.get_secret_value(), eventhub_name=hub
            )
        elif settings.eventhub_namespace:
            from azure.identity import DefaultAzureCredential

            self.client = EventHubProducerClient(settings.eventhub_namespace, hub, DefaultAzureCredential())
        else:
            raise ConfigError(
                {
                    "EVENTHUB_CONNECTION_STRING": "missing: set it, or EVENTHUB_NAMESPACE for Entra ID, "
                    "to simulate to Event Hubs"
                }
            )
        self.hub = hub

    def existing_content(self) -> list[str]:
        return []

    def send_content(self, items: Sequence[Content]) -> None:
        return None  # the Event Hubs pipeline stores raw events; content lives in the CDC path

    def send_events(self, items: Sequence[Engagement]) -> None:
        from azure.eventhub import EventData

        by_key: dict[str, list[Engagement]] = {}
        for e in items:
            by_key.setdefault(e.content_id, []).append(e)
        for key, group in by_key.items():
            batch = self.client.create_batch(partition_key=key)
            for e in group:
                data = EventData(json.dumps(e.row()))
                data.properties = {"event_type": e.event_type, "source": "streamduck-simulate"}
                try:
                    batch.add(data)
                except ValueError:
                    self.client.send_batch(batch)
                    batch = self.client.create_batch(partition_key=key)
                    batch.add(data)
            self.client.send_batch(batch)

    def close(self) -> None:
        self.client.close()
