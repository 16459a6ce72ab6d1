"""Event Hubs -> MotherDuck: send one tagged event per mapping, find it in the mapping's table, delete it.

The sender is injectable (:class:`EventSender`): :class:`SdkSender` sends with the Event Hubs SDK, using the
simulator's client construction (``EVENTHUB_CONNECTION_STRING``, else Entra ID on ``EVENTHUB_NAMESPACE``).
Lookups and deletes find the run's rows by the ``streamduck_verify`` application property, kept in the
``properties`` JSON column of the target table and of the dead-letter table (a bound parameter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import TransientError
from shared.settings import EventHubMapping, Settings
from shared.verify.marks import PROPERTY, RunMarks
from shared.verify.steps import Failed, Found, Outcome, Pending

if TYPE_CHECKING:
    import duckdb
    from azure.eventhub import EventData, EventHubProducerClient

SEND_RETRIES = 2


class EventSender(Protocol):
    """Delivers events to a mapping's Event Hub; returns once the hub accepted them (or raises)."""

    def send(self, mapping: EventHubMapping, events: Sequence[EventData]) -> None: ...

    def close(self) -> None: ...


class SdkSender:
    """azure-eventhub producer clients, one per hub, built like the simulator's."""

    def __init__(self, settings: Settings, *, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._clients: dict[str, EventHubProducerClient] = {}

    def send(self, mapping: EventHubMapping, events: Sequence[EventData]) -> None:
        from shared.simulate.targets import eventhub_errors, eventhub_producer

        hub = mapping.event_hub
        with eventhub_errors(hub):
            client = self._clients.get(hub)
            if client is None:
                client = self._clients[hub] = eventhub_producer(self.settings, hub, retry_total=SEND_RETRIES)
            batch = client.create_batch()
            for event in events:
                batch.add(event)
            client.send_batch(batch, timeout=self.timeout)

    def close(self) -> None:
        from shared.simulate.targets import eventhub_errors

        clients, self._clients = self._clients, {}
        for hub, client in clients.items():
            with eventhub_errors(hub):
                client.close()


def build_events(marks: RunMarks, mapping: EventHubMapping) -> list[EventData]:
    """The run's test event for ``mapping``: the run id in the JSON body and in the application properties."""
    from azure.eventhub import EventData

    event = EventData(marks.eventhub_body(mapping.index))
    properties: dict[str | bytes, Any] = {}
    properties.update(marks.eventhub_properties())
    event.properties = properties
    return [event]


def send_target(settings: Settings, mapping: EventHubMapping) -> str:
    if settings.eventhub_connection_string is not None:
        return f"{mapping.event_hub} (EVENTHUB_CONNECTION_STRING)"
    return f"{mapping.event_hub} ({settings.eventhub_namespace or 'no namespace configured'})"


def table_target(settings: Settings, mapping: EventHubMapping) -> str:
    if settings.token_for(mapping) is not None:
        return f"{mapping.target} (md:{mapping.database})"
    return f"{mapping.target} ({local_path(settings, mapping)})"


def local_path(settings: Settings, mapping: EventHubMapping) -> Path:
    return settings.data_dir / f"{mapping.database}.duckdb"


class FileInUse(TransientError):
    """A local DuckDB file held by another process (a running dev host): readable once it stops."""


@contextlib.contextmanager
def duck(
    settings: Settings, mapping: EventHubMapping, *, write: bool
) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A connection to the mapping's database (``None``: a local file that does not exist yet)."""
    import duckdb

    from shared.duck.connection import translate

    token = settings.token_for(mapping)
    path = local_path(settings, mapping)
    location = f"md:{mapping.database}" if token is not None else str(path)
    if token is None and not path.exists():
        yield None
        return
    try:
        if token is not None:
            con = duckdb.connect(
                f"md:{mapping.database}",
                config={
                    "motherduck_token": token.get_secret_value(),
                    "custom_user_agent": "streamduck-verify",
                },
            )
        else:
            con = duckdb.connect(str(path), read_only=not write)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise FileInUse(
                "the DuckDB file is held by another process (a running `streamduck run`?); "
                "it can be read once that process stops",
                store=location,
                cause=exc,
            ) from exc
        raise translate(exc, store=location) from exc
    except duckdb.Error as exc:
        raise translate(exc, store=location) from exc
    try:
        yield con
    except duckdb.Error as exc:
        raise translate(exc, store=location) from exc
    finally:
        con.close()


def _tables_exist(con: duckdb.DuckDBPyConnection, mapping: EventHubMapping, names: Sequence[str]) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
        "AND table_name IN (SELECT unnest(?::VARCHAR[]))",
        [mapping.database, mapping.schema_name, list(names)],
    ).fetchall()
    return {str(r[0]) for r in rows}


def find_rows(settings: Settings, mapping: EventHubMapping, run_id: str) -> Outcome:
    """The run's row in the mapping's table; a parked test event is a final failure naming its reason."""
    from shared.duck.tables import DEAD_LETTERS, control, target

    with duck(settings, mapping, write=False) as con:
        if con is None:
            return Pending("no data yet (the database file does not exist)")
        present = _tables_exist(con, mapping, [mapping.table, DEAD_LETTERS])
        if mapping.table not in present:
            return Pending("no data yet (the table does not exist)")
        rows = con.execute(
            f"SELECT count(*) FROM {target(mapping)} WHERE json_extract_string(properties, ?) = ?",
            [f"$.{PROPERTY}", run_id],
        ).fetchall()
        count = int(rows[0][0])
        if count:
            return Found(f"{count} row(s) with {PROPERTY}={run_id}")
        if DEAD_LETTERS in present:
            parked = con.execute(
                f"SELECT kind, reason FROM {control(mapping, DEAD_LETTERS)} "
                "WHERE target_table = ? AND json_extract_string(properties, ?) = ? LIMIT 1",
                [mapping.table, f"$.{PROPERTY}", run_id],
            ).fetchall()
            if parked:
                kind, reason = parked[0]
                return Failed(f"dead-lettered ({kind}): {reason}")
    return Pending("not found yet")


def delete_rows(settings: Settings, mapping: EventHubMapping, run_id: str) -> dict[str, Any]:
    """Delete the run's rows from the mapping's table and dead-letter table; returns what was deleted."""
    from shared.duck.tables import DEAD_LETTERS, control, target

    deleted = {"rows": 0, "dead_letters": 0}
    with duck(settings, mapping, write=True) as con:
        if con is None:
            return deleted
        present = _tables_exist(con, mapping, [mapping.table, DEAD_LETTERS])
        con.execute("BEGIN")
        if mapping.table in present:
            rows = con.execute(
                f"DELETE FROM {target(mapping)} WHERE json_extract_string(properties, ?) = ?",
                [f"$.{PROPERTY}", run_id],
            ).fetchall()
            deleted["rows"] = int(rows[0][0]) if rows else 0
        if DEAD_LETTERS in present:
            rows = con.execute(
                f"DELETE FROM {control(mapping, DEAD_LETTERS)} "
                "WHERE target_table = ? AND json_extract_string(properties, ?) = ?",
                [mapping.table, f"$.{PROPERTY}", run_id],
            ).fetchall()
            deleted["dead_letters"] = int(rows[0][0]) if rows else 0
        con.execute("COMMIT")
    return deleted
