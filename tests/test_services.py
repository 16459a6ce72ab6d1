"""One real round trip per local service, so every run proves each service the suite relies on works."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def test_redis_set_get(redis_url: str, unique_name: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"streamduck:test:{unique_name}"
    try:
        assert client.set(key, b"value-1", ex=60)
        assert client.get(key) == b"value-1"
        assert client.delete(key) == 1
        assert client.get(key) is None
    finally:
        client.close()


def test_kafka_produce_consume_commit(kafka_brokers: str, unique_name: str) -> None:
    from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic  # the typed home of confluent_kafka.admin.NewTopic

    topic = f"streamduck_test_{unique_name}"
    admin = AdminClient({"bootstrap.servers": kafka_brokers})
    created = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    created[topic].result(timeout=30)

    delivered: list[Message] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        delivered.append(msg)

    producer = Producer({"bootstrap.servers": kafka_brokers, "enable.idempotence": True})
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(3)]
    for key, value in sent:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert [m.offset() for m in delivered] == [0, 1, 2]

    group = f"streamduck_test_group_{unique_name}"
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_brokers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[tuple[bytes | None, bytes | None]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        last: Message | None = None
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append((msg.key(), msg.value()))
            last = msg
        assert received == sent
        assert last is not None
        consumer.commit(message=last, asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == 3
    finally:
        consumer.close()


def test_azurite_blob_round_trip(azurite_connection_string: str, unique_name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    container = service.get_container_client(f"streamduck-test-{unique_name}")
    try:
        container.create_container()
        payload = b"streamduck \x00\xff blob"
        container.upload_blob("dir/object.bin", payload, overwrite=True)
        assert container.download_blob("dir/object.bin").readall() == payload
        assert [b.name for b in container.list_blobs()] == ["dir/object.bin"]
    finally:
        container.delete_container()
        service.close()


def test_postgres_logical_replication(pg_dsn: str, unique_name: str) -> None:
    import psycopg

    table = f"cdc_{unique_name}"
    decoding_slot = f"slot_td_{unique_name}"
    pgoutput_slot = f"slot_po_{unique_name}"
    publication = f"pub_{unique_name}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
        assert row is not None
        assert row[0] == "logical"
        try:
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL)")
            conn.execute(f"CREATE PUBLICATION {publication} FOR TABLE {table}")
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (decoding_slot,))
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (pgoutput_slot,))

            conn.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'duck')")
            conn.execute(f"UPDATE {table} SET name = 'goose' WHERE id = 1")

            changes = [
                r[0]
                for r in conn.execute(
                    "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)", (decoding_slot,)
                ).fetchall()
            ]
            assert any(f"table public.{table}: INSERT:" in c and "'duck'" in c for c in changes), changes
            assert any(f"table public.{table}: UPDATE:" in c and "'goose'" in c for c in changes), changes

            binary = conn.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes("
                "%s, NULL, NULL, 'proto_version', '1', 'publication_names', %s)",
                (pgoutput_slot, publication),
            ).fetchall()
            # pgoutput messages start with a type byte: B(egin), R(elation), I(nsert), U(pdate), C(ommit).
            kinds = {bytes(r[0][:1]) for r in binary}
            assert {b"B", b"R", b"I", b"U", b"C"} <= kinds, kinds
        finally:
            for slot in (decoding_slot, pgoutput_slot):
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (slot,),
                )
            conn.execute(f"DROP PUBLICATION IF EXISTS {publication}")
            conn.execute(f"DROP TABLE IF EXISTS {table}")
