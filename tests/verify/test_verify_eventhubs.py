"""`streamduck verify` for Event Hubs mappings, up to the SDK boundary (no Event Hubs service runs here).

The events verify builds (real ``EventData``: a JSON body with the run id, the ``streamduck_verify``
application property) go through an injected sender that hands them to the real ``eventhub_to_motherduck_N``
the way the Functions host would (tests/verify/ehfeed.py, blob checkpoints on Azurite); verify's own wait
step then finds them in the local DuckDB file. The SDK sender itself is run against an unreachable namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from shared.settings import load_settings
from shared.verify import Source, run_verify
from shared.verify.steps import Status
from tests.support.cli import base_env, run_cli
from tests.verify.support import FeederSender, feed


def eventhubs_env(
    tmp_path: Path, azurite_connection_string: str, unique_name: str, **extra: str
) -> dict[str, str]:
    return base_env(
        tmp_path,
        EVENTHUB_NAMESPACE="streamduck-test.servicebus.windows.net",
        AzureWebJobsStorage=azurite_connection_string,
        EVENTHUBNAME_1=f"hub-{unique_name}",
        EVENTHUBNAME_1_CONSUMER_GROUP="$Default",
        MOTHERDUCK_1_DATABASE="analytics",
        MOTHERDUCK_1_SCHEMA="raw",
        MOTHERDUCK_1_TABLE="telemetry",
        EVENTHUBNAME_2=f"bin-{unique_name}",
        EVENTHUBNAME_2_CONSUMER_GROUP="$Default",
        MOTHERDUCK_2_DATABASE="analytics",
        MOTHERDUCK_2_SCHEMA="raw",
        MOTHERDUCK_2_TABLE="blobs",
        MOTHERDUCK_2_FORMAT="binary",
        **extra,
    )


def rows(database: Path, table: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(
            f"SELECT json_extract_string(properties, '$.streamduck_verify'), body FROM analytics.raw.{table} "
            "ORDER BY sequence_number"
        ).fetchall()


def test_each_mappings_event_is_sent_and_found_in_its_table(
    tmp_path: Path, azurite_connection_string: str, unique_name: str
) -> None:
    env = eventhubs_env(tmp_path, azurite_connection_string, unique_name)
    sender = FeederSender(env, tmp_path / "feeds")

    report = run_verify(load_settings(env), only=Source.EVENTHUBS, timeout=30, sender=sender)

    run_id = report.marks.run_id
    database = tmp_path / "data" / "analytics.duckdb"
    assert [(s.name, s.target, s.status) for s in report.steps] == [
        ("eventhubs_send_1", f"hub-{unique_name} (streamduck-test.servicebus.windows.net)", Status.OK),
        ("duckdb_row_1", f"analytics.raw.telemetry ({database})", Status.OK),
        ("eventhubs_send_2", f"bin-{unique_name} (streamduck-test.servicebus.windows.net)", Status.OK),
        ("duckdb_row_2", f"analytics.raw.blobs ({database})", Status.OK),
    ]
    assert report.ok
    # What verify built: one event per mapping, the run id in the body and in the application properties.
    assert [index for index, _ in sender.sent] == [1, 2]
    for index, events in sender.sent:
        (event,) = events
        assert event.properties == {"streamduck_verify": run_id}
        assert json.loads(event.body_as_str()) == {
            "streamduck_verify": run_id,
            "mapping": index,
            "sent_at": json.loads(event.body_as_str())["sent_at"],
        }
    (json_row,) = rows(database, "telemetry")
    assert json_row[0] == run_id and json.loads(str(json_row[1]))["streamduck_verify"] == run_id
    (blob_row,) = rows(database, "blobs")
    assert blob_row[0] == run_id
    assert isinstance(blob_row[1], bytes) and json.loads(blob_row[1])["mapping"] == 2


def test_cleanup_deletes_only_the_runs_rows(
    tmp_path: Path, azurite_connection_string: str, unique_name: str
) -> None:
    env = eventhubs_env(tmp_path, azurite_connection_string, unique_name)
    for function in ("eventhub_to_motherduck_1", "eventhub_to_motherduck_2"):  # real data already there
        feed(env, tmp_path / "feeds", function, [(b'{"reading": 1}', {"sensor": "s1"})])

    report = run_verify(
        load_settings(env),
        only=Source.EVENTHUBS,
        timeout=30,
        cleanup=True,
        sender=FeederSender(env, tmp_path / "feeds"),
    )

    assert report.ok, [s.as_dict() for s in report.steps]
    cleanup = {s.name: s.detail for s in report.steps if s.name.startswith("cleanup_")}
    assert cleanup == {
        "cleanup_duckdb_1": "deleted 1 rows, 0 dead_letters",
        "cleanup_duckdb_2": "deleted 1 rows, 0 dead_letters",
    }
    database = tmp_path / "data" / "analytics.duckdb"
    assert [r[0] for r in rows(database, "telemetry")] == [None]
    assert [r[0] for r in rows(database, "blobs")] == [None]


def test_a_parked_test_event_is_an_error_with_its_reason(
    tmp_path: Path, azurite_connection_string: str, unique_name: str
) -> None:
    env = eventhubs_env(tmp_path, azurite_connection_string, unique_name, STREAMDUCK_MAX_EVENT_BYTES="16")
    settings = load_settings(env)
    single = settings.model_copy(update={"mappings": settings.mappings[:1]})

    report = run_verify(
        single, only=Source.EVENTHUBS, timeout=30, cleanup=True, sender=FeederSender(env, tmp_path)
    )

    send, land, cleanup = report.steps
    assert (send.status, land.status) == (Status.OK, Status.ERROR)
    assert land.detail.startswith("dead-lettered (oversized): ")
    assert cleanup.detail == "deleted 0 rows, 1 dead_letters"


def test_unreachable_namespace_and_redis_are_plain_step_errors(
    tmp_path: Path, kafka_brokers: str, unique_name: str
) -> None:
    """The SDK sender against a namespace that refuses connections, settings from local.settings.json."""
    values = {
        "EVENTHUB_CONNECTION_STRING": "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v;"
        "UseDevelopmentEmulator=true",
        "EVENTHUBNAME_1": "telemetry",
        "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
        "MOTHERDUCK_1_DATABASE": "analytics",
        "MOTHERDUCK_1_SCHEMA": "raw",
        "MOTHERDUCK_1_TABLE": "telemetry",
        "KAFKA_BROKERS": kafka_brokers,
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "TOPIC_CONTENT": f"{unique_name}-content",
        "TOPIC_ENGAGE": f"{unique_name}-engage",
        "TOPIC_OUT": f"{unique_name}-out",
    }
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")

    result = run_cli(
        "verify",
        "--local-settings",
        str(settings_file),
        "--json",
        "--timeout",
        "3",
        env=base_env(tmp_path),
        cwd=tmp_path,
    )

    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert steps["eventhubs_send_1"]["status"] == "error"
    assert steps["eventhubs_send_1"]["target"] == "telemetry (EVENTHUB_CONNECTION_STRING)"
    assert steps["eventhubs_send_1"]["detail"].startswith(
        "eventhubs: cannot send to Event Hub telemetry: ConnectError: "
    )
    assert "Connection refused" in steps["eventhubs_send_1"]["detail"]
    assert steps["duckdb_row_1"]["status"] == "skipped"
    assert steps["kafka_send"]["status"] == "ok", steps["kafka_send"]["detail"]
    assert steps["redis_leaderboard"]["status"] == "error"
    assert "Connection refused" in steps["redis_leaderboard"]["detail"]
    assert result.stderr.startswith("error: verify failed: eventhubs_send_1 error (eventhubs: cannot send")
    assert "redis_leaderboard error (redis: " in result.stderr
