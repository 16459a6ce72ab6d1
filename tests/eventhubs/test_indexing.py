"""The app as the worker indexes it: one Event Hub function per mapping, bindings and retry policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.eventhubs.helpers import index_app, mapping_env

DUMP_BINDINGS = """
import json, function_app
from shared.appindex import indexed_functions
print(json.dumps({name: {"bindings": f.get_raw_bindings(), "retry": f.get_settings_dict("retry_policy")}
                  for name, f in indexed_functions(function_app.app).items()}))
"""

DUMP_VIA_WORKER_LOADER = """
import json, types
from azure_functions_runtime import loader
functions = loader.index_function_app("function_app.py")
protos = types.SimpleNamespace(RpcRetryOptions=lambda **kw: {k: str(v) for k, v in kw.items()})
print(json.dumps({f.get_function_name(): {"bindings": [json.loads(b) for b in f.get_raw_bindings()],
                                          "retry": loader.build_retry_protos(protos, f)} for f in functions}))
"""


def _eventhub_binding(found: dict[str, Any], name: str) -> dict[str, Any]:
    bindings = [b if isinstance(b, dict) else json.loads(b) for b in found[name]["bindings"]]
    (trigger,) = [b for b in bindings if b["type"] == "eventHubTrigger"]
    return {k: v.lower() if k in ("direction", "cardinality", "dataType") else v for k, v in trigger.items()}


def _ours(found: dict[str, Any]) -> set[str]:
    """The Event Hubs part of the app (the Kafka engagement functions are tested with their pipeline)."""
    return {name for name in found if name.startswith(("eventhub_to_motherduck_", "compact_motherduck"))}


def test_one_mapping_registers_one_eventhub_function_with_retry(tmp_path: Path) -> None:
    found = index_app(mapping_env(1, tmp_path), DUMP_BINDINGS)
    assert _ours(found) == {"eventhub_to_motherduck_1", "compact_motherduck"}
    trigger = _eventhub_binding(found, "eventhub_to_motherduck_1")
    assert trigger == {
        "type": "eventHubTrigger",
        "direction": "in",
        "name": "events",
        "eventHubName": "%EVENTHUBNAME_1%",
        "consumerGroup": "%EVENTHUBNAME_1_CONSUMER_GROUP%",
        "connection": "EventHubConnection",
        "cardinality": "many",
        "dataType": "binary",
    }
    assert found["eventhub_to_motherduck_1"]["retry"] == {
        "setting_name": "retry_policy",
        "strategy": "exponential_backoff",
        "max_retry_count": "-1",
        "minimum_interval": "00:00:01",
        "maximum_interval": "00:05:00",
    }


def test_several_mappings_each_get_a_stable_unique_function(tmp_path: Path) -> None:
    env = {
        **mapping_env(1, tmp_path),
        **mapping_env(2, tmp_path, fmt="text"),
        **mapping_env(7, tmp_path, fmt="binary"),
    }
    env["STREAMDUCK_RETRY_MAX_COUNT"] = "12"
    env["STREAMDUCK_COMPACTION_SCHEDULE"] = "0 */15 * * * *"
    found = index_app(env, DUMP_BINDINGS)
    assert _ours(found) == {
        "eventhub_to_motherduck_1",
        "eventhub_to_motherduck_2",
        "eventhub_to_motherduck_7",
        "compact_motherduck",
    }
    for n in (1, 2, 7):
        trigger = _eventhub_binding(found, f"eventhub_to_motherduck_{n}")
        assert trigger["eventHubName"] == f"%EVENTHUBNAME_{n}%"
        assert trigger["consumerGroup"] == f"%EVENTHUBNAME_{n}_CONSUMER_GROUP%"
        assert trigger["cardinality"] == "many"
        assert found[f"eventhub_to_motherduck_{n}"]["retry"]["max_retry_count"] == "12"
    timer = json.loads(found["compact_motherduck"]["bindings"][0])
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == "0 */15 * * * *"


def test_bad_configuration_fails_indexing_naming_the_variable(tmp_path: Path) -> None:
    env = mapping_env(1, tmp_path)
    del env["MOTHERDUCK_1_TABLE"]
    with pytest.raises(AssertionError, match="MOTHERDUCK_1_TABLE: missing"):
        index_app(env, DUMP_BINDINGS)


def test_real_worker_loader_indexes_the_app(tmp_path: Path) -> None:
    env = {**mapping_env(1, tmp_path), **mapping_env(2, tmp_path)}
    found = index_app(env, DUMP_VIA_WORKER_LOADER)
    assert {"eventhub_to_motherduck_1", "eventhub_to_motherduck_2", "compact_motherduck"} <= set(found)
    trigger = _eventhub_binding(found, "eventhub_to_motherduck_2")
    assert trigger["eventHubName"] == "%EVENTHUBNAME_2%"
    assert trigger["cardinality"] == "many"
    retry = found["eventhub_to_motherduck_2"]["retry"]
    assert retry["max_retry_count"] == "-1"
    assert retry["retry_strategy"] == "exponential_backoff"
    assert retry["minimum_interval"] == "0:00:01"
    assert retry["maximum_interval"] == "0:05:00"
