"""Where simulated traffic goes. Each ``send_*`` call is one commit / flushed produce: when it returns, the
rows or messages are durable (a Postgres commit, Kafka acks, an Event Hubs batch accepted)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import ConfigError, TerminalError, TransientError, UnavailableError, redact_url
from shared.settings import Settings
from shared.simulate.model import Content, Engagement, debezium_content, debezium_engagement

if TYPE_CHECKING:
    from azure.eventhub import EventHubProducerClient

# The tables Debezium streams are defined once, in infra/local/postgres/init.sql (docker-compose runs it on a
# new database; it also creates Debezium's role and publication, which need a superuser). The package ships a
# copy of that file, shared/simulate/init.sql, kept identical by tests/test_package_data.py, so an installed
# `streamduck simulate` has it too; the simulator runs only its CREATE TABLE statements.
_CREATE_TABLE_RE = re.compile(r"^CREATE TABLE IF NOT EXISTS .*?^\);$", re.MULTILINE | re.DOTALL)


def _create_tables(script: str) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statements of ``script``, in order."""
    statements = _CREATE_TABLE_RE.findall(script)
    if not statements:
        raise TerminalError("shared/simulate/init.sql has no CREATE TABLE IF NOT EXISTS statement")
    return "\n\n".join(statements) + "\n"


SCHEMA_SQL = _create_tables(
    resources.files("shared.simulate").joinpath("init.sql").read_text(encoding="utf-8")
)


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
            raise UnavailableError("postgres", _dsn_host(dsn), exc, variable="PG_DSN") from exc
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


def create_topics(admin: Any, topics: Sequence[str], *, partitions: int, timeout: float = 30) -> None:
    """Create ``topics`` with ``admin`` (a confluent-kafka ``AdminClient``); a topic that exists already is fine.

    "Exists" is the broker's ``TOPIC_ALREADY_EXISTS`` error code (another simulator or the broker's
    auto-creation got there first). Any other refusal raises: :class:`TransientError` when the broker calls it
    retriable, else :class:`TerminalError` (an invalid name, a policy violation, too few brokers...).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.cimpl import NewTopic

    if not topics:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in topics]
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError):
                raise TerminalError(f"cannot create topic {topic}: {exc}") from exc
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error.retriable():
                raise TransientError(f"cannot create topic {topic}: {error.str()}", store="kafka") from exc
            raise TerminalError(f"cannot create topic {topic}: {error.str()}") from exc
        except TimeoutError as exc:
            raise TransientError(
                f"cannot create topic {topic}: no answer in {timeout:g}s", store="kafka"
            ) from exc


class KafkaTarget:
    """Debezium-flattened messages straight to ``TOPIC_CONTENT`` / ``TOPIC_ENGAGE``.

    Missing topics (these two and ``TOPIC_OUT``) are created with three partitions.
    """

    name = "kafka"

    def __init__(self, settings: Settings, *, partitions: int = 3) -> None:
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import AdminClient

        from shared.kafkaconfig import client_config

        conf = client_config(settings)
        self.topic_content = settings.topic_content
        self.topic_engage = settings.topic_engage
        admin = AdminClient(conf)
        try:
            existing = admin.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise UnavailableError("kafka", settings.kafka_brokers, exc, variable="KAFKA_BROKERS") from exc
        # The enriched output topic too: the pipeline's output binding needs it before the first batch.
        wanted = (self.topic_content, self.topic_engage, settings.topic_out)
        create_topics(admin, [t for t in wanted if t not in existing], partitions=partitions)
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


def eventhub_producer(settings: Settings, hub: str, **options: Any) -> EventHubProducerClient:
    """A producer client for ``hub``: ``EVENTHUB_CONNECTION_STRING`` when set (emulator, SAS), else Entra ID
    (``DefaultAzureCredential``) on ``EVENTHUB_NAMESPACE``. ``options`` go to the client (``retry_total``...).

    Raises :class:`ConfigError` when neither is set.
    """
    from azure.eventhub import EventHubProducerClient

    if settings.eventhub_connection_string is not None:
        return EventHubProducerClient.from_connection_string(
            settings.eventhub_connection_string.get_secret_value(), eventhub_name=hub, **options
        )
    if settings.eventhub_namespace:
        from azure.identity import DefaultAzureCredential

        return EventHubProducerClient(settings.eventhub_namespace, hub, DefaultAzureCredential(), **options)
    raise ConfigError(
        {
            "EVENTHUB_CONNECTION_STRING": "missing: set it, or EVENTHUB_NAMESPACE for Entra ID, "
            "to send to Event Hubs"
        }
    )


class EventHubsTarget:
    """JSON engagement events to one Event Hub: one batch per content id (the partition key), split by size.

    Each event's body is :meth:`Engagement.row` as JSON, with properties ``event_type`` and ``source``.
    SDK errors become one-line StreamDuck errors (:func:`eventhub_errors`).
    """

    name = "eventhubs"
    SOURCE = "streamduck-simulate"

    def __init__(self, settings: Settings, hub: str, *, client: EventHubProducerClient | None = None) -> None:
        self.hub = hub
        self.client = client if client is not None else eventhub_producer(settings, hub)

    def existing_content(self) -> list[str]:
        return []

    def send_content(self, items: Sequence[Content]) -> None:
        return None  # the Event Hubs pipeline stores raw events; content lives in the CDC path

    def send_events(self, items: Sequence[Engagement]) -> None:
        from azure.eventhub import EventData

        by_key: dict[str, list[Engagement]] = {}
        for e in items:
            by_key.setdefault(e.content_id, []).append(e)
        with eventhub_errors(self.hub):
            for key, group in by_key.items():
                batch = self.client.create_batch(partition_key=key)
                for e in group:
                    data = EventData(json.dumps(e.row()))
                    data.properties = {"event_type": e.event_type, "source": self.SOURCE}
                    try:
                        batch.add(data)
                    except ValueError:  # the batch is full: send it, start the next one with this event
                        if len(batch) == 0:
                            raise TerminalError(
                                f"event {e.id} does not fit in an empty batch of Event Hub {self.hub} "
                                f"({batch.max_size_in_bytes} bytes)"
                            ) from None
                        self.client.send_batch(batch)
                        batch = self.client.create_batch(partition_key=key)
                        batch.add(data)
                self.client.send_batch(batch)

    def close(self) -> None:
        with eventhub_errors(self.hub):
            self.client.close()


@contextmanager
def eventhub_errors(hub: str) -> Iterator[None]:
    """azure-eventhub and credential errors as one-line StreamDuck errors (the SDK's messages span lines)."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.eventhub.exceptions import (
        AuthenticationError,
        ConnectError,
        ConnectionLostError,
        EventHubError,
        OperationTimeoutError,
    )

    try:
        yield
    except (AuthenticationError, ClientAuthenticationError) as exc:
        raise ConfigError(
            {"EVENTHUB_CONNECTION_STRING": f"Event Hub {hub} refused the credentials: {_first_line(exc)}"}
        ) from exc
    except (ConnectError, ConnectionLostError, OperationTimeoutError) as exc:
        raise TransientError(
            f"cannot send to Event Hub {hub}: {type(exc).__name__}: {_first_line(exc)}", store="eventhubs"
        ) from exc
    except EventHubError as exc:
        raise TerminalError(f"Event Hub {hub}: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _dsn_host(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return redact_url(dsn)
