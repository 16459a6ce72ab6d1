"""``streamduck run`` emits the functions' metrics: on a Prometheus endpoint (``--metrics-port``), to an OTLP/HTTP
backend (``OTEL_EXPORTER_OTLP_ENDPOINT``) and in its ``--json`` summary, with the values the batches imply.

The real function app's ``engagement_enrich`` runs against a real broker, Redis and embedded ClickHouse; the
topic holds 5 events of content nobody published yet and 1 record that is not JSON.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the typed home of confluent_kafka.admin.NewTopic
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from shared.telemetry import catalog
from tests.engagement.support import T0_MS, dumps, engagement_row
from tests.support.cli import ROOT, base_env, command, run_cli, wait_for
from tests.telemetry.receiver import receiver

UNKNOWN, MALFORMED = 5, 1


@pytest.fixture
def env(tmp_path: Path, kafka_brokers: str, redis_url: str, unique_name: str) -> dict[str, str]:
    env = base_env(
        tmp_path,
        KAFKA_BROKERS=kafka_brokers,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"{unique_name}:",
        TOPIC_CONTENT=f"{unique_name}-content",
        TOPIC_ENGAGE=f"{unique_name}-engage",
        TOPIC_OUT=f"{unique_name}-out",
        KAFKA_CONSUMER_GROUP=f"{unique_name}-group",
    )
    admin = AdminClient({"bootstrap.servers": kafka_brokers})
    topics = [NewTopic(env[t], num_partitions=1, replication_factor=1) for t in ("TOPIC_ENGAGE", "TOPIC_OUT")]
    for future in admin.create_topics(topics).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_brokers})
    content = str(uuid.uuid4())
    for i in range(UNKNOWN):
        producer.produce(env["TOPIC_ENGAGE"], dumps(engagement_row(i + 1, content, ts_ms=T0_MS)), key=content)
    producer.produce(env["TOPIC_ENGAGE"], b"{not json", key=content)
    assert producer.flush(30) == 0
    return env


RUN = ("run", "--app-dir", str(ROOT), "-f", "engagement_enrich", "--no-live", "--json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the Prometheus sample ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2)))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match.group(3))
    return None


def test_metrics_port_serves_the_counters_for_prometheus(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    out, log = (tmp_path / "stdout.json").open("wb"), (tmp_path / "stderr.log").open("wb")
    host = subprocess.Popen(
        command(*RUN, "--metrics-port", str(port)),
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=log,
    )
    topic = env["TOPIC_ENGAGE"]
    where = {"streamduck_topic": topic, "streamduck_partition": "0"}
    try:
        wait_for(
            lambda: sample(scrape(port), "streamduck_engagement_records_received_total", **where) == 6,
            timeout=120,
            what="the received counter on /metrics",
        )
        text = scrape(port)
    finally:
        host.send_signal(signal.SIGTERM)
        code = host.wait(timeout=60)
    assert code == 0, (tmp_path / "stderr.log").read_text()[-3000:]
    assert sample(text, "streamduck_engagement_records_unknown_content_total", **where) == UNKNOWN
    assert sample(text, "streamduck_engagement_records_enriched_total", **where) is None  # no known content
    assert (
        sample(text, "streamduck_engagement_dead_letters_total", **where, streamduck_reason="invalid_json")
        == MALFORMED
    )
    assert sample(text, "streamduck_engagement_lag_seconds_count", **where) == 1
    assert sample(text, "streamduck_engagement_batch_duration_seconds_count", streamduck_topic=topic) == 1

    summary = json.loads((tmp_path / "stdout.json").read_text())
    assert summary["dead_letters"] == MALFORMED
    (partition,) = summary["partitions"]
    assert partition["function"] == "engagement_enrich" and partition["partition"] == "0"
    assert partition["events"] == UNKNOWN + MALFORMED
    assert partition["dead_letters"] == MALFORMED
    assert partition["lag_seconds"] is not None and partition["lag_seconds"] >= 0
    received = [m for m in summary["metrics"] if m["name"] == catalog.KAFKA_RECORDS.name]
    assert received == [
        {
            "name": catalog.KAFKA_RECORDS.name,
            "attributes": {catalog.TOPIC: topic, catalog.PARTITION: "0"},
            "value": 6,
        }
    ]


def test_otlp_endpoint_receives_the_metrics_as_protobuf(env: dict[str, str], tmp_path: Path) -> None:
    with receiver() as collector:
        done = run_cli(
            *RUN,
            "--exit-when-idle",
            "2",
            env={
                **env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=write-token",
            },
            cwd=tmp_path,
        )
        assert done.code == 0, done.stderr[-3000:]
        posts = collector.received("/v1/metrics")
    assert posts, "nothing was exported"
    assert all(p.headers.get("authorization") == "write-token" for p in posts)
    assert all(p.headers.get("content-type") == "application/x-protobuf" for p in posts)
    values: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for post in posts:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(post.body)
        for resource in request.resource_metrics:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            assert service == "streamduck"
            for scope in resource.scope_metrics:
                assert scope.scope.name == "streamduck"
                for metric in scope.metrics:
                    if metric.HasField("sum"):
                        for point in metric.sum.data_points:
                            attributes = {a.key: a.value.string_value for a in point.attributes}
                            values[metric.name, tuple(sorted(attributes.items()))] = point.as_int
    topic = env["TOPIC_ENGAGE"]
    at = ((catalog.PARTITION, "0"), (catalog.TOPIC, topic))
    assert values[catalog.KAFKA_RECORDS.name, at] == UNKNOWN + MALFORMED
    assert values[catalog.KAFKA_UNKNOWN_CONTENT.name, at] == UNKNOWN
    reason = tuple(sorted((*at, (catalog.REASON, "invalid_json"))))
    assert values[catalog.KAFKA_DEAD_LETTERS.name, reason] == MALFORMED
    summary = json.loads(done.stdout)
    assert summary["dead_letters"] == MALFORMED
