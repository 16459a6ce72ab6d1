"""The engagement functions' bindings: the JSON the worker sends the host for the Kafka and timer triggers."""

from __future__ import annotations

import json

import pytest

from .support import app_functions


@pytest.mark.parametrize("name", ["engagement_content_cdc", "engagement_enrich"])
def test_kafka_trigger_and_output_bindings(name: str) -> None:
    import function_app

    fn = app_functions()[name]
    assert fn.get_trigger().get_dict_repr()["type"] == "kafkaTrigger"
    bindings = [json.loads(b) for b in fn.get_raw_bindings()]  # the JSON the worker sends the host
    trigger = next(b for b in bindings if b["direction"] == "IN")
    s = function_app.settings
    assert trigger["type"] == "kafkaTrigger"
    assert trigger["topic"] == (s.topic_content if name == "engagement_content_cdc" else s.topic_engage)
    assert trigger["brokerList"] == "KAFKA_BROKERS"  # an app-setting name, resolved by the extension
    assert trigger["consumerGroup"] == s.kafka_consumer_group
    assert trigger["cardinality"] == "MANY"
    assert trigger["dataType"] == "BINARY"
    assert trigger["protocol"] == s.kafka_protocol.value
    assert trigger["authenticationMode"] == s.kafka_auth_mode.value
    output = next(b for b in bindings if b["direction"] == "OUT")
    assert output["type"] == "kafka"
    assert output["name"] == "out"
    assert output["topic"] == s.topic_out
    assert output["brokerList"] == "KAFKA_BROKERS"
    retry = fn.get_settings_dict("retry_policy")  # sent to the host as the function's retry options
    assert retry["strategy"] == "exponential_backoff"
    assert retry["max_retry_count"] == str(s.retry_max_count) == "-1"  # unlimited by default
    assert retry["minimum_interval"] == s.retry_min_interval
    assert retry["maximum_interval"] == s.retry_max_interval


@pytest.mark.parametrize(
    ("name", "schedule_attr"),
    [
        ("engagement_leaderboard_windows", "leaderboard_schedule"),
        ("engagement_upkeep", "clickhouse_upkeep_schedule"),
    ],
)
def test_timer_bindings(name: str, schedule_attr: str) -> None:
    import function_app

    fn = app_functions()[name]
    trigger = fn.get_trigger().get_dict_repr()
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == getattr(function_app.settings, schedule_attr)
    outputs = [json.loads(b) for b in fn.get_raw_bindings() if json.loads(b)["direction"] == "OUT"]
    assert [o["type"] for o in outputs] == (["kafka"] if name == "engagement_upkeep" else [])
