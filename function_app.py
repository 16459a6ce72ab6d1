"""StreamDuck function app (Azure Functions, Python v2 programming model).

Bindings only: every function decodes nothing itself and calls into ``shared``. Settings are validated
when the worker indexes this module, so a misconfigured app fails at start-up with a message naming the
variable to fix instead of failing on the first event.

Azure installs requirements.txt only: nothing on this path may import the local extra of pyproject.toml
(chDB, the dev host's Kafka and Event Hubs clients, the CLI); tests/test_deployed_packages.py runs the app
without it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import TypedDict, TypeVar

import azure.functions as func

from shared.settings import EventHubMapping, load_settings
from shared.telemetry.azure import configure_for_azure

settings = load_settings()
# Metrics, traces and logs to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set (once per
# process; Entra ID as AZURE_CLIENT_ID): see shared/telemetry/azure.py.
configure_for_azure(os.environ)
app = func.FunctionApp()


F = TypeVar("F", bound=Callable[..., object])


def _retry(fn: F) -> F:
    """Exponential back-off, unlimited by default: a failing batch holds its partition instead of being skipped."""
    decorated: F = app.retry(
        strategy="exponential_backoff",
        max_retry_count=str(settings.retry_max_count),
        minimum_interval=settings.retry_min_interval,
        maximum_interval=settings.retry_max_interval,
    )(fn)
    return decorated


# --- Event Hubs -> MotherDuck: one function per mapping (EVENTHUBNAME_N -> MOTHERDUCK_N_*) -------------


def _register_eventhub_mapping(mapping: EventHubMapping) -> None:
    @app.function_name(name=mapping.function_name)
    @app.event_hub_message_trigger(
        arg_name="events",
        event_hub_name=f"%{mapping.hub_setting}%",
        consumer_group=f"%{mapping.consumer_group_setting}%",
        connection="EventHubConnection",
        cardinality=func.Cardinality.MANY,
        data_type=func.DataType.BINARY,  # raw bytes: non-UTF-8 bodies reach the dead-letter table intact
    )
    @_retry
    def ingest(events: list[func.EventHubEvent]) -> None:
        from shared.eventhubs import default_ingestor

        default_ingestor(settings).ingest(mapping, events)


for _mapping in settings.mappings:
    _register_eventhub_mapping(_mapping)

if settings.mappings:

    @app.function_name(name="compact_motherduck")
    @app.timer_trigger(
        schedule=settings.compaction_schedule, arg_name="timer", run_on_startup=False, use_monitor=True
    )
    def compact_motherduck(timer: func.TimerRequest) -> None:
        from shared.duck.compaction import compact_all
        from shared.eventhubs import default_ingestor

        report = compact_all(settings, default_ingestor(settings).connections)
        logging.getLogger("streamduck.compaction").info(
            "compaction report: %s", json.dumps(report.as_dict(), default=str)
        )

# --- Kafka engagement pipeline -----------------------------------------------------------------------

# broker_list, username and password name app settings (the extension resolves them); topics are values.
_KAFKA_BROKERS = "KAFKA_BROKERS"
_KAFKA_SASL = settings.kafka_auth_mode.value != "NOTSET"
_KAFKA_USERNAME = "KAFKA_USERNAME" if _KAFKA_SASL else None
_KAFKA_PASSWORD = "KAFKA_PASSWORD" if _KAFKA_SASL else None


# Every Kafka trigger and output binding connects the same way.
class _KafkaConnection(TypedDict):
    broker_list: str
    protocol: str | None
    authentication_mode: str | None
    username: str | None
    password: str | None


_KAFKA_CONNECTION = _KafkaConnection(
    broker_list=_KAFKA_BROKERS,
    protocol=settings.kafka_protocol.value,
    authentication_mode=settings.kafka_auth_mode.value,
    username=_KAFKA_USERNAME,
    password=_KAFKA_PASSWORD,
)


@app.function_name(name="engagement_content_cdc")
@app.kafka_trigger(
    arg_name="events",
    topic=settings.topic_content,
    consumer_group=settings.kafka_consumer_group,
    cardinality=func.Cardinality.MANY,
    data_type=func.DataType.BINARY,  # raw values: bad bytes reach the dead-letter table intact
    **_KAFKA_CONNECTION,
)
@app.kafka_output(
    arg_name="out",
    topic=settings.topic_out,
    **_KAFKA_CONNECTION,
)
@_retry
def engagement_content_cdc(events: list[func.KafkaEvent], out: func.Out[list[str]]) -> None:
    """content.flat -> shared content store + ClickHouse dimension; re-enriches events that waited for it."""
    from shared.engagement.functions import on_content_batch

    on_content_batch(settings, events, out)


@app.function_name(name="engagement_enrich")
@app.kafka_trigger(
    arg_name="events",
    topic=settings.topic_engage,
    consumer_group=settings.kafka_consumer_group,
    cardinality=func.Cardinality.MANY,
    data_type=func.DataType.BINARY,
    **_KAFKA_CONNECTION,
)
@app.kafka_output(
    arg_name="out",
    topic=settings.topic_out,
    **_KAFKA_CONNECTION,
)
@_retry
def engagement_enrich(events: list[func.KafkaEvent], out: func.Out[list[str]]) -> None:
    """engagement_events.flat -> enriched topic + ClickHouse + Redis leaderboard (exactly once in effect)."""
    from shared.engagement.functions import on_engagement_batch

    on_engagement_batch(settings, events, out)


@app.function_name(name="engagement_leaderboard_windows")
@app.timer_trigger(schedule=settings.leaderboard_schedule, arg_name="timer", run_on_startup=False)
def engagement_leaderboard_windows(timer: func.TimerRequest) -> None:
    """Rebuilds the rolling leaderboard windows when the minute turns, so reading the top N is cheap."""
    from shared.engagement.functions import on_windows_timer

    on_windows_timer(settings)


@app.function_name(name="engagement_upkeep")
@app.timer_trigger(schedule=settings.clickhouse_upkeep_schedule, arg_name="timer", run_on_startup=False)
@app.kafka_output(
    arg_name="out",
    topic=settings.topic_out,
    **_KAFKA_CONNECTION,
)
def engagement_upkeep(timer: func.TimerRequest, out: func.Out[list[str]]) -> None:
    """Re-enriches events whose content arrived late, then OPTIMIZEs recent ClickHouse partitions."""
    from shared.engagement.functions import on_upkeep_timer

    on_upkeep_timer(settings, out)
