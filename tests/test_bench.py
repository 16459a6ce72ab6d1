"""The benchmark commands run end to end on a few events and report what landed.

Their speed is not asserted (it depends on the machine); their output is: every event reaches the table once,
and every figure the README and the JSON promise is there and positive. Each runs in its own process, as
``make bench`` runs it (chDB allows one engine per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT


def _bench(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.slow  # a benchmark: 3,000 events at two batch sizes plus a baseline
def test_eventhubs_benchmark_lands_every_event_and_reports_the_floor() -> None:
    result = _bench(
        "bench.eventhubs_ingest", "--events", "3000", "--batches", "100,1000", "--baseline-events", "500"
    )
    assert [run["batch"] for run in result["runs"]] == [100, 1000]
    for run in result["runs"]:
        assert run["rows_in_table"] == 3000
        assert run["rows_in_floor_table"] == 3000
        for figure in (
            "events_per_s",
            "events_per_s_including_checkpoint",
            "baseline_multirow_values_events_per_s",
            "function_ms_per_batch",
            "decode_alone_ms_per_batch",
            "insert_commit_alone_ms_per_batch",
            "events_per_s_decode_and_insert_alone",
            "function_to_floor",
            "function_median_ms",
            "floor_median_ms",
            "function_to_floor_median",
            "statements_per_batch",
            "round_trips_per_batch",
        ):
            assert run[figure] > 0, figure
        for part in ("decode", "begin", "insert", "commit"):
            assert run["floor_parts_median_ms"][part] > 0, part
        parts = run["function_parts_median_ms"]
        for part in ("decode", "INSERT", "COMMIT", "total"):
            assert parts[part] > 0, part
        assert "ours" in parts


@pytest.mark.integration
def test_enrichment_benchmark_lands_every_event_and_times_each_phase(redis_url: str) -> None:
    result = _bench("bench.engagement_enrich", "--events", "3000", "--redis-url", redis_url)
    assert result["clickhouse_rows"] == 3000  # the warm-up batch too
    assert result["events"] == result["published_envelopes"] == 2000
    for figure in (
        "enrich_events_per_second",
        "earlier_per_event_redis_events_per_second",
        "python_alone_ms_per_batch",
        "clickhouse_insert_alone_ms_per_batch",
        "redis_script_alone_ms_per_batch",
        "sequential_floor_ms_per_batch",
        "function_to_sequential_floor",
    ):
        assert result[figure] > 0, figure


@pytest.mark.integration
def test_devhost_benchmark_drains_every_event_and_says_where_the_time_went(
    redis_url: str, kafka_brokers: str
) -> None:
    result = _bench(
        "bench.devhost_kafka",
        "--events",
        "2500",
        "--redis-url",
        redis_url,
        "--idle",
        "1",
        env={"KAFKA_BROKERS": kafka_brokers},
    )
    assert result["events_consumed"] == 2500
    assert result["batches"] >= 3  # host.json's batch of 1,000
    for figure in (
        "devhost_events_per_second",
        "function_only_events_per_second",
        "devhost_to_function_ratio",
        "seconds_first_fetch_to_last_offset_stored",
        "function_and_output_binding_events_per_second",
        "devhost_to_function_and_output_binding_ratio",
        "function_only_ms_per_batch",
    ):
        assert result[figure] > 0, figure
    for pair in (
        "function_only_ms_per_batch_before_and_after",
        "function_and_output_binding_ms_per_batch_before_and_after",
    ):
        assert len(result[pair]) == 2 and all(ms > 0 for ms in result[pair]), pair
    cpu = result["cpu_ms_per_batch"]
    assert cpu["devhost_process"] > 0 and cpu["function_only_process"] > 0
    assert cpu["broker"] is None or cpu["broker"] > 0  # known when the broker is the local services' one
    subscriber, executor = result["ms_per_batch"]["subscriber"], result["ms_per_batch"]["executor"]
    for phase in ("fetch", "build_kafka_events"):
        assert subscriber[phase] > 0, phase
    for phase in (
        "function",
        "output_binding",
        "output_binding_waiting_for_acks",
        "store_offsets",
        "function_and_output_thread_cpu",
    ):
        assert executor[phase] > 0, phase
    assert {"waiting_for_room_in_channel", "empty_fetches", "lag_reports"} <= set(subscriber)
    assert "waiting_for_a_batch" in executor
    assert result["ms_per_batch"]["elapsed"] > 0
    # The function's own timings (from its metrics): the engines' parts and the rest, alone and in the host.
    for where in ("alone", "before_its_output_binding", "in_devhost"):
        timed = result["function_parts_ms_per_batch"][where]
        assert {"function", "clickhouse_insert", "redis_script", "outside_clickhouse_and_redis"} <= set(timed)
        assert timed["function"] > timed["clickhouse_insert"] > 0 and timed["redis_script"] > 0, where


@pytest.mark.integration
def test_cold_start_benchmark_times_the_import_and_each_first_batch(redis_url: str) -> None:
    result = _bench("bench.cold_start", "--redis-url", redis_url, "--top", "5")
    assert result["forbidden_modules_loaded"] == []
    assert result["import_ms"] > 0
    for function in ("eventhubs", "enrich"):
        for figure in ("import_ms", "first_batch_ms", "second_batch_ms"):
            assert result[function][figure] > 0, (function, figure)
    assert result["import_and_first_eventhubs_batch_ms"] > result["import_ms"]
    assert len(result["top_imports"]) == 5
    assert result["top_imports"][0]["module"] == "function_app"
