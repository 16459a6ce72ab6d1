"""Configuration: every kind of mistake is reported with the variable to fix and an example value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import BodyFormat, load_settings
from shared.sqlident import qualified, quote_ident
from tests.eventhubs.helpers import ROOT, mapping_env


def _problems(env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.problems


def test_numbered_mappings_of_the_earlier_cli_load_unchanged(tmp_path: Path) -> None:
    env = {
        **mapping_env(1, tmp_path),
        **mapping_env(2, tmp_path, fmt="TEXT"),
        "MOTHERDUCK_2_BATCH": "500",
        "MOTHERDUCK_2_RETENTION_DAYS": "30",
        "MOTHERDUCK_2_TOKEN": "per-mapping",
        "motherduck_token": "standard-name",
    }
    s = load_settings(env)
    assert [m.index for m in s.mappings] == [1, 2]
    m1, m2 = s.mappings
    assert (m1.event_hub, m1.consumer_group, m1.target, m1.batch, m1.body_format) == (
        "hub1",
        "$Default",
        "lake.raw.events_1",
        1000,
        BodyFormat.JSON,
    )
    assert (m2.batch, m2.body_format, m2.retention_days) == (500, BodyFormat.TEXT, 30)
    t1, t2 = s.token_for(m1), s.token_for(m2)
    assert t1 is not None and t1.get_secret_value() == "standard-name"
    assert t2 is not None and t2.get_secret_value() == "per-mapping"
    assert "standard-name" not in repr(s)  # secrets never printed


def test_both_token_names_are_accepted(tmp_path: Path) -> None:
    for name in ("MOTHERDUCK_TOKEN", "motherduck_token"):
        s = load_settings({**mapping_env(1, tmp_path), name: "t0k"})
        assert s.uses_motherduck


def test_incomplete_mapping_is_an_error_never_ignored(tmp_path: Path) -> None:
    env = mapping_env(3, tmp_path)
    del env["MOTHERDUCK_3_SCHEMA"], env["EVENTHUBNAME_3_CONSUMER_GROUP"]
    problems = _problems(env)
    assert set(problems) == {"MOTHERDUCK_3_SCHEMA", "EVENTHUBNAME_3_CONSUMER_GROUP"}
    assert "MOTHERDUCK_3_SCHEMA=raw" in problems["MOTHERDUCK_3_SCHEMA"]
    assert "EVENTHUBNAME_3_CONSUMER_GROUP=$Default" in problems["EVENTHUBNAME_3_CONSUMER_GROUP"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MOTHERDUCK_1_TABLE", "events; DROP TABLE x", "not a valid identifier"),
        ("MOTHERDUCK_1_SCHEMA", 'raw"', "not a valid identifier"),
        ("MOTHERDUCK_1_DATABASE", "1lake", "not a valid identifier"),
        ("MOTHERDUCK_1_TABLE", "_streamduck_watermarks", "not starting with _streamduck"),
        ("EVENTHUBNAME_1", "-bad-", "not a valid Event Hub name"),
        ("EVENTHUBNAME_1_CONSUMER_GROUP", "a b", "not a valid consumer group"),
        ("MOTHERDUCK_1_BATCH", "lots", "not an integer, for example 1000"),
        ("MOTHERDUCK_1_BATCH", "0", "out of range"),
        ("MOTHERDUCK_1_FORMAT", "xml", "not one of json, text, binary"),
        ("MOTHERDUCK_1_RETENTION_DAYS", "-3", "out of range"),
        ("MOTHERDUCK_1_BACTH", "1000", "unknown mapping variable"),
        ("STREAMDUCK_MAX_EVENT_BYTES", "0", "greater than 0, for example STREAMDUCK_MAX_EVENT_BYTES=1048576"),
        ("STREAMDUCK_RETRY_MAX_COUNT", "-5", "greater than or equal to -1"),
        ("STREAMDUCK_RETRY_MIN_INTERVAL", "5s", "hh:mm:ss"),
        ("STREAMDUCK_COMPACTION_SCHEDULE", "*/5 * * * *", "six-field NCRONTAB"),
        ("EVENTHUB_NAMESPACE", "bad host/name", "host name"),
        ("CLICKHOUSE_DATABASE", "an-alytics", "identifier"),
    ],
)
def test_each_bad_value_names_its_variable(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    problems = _problems({**mapping_env(1, tmp_path), variable: value})
    assert variable in problems
    assert expected in problems[variable]


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    env = {
        **mapping_env(1, tmp_path),
        "MOTHERDUCK_1_BATCH": "x",
        "STREAMDUCK_MAX_EVENT_BYTES": "-1",
        "EVENTHUBNAME_2": "h",
    }
    problems = _problems(env)
    assert {"MOTHERDUCK_1_BATCH", "STREAMDUCK_MAX_EVENT_BYTES", "MOTHERDUCK_2_DATABASE"} <= set(problems)


def test_duplicate_mapping_is_rejected(tmp_path: Path) -> None:
    env = {**mapping_env(1, tmp_path, table="same"), **mapping_env(2, tmp_path, table="same")}
    env["EVENTHUBNAME_2"] = "hub1"
    assert "repeats mapping 1" in _problems(env)["EVENTHUBNAME_2"]


@pytest.mark.parametrize(
    ("given", "host"),
    [
        ("my-ns.servicebus.windows.net", "my-ns.servicebus.windows.net"),
        ("sb://my-ns.servicebus.chinacloudapi.cn/", "my-ns.servicebus.chinacloudapi.cn"),
        ("localhost:5672", "localhost:5672"),
        ("my-ns.servicebus.usgovcloudapi.net", "my-ns.servicebus.usgovcloudapi.net"),
    ],
)
def test_namespace_accepts_any_cloud_and_the_emulator(tmp_path: Path, given: str, host: str) -> None:
    assert load_settings({**mapping_env(1, tmp_path), "EVENTHUB_NAMESPACE": given}).eventhub_namespace == host


def test_identifiers_are_validated_before_they_reach_sql() -> None:
    assert qualified("lake", "raw", "events") == '"lake"."raw"."events"'
    for bad in ('x"; DROP TABLE y; --', "", "a.b", "1x", "x" * 64):
        with pytest.raises(ValueError, match="invalid SQL identifier"):
            quote_ident(bad)


def test_local_settings_example_is_a_valid_configuration() -> None:
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    s = load_settings(values)
    assert [m.function_name for m in s.mappings] == ["eventhub_to_motherduck_1"]
    assert not s.uses_motherduck  # empty token: embedded DuckDB files


def test_host_json_batches_for_throughput_and_checkpoints_every_batch() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert host["telemetryMode"] == "OpenTelemetry"
    eh = host["extensions"]["eventHubs"]
    assert eh["batchCheckpointFrequency"] == 1  # >1 breaks target-based scale-in
    assert eh["prefetchCount"] >= eh["maxEventBatchSize"] >= 1000
    assert eh["minEventBatchSize"] <= eh["maxEventBatchSize"]
    assert host["extensions"]["kafka"]["maxBatchSize"] >= 1000
