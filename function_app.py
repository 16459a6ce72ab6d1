"""StreamDuck function app (Azure Functions, Python v2 programming model).

Bindings only: every function decodes nothing itself and calls into ``shared``. Settings are validated
when the worker indexes this module, so a misconfigured app fails at start-up with a message naming the
variable to fix instead of failing on the first event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import azure.functions as func

from shared.settings import EventHubMapping, load_settings

settings = load_settings()
app = func.FunctionApp()


def _retry[F: Callable[..., object]](fn: F) -> F:
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
    @app.timer_trigger(schedule=settings.compaction_schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
    def compact_motherduck(timer: func.TimerRequest) -> None:
        from shared.duck.compaction import compact_all
        from shared.eventhubs import default_ingestor

        report = compact_all(settings, default_ingestor(settings).connections)
        logging.getLogger("streamduck.compaction").info("compaction report: %s", json.dumps(report, default=str))

# --- Kafka engagement pipeline -----------------------------------------------------------------------
# (registered below by the engagement section)
