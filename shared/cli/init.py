"""``streamduck init``: write ``local.settings.json`` and ``.env`` for the chosen sources.

Values come from flags; on a terminal, every value no flag gave is asked for, with the default shown. The
result is validated with the same settings loader every command uses before anything is written, so init
never leaves a configuration the other commands would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.cli.environment import DOTENV, LOCAL_SETTINGS
from shared.cli.output import fail
from shared.settings import load_settings

SOURCES = ("eventhubs", "kafka")

# (variable, question, default) per source; asked in this order.
QUESTIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "eventhubs": (
        ("EVENTHUBNAME_1", "Event Hub of mapping 1", "telemetry"),
        ("EVENTHUBNAME_1_CONSUMER_GROUP", "Its consumer group", "$Default"),
        ("EVENTHUB_NAMESPACE", "Event Hubs namespace (<name>.servicebus.windows.net)", "localhost"),
        ("MOTHERDUCK_1_DATABASE", "Database", "analytics"),
        ("MOTHERDUCK_1_SCHEMA", "Schema", "raw"),
        ("MOTHERDUCK_1_TABLE", "Table", "telemetry_events"),
        ("MOTHERDUCK_TOKEN", "MotherDuck token (empty: a local DuckDB file)", ""),
    ),
    "kafka": (
        ("KAFKA_BROKERS", "Kafka brokers (host:port)", "127.0.0.1:9092"),
        ("REDIS_URL", "Redis URL", "redis://127.0.0.1:6379/0"),
        ("CLICKHOUSE_HOST", "ClickHouse host (empty: embedded chDB)", ""),
    ),
}
# Written whatever the sources: what `func start` and the dev host need to start.
COMMON = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "STREAMDUCK_DATA_DIR": ".streamduck/data",
    "CLICKHOUSE_CHDB_PATH": ".streamduck/chdb",
}


@dataclass(frozen=True)
class Written:
    files: tuple[Path, ...]
    values: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        secret = {"MOTHERDUCK_TOKEN", "EVENTHUB_CONNECTION_STRING"}
        shown = {k: ("***" if k in secret and v else v) for k, v in self.values.items()}
        return {"files": [str(f) for f in self.files], "values": shown}


Ask = Callable[[str, str], str]


def answers(sources: list[str], given: Mapping[str, str], ask: Ask | None) -> dict[str, str]:
    """The values to write: ``given`` (flags) first, then ``ask(question, default)``, else the defaults."""
    values = dict(COMMON)
    for source in sources:
        for variable, question, default in QUESTIONS[source]:
            if variable in given:
                value = given[variable]
            elif ask is not None:
                value = ask(f"{question} [{variable}]", default)
            else:
                value = default
            if value:
                values[variable] = value
    return values


def write(folder: Path, values: Mapping[str, str], *, force: bool) -> Written:
    """Validate ``values``, then write ``local.settings.json`` and ``.env`` in ``folder``."""
    load_settings(values)  # raises ConfigError naming each variable: nothing is written then
    targets = (folder / LOCAL_SETTINGS, folder / DOTENV)
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        fail(f"{' and '.join(existing)} already exist(s): pass --force to overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    document = {"IsEncrypted": False, "Values": dict(values)}
    targets[0].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    targets[1].write_text("".join(f"{k}={_quote(v)}\n" for k, v in values.items()), encoding="utf-8")
    return Written(targets, dict(values))


def _quote(value: str) -> str:
    """A .env value python-dotenv reads back unchanged (single quotes: no expansion of ``$Default``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
