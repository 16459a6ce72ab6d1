"""What has been applied, what is waiting, what was parked: the report of ``streamduck status``, as plain data.

- Event Hubs mappings: watermark per partition (from ``_streamduck_watermarks``), lag against the hub when
  it is reachable, dead letters by kind, the last compaction run.
- Kafka: the consumer group's committed offsets against the topics' high watermarks (lag per partition).
- Engagement: dead letters by kind in ClickHouse (``ENGAGEMENT_DEAD_LETTER_TABLE`` in ``CLICKHOUSE_DATABASE``)
  and the leaderboard top-N with titles (from the engagement pipeline's Redis keys).

Nothing is written. A local DuckDB file held by a running dev host cannot be opened by a second process;
that is reported rather than waited for. Each part reports its own failure (``error``) and the others go on.
``streamduck status`` renders the report (:mod:`shared.cli.status`); the dashboard shows the mappings'
part (:func:`mapping_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.clock import iso_utc
from shared.errors import describe_unreachable, redact_url
from shared.settings import EventHubMapping, Settings


def _iso(value: object) -> str | None:
    """A timestamp from DuckDB in the one format the CLI prints (ISO 8601 UTC, ``Z``)."""
    return iso_utc(value) if isinstance(value, datetime) else (None if value is None else str(value))


def _duck_where(settings: Settings, m: EventHubMapping) -> tuple[str, str, str]:
    """(store, target, variable) of a mapping's database, for :func:`describe_unreachable`."""
    if settings.token_for(m) is not None:
        return (
            "motherduck",
            f"md:{m.database}",
            f"MOTHERDUCK_{m.index}_TOKEN" if m.token else "MOTHERDUCK_TOKEN",
        )
    return "duckdb", str(settings.data_dir / f"{m.database}.duckdb"), "STREAMDUCK_DATA_DIR"


def _duck(settings: Settings, m: EventHubMapping) -> Any:
    import duckdb

    token = settings.token_for(m)
    if token is not None:
        return duckdb.connect(
            f"md:{m.database}",
            config={"motherduck_token": token.get_secret_value(), "autoinstall_known_extensions": False},
        )
    path = settings.data_dir / f"{m.database}.duckdb"
    if not path.exists():
        return None
    return duckdb.connect(str(path), read_only=True)


def mapping_status(settings: Settings, m: EventHubMapping) -> dict[str, Any]:
    from shared.duck.tables import DEAD_LETTERS, MAINTENANCE, WATERMARKS, control

    report: dict[str, Any] = {
        "mapping": m.index,
        "function": m.function_name,
        "event_hub": m.event_hub,
        "consumer_group": m.consumer_group,
        "target": m.target,
        "partitions": [],
        "rows": None,
        "dead_letters": {},
        "last_compaction": None,
        "error": None,
    }
    try:
        con = _duck(settings, m)
    except Exception as exc:  # noqa: BLE001 - reported per mapping
        message = describe_unreachable(
            *_duck_where(settings, m)[:2], exc, variable=_duck_where(settings, m)[2]
        )
        if "lock" in str(exc).lower():
            message += " (a running dev host holds it; stop it to read status)"
        report["error"] = message
        return report
    if con is None:
        report["error"] = "no data yet (the database file does not exist)"
        return report
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
            "AND table_name = ?",
            [m.database, m.schema_name, WATERMARKS],
        ).fetchall()
        if not exists or int(exists[0][0]) == 0:
            report["error"] = "no data yet (control tables not created)"
            return report
        rows = con.execute(
            f"SELECT partition_id, sequence_number, event_offset, enqueued_time, epoch, updated_at "
            f"FROM {control(m, WATERMARKS)} WHERE event_hub = ? AND consumer_group = ? AND target_table = ? "
            "ORDER BY TRY_CAST(partition_id AS INTEGER), partition_id",
            [m.event_hub, m.consumer_group, m.table],
        ).fetchall()
        report["partitions"] = [
            {
                "partition": str(r[0]),
                "sequence_number": int(r[1]),
                "offset": r[2],
                "enqueued_time": _iso(r[3]),
                "epoch": int(r[4]),
                "updated_at": _iso(r[5]),
                "lag": None,
            }
            for r in rows
        ]
        from shared.duck.tables import target

        report["rows"] = int(con.execute(f"SELECT count(*) FROM {target(m)}").fetchall()[0][0])
        dead = con.execute(
            f"SELECT kind, count(*) FROM {control(m, DEAD_LETTERS)} "
            "WHERE target_table = ? GROUP BY kind ORDER BY kind",
            [m.table],
        ).fetchall()
        report["dead_letters"] = {str(k): int(n) for k, n in dead}
        last = con.execute(
            f"SELECT started_at, finished_at, rows_expired, dead_letters_expired, checkpointed, note "
            f"FROM {control(m, MAINTENANCE)} WHERE target_table = ? ORDER BY finished_at DESC LIMIT 1",
            [m.table],
        ).fetchall()
        if last:
            s, f, expired, dl_expired, checkpointed, note = last[0]
            report["last_compaction"] = {
                "started_at": _iso(s),
                "finished_at": _iso(f),
                "rows_expired": int(expired),
                "dead_letters_expired": int(dl_expired),
                "checkpointed": bool(checkpointed),
                "note": note,
            }
    except Exception as exc:  # noqa: BLE001
        store, where, variable = _duck_where(settings, m)
        report["error"] = describe_unreachable(store, where, exc, variable=variable)
    finally:
        con.close()
    return report


def eventhub_lag(settings: Settings, report: dict[str, Any], timeout: float) -> None:
    """Fill ``lag`` per partition from the hub's last enqueued sequence numbers (hub reachable)."""
    if settings.eventhub_connection_string is None and settings.eventhub_namespace is None:
        report["lag_error"] = "hub not configured (EVENTHUB_CONNECTION_STRING / EVENTHUB_NAMESPACE)"
        return
    from azure.eventhub import EventHubConsumerClient

    try:
        if settings.eventhub_connection_string is not None:
            client = EventHubConsumerClient.from_connection_string(
                settings.eventhub_connection_string.get_secret_value(),
                consumer_group=report["consumer_group"],
                eventhub_name=report["event_hub"],
                retry_total=0,
            )
        else:
            from azure.identity import DefaultAzureCredential

            client = EventHubConsumerClient(
                str(settings.eventhub_namespace),
                report["event_hub"],
                report["consumer_group"],
                DefaultAzureCredential(),
                retry_total=0,
            )
        with client:
            known = {p["partition"]: p for p in report["partitions"]}
            for pid in client.get_partition_ids():
                props = client.get_partition_properties(pid)
                last = int(props["last_enqueued_sequence_number"])
                entry = known.get(str(pid))
                if entry is None:
                    entry = {"partition": str(pid), "sequence_number": None, "lag": None}
                    report["partitions"].append(entry)
                applied = entry["sequence_number"] if entry["sequence_number"] is not None else -1
                entry["lag"] = max(0, last - applied) if not props.get("is_empty") else 0
    except Exception as exc:  # noqa: BLE001
        variable = (
            "EVENTHUB_CONNECTION_STRING" if settings.eventhub_connection_string else "EVENTHUB_NAMESPACE"
        )
        report["lag_error"] = describe_unreachable("eventhubs", report["event_hub"], exc, variable=variable)


def kafka_status(settings: Settings, timeout: float) -> dict[str, Any]:
    from confluent_kafka import Consumer, TopicPartition

    from shared.kafkaconfig import client_config

    report: dict[str, Any] = {"consumer_group": settings.kafka_consumer_group, "topics": [], "error": None}
    try:
        consumer = Consumer(
            {
                **client_config(settings),
                "group.id": settings.kafka_consumer_group,
                "enable.auto.commit": False,
            }
        )
    except Exception as exc:  # noqa: BLE001
        report["error"] = describe_unreachable("kafka", settings.kafka_brokers, exc, variable="KAFKA_BROKERS")
        return report
    try:
        metadata = consumer.list_topics(timeout=timeout)
        for topic in (settings.topic_content, settings.topic_engage, settings.topic_out):
            entry: dict[str, Any] = {"topic": topic, "partitions": []}
            report["topics"].append(entry)
            if topic not in metadata.topics:
                entry["error"] = "topic does not exist"
                continue
            parts = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
            consumed = topic != settings.topic_out  # the output topic is produced, not consumed, by the app
            committed = consumer.committed(parts, timeout=timeout)
            for tp in committed:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                position = tp.offset if tp.offset >= 0 else None
                lag = high - (position if position is not None else low) if consumed else None
                entry["partitions"].append(
                    {"partition": tp.partition, "committed": position, "high_watermark": high, "lag": lag}
                )
    except Exception as exc:  # noqa: BLE001
        report["error"] = describe_unreachable("kafka", settings.kafka_brokers, exc, variable="KAFKA_BROKERS")
    finally:
        consumer.close()
    return report


def engagement_dead_letters(settings: Settings) -> dict[str, Any]:
    """Records the engagement functions parked in ClickHouse, by kind (read-only: creates nothing)."""
    from shared.sqlident import quote_ident

    where = (
        f"ClickHouse {settings.clickhouse_host}:{settings.clickhouse_port}"
        if settings.clickhouse_host
        else f"chDB {settings.clickhouse_chdb_path}"
    )
    result: dict[str, Any] = {
        "store": where,
        "table": f"{settings.clickhouse_database}.{settings.engagement_dead_letter_table}",
        "total": None,
        "by_kind": {},
        "error": None,
    }
    if not settings.clickhouse_host and not settings.clickhouse_chdb_path.is_dir():
        result["error"] = "no data yet (the chDB folder does not exist)"
        return result
    try:
        from shared.engagement.clickhouse import Warehouse

        warehouse = Warehouse.from_settings(settings)
        table = f"{quote_ident(settings.clickhouse_database)}.{quote_ident(settings.engagement_dead_letter_table)}"
        exists = warehouse.query(f"EXISTS TABLE {table}")
        if not exists or not int(exists[0][0]):
            result["error"] = "no data yet (the dead-letter table does not exist)"
            return result
        result["by_kind"] = warehouse.count_dead_letters()
        result["total"] = sum(result["by_kind"].values())
    except Exception as exc:  # noqa: BLE001 - reported in the status, which goes on with the other stores
        variable = "CLICKHOUSE_HOST" if settings.clickhouse_host else "CLICKHOUSE_CHDB_PATH"
        result["error"] = describe_unreachable("clickhouse", where, exc, variable=variable)
    return result


def leaderboard(settings: Settings, *, top: int, window: int) -> dict[str, Any]:
    """Top-N content of the last ``window`` minutes, with titles (the engagement pipeline's Redis keys)."""
    result: dict[str, Any] = {"window_minutes": window, "entries": [], "error": None}
    try:
        from shared.engagement.leaderboard import redis_stores, top_n_with_titles
        from shared.engagement.redis_io import redis_client

        client = redis_client(settings.redis_url.get_secret_value())
        try:
            board, store = redis_stores(settings, client)
            entries = top_n_with_titles(board, store, minutes=window, n=top)
        finally:
            client.close()
        result["entries"] = [
            {
                "rank": e.rank,
                "content_id": e.content_id,
                "title": e.title,
                "content_type": e.content_type,
                "score": e.engagement_seconds,
            }
            for e in entries
        ]
    except Exception as exc:  # noqa: BLE001
        target = redact_url(settings.redis_url.get_secret_value())
        result["error"] = describe_unreachable("redis", target, exc, variable="REDIS_URL")
    return result


def kafka_not_configured(settings: Settings) -> dict[str, Any]:
    """The Kafka part when ``KAFKA_BROKERS`` is not set (the demo feeds the functions without a broker): nothing
    to ask, and nothing unavailable."""
    return {
        "consumer_group": settings.kafka_consumer_group,
        "topics": [],
        "error": None,
        "not_configured": "KAFKA_BROKERS is not set: no broker to ask for the consumer group's lag",
    }


def collect(
    settings: Settings, environ: Mapping[str, str], *, top: int, window: int, timeout: float
) -> dict[str, Any]:
    mappings = []
    for m in settings.mappings:
        part = mapping_status(settings, m)
        eventhub_lag(settings, part, timeout)
        mappings.append(part)
    report: dict[str, Any] = {
        "mappings": mappings,
        "kafka": kafka_status(settings, timeout)
        if "KAFKA_BROKERS" in environ
        else kafka_not_configured(settings),
        "engagement_dead_letters": engagement_dead_letters(settings),
        "leaderboard": leaderboard(settings, top=top, window=window),
    }
    # The stores that failed (their plain sentences); "no data yet" is not a failure.
    parts = [*mappings, report["kafka"], report["engagement_dead_letters"], report["leaderboard"]]
    report["unavailable"] = [
        text
        for part in parts
        for text in (part.get("error"), part.get("lag_error"))
        if isinstance(text, str) and text.startswith("cannot ")
    ]
    return report
