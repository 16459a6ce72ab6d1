"""docker-compose.yml validates, and its Event Hubs emulator, topics and local settings match the mappings.

``docker-compose config`` (Debian package ``docker-compose``) validates the file without a Docker engine.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess

import yaml  # type: ignore[import-untyped]

from shared.settings import load_settings

from .infra_helpers import (
    COMPOSE_FILE,
    COMPOSE_LOCAL_SETTINGS,
    EMULATOR_CONFIG,
    ROOT,
    Json,
    mappings,
    parameters,
    require_tool,
)

SERVICES = {"azurite", "eventhubs", "kafka", "kafka-topics", "postgres", "redis", "clickhouse"}


@functools.cache
def compose_config() -> dict[str, Json]:
    """The compose file as docker-compose resolves it, once per session (fails the test when invalid)."""
    docker_compose = require_tool("docker-compose", "apt-get install docker-compose (Debian package)")
    result = subprocess.run(
        [docker_compose, "--file", str(COMPOSE_FILE), "--profile", "cdc", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config rejected {COMPOSE_FILE.name}:\n{result.stderr}"
    document: dict[str, Json] = yaml.safe_load(result.stdout)
    return document


def test_compose_file_is_valid_and_has_every_dependency() -> None:
    services = compose_config()["services"]
    assert set(services) >= SERVICES
    assert "connect" in services, "Kafka Connect (profile cdc) for Debezium"


def test_postgres_has_logical_replication() -> None:
    command = " ".join(compose_config()["services"]["postgres"]["command"])
    assert "wal_level=logical" in command


def test_emulator_mounts_its_config_and_uses_azurite() -> None:
    emulator = compose_config()["services"]["eventhubs"]
    assert emulator["environment"]["BLOB_SERVER"] == "azurite"
    assert emulator["environment"]["METADATA_SERVER"] == "azurite"
    targets = {str(v["target"]) if isinstance(v, dict) else str(v).split(":")[1] for v in emulator["volumes"]}
    assert "/Eventhubs_Emulator/ConfigFiles/Config.json" in targets


def test_emulator_config_matches_the_mappings() -> None:
    config = json.loads(EMULATOR_CONFIG.read_text(encoding="utf-8"))
    (namespace,) = config["UserConfig"]["NamespaceConfig"]
    entities = {e["Name"]: e for e in namespace["Entities"]}
    for n, mapping in enumerate(mappings(), start=1):
        hub = entities.get(mapping["eventHub"])
        assert hub is not None, f"mapping {n}: hub {mapping['eventHub']} missing in {EMULATOR_CONFIG.name}"
        assert int(hub["PartitionCount"]) == mapping.get("partitions", 4), f"mapping {n}: partition count"
        groups = {g["Name"] for g in hub["ConsumerGroups"]}
        if mapping["consumerGroup"].lower() != "$default":
            assert mapping["consumerGroup"] in groups, f"mapping {n}: consumer group missing in the emulator"
    assert set(entities) == {m["eventHub"] for m in mappings()}, "emulator hubs that no mapping reads"


def test_kafka_topics_match_the_bicep_topics() -> None:
    command = " ".join(compose_config()["services"]["kafka-topics"]["command"])
    created = set(re.search(r"for topic in (.*?);", command, re.S).group(1).split())  # type: ignore[union-attr]
    assert created == set(parameters()["kafkaTopics"].values())


def test_compose_local_settings_load_and_match_the_mappings() -> None:
    values = json.loads(COMPOSE_LOCAL_SETTINGS.read_text(encoding="utf-8"))["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert "UseDevelopmentEmulator=true" in values["EventHubConnection"]
    settings = load_settings(values)
    expected = [
        (m["eventHub"], m["consumerGroup"], m["database"], m["schema"], m["table"]) for m in mappings()
    ]
    actual = [(m.event_hub, m.consumer_group, m.database, m.schema_name, m.table) for m in settings.mappings]
    assert actual == expected
    topics = parameters()["kafkaTopics"]
    assert (settings.topic_content, settings.topic_engage, settings.topic_out) == (
        topics["content"], topics["engage"], topics["out"],
    )  # fmt: skip
