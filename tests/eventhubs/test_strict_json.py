"""RFC 8259 JSON by default, DuckDB's lenient JSON on request; the first-watermark race is transient."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import azure.functions as func
import duckdb
import pytest

from shared.duck.connection import DuckConnections
from shared.errors import TransientError
from shared.eventhubs.decode import DecodedBatch, decode_batch
from shared.eventhubs.ingest import EventHubIngestor
from shared.eventhubs.sink import BatchResult, MotherDuckSink
from shared.settings import EventHubMapping
from tests.eventhubs.helpers import batch, mapping_env, rows, settings_for, source_events

# DuckDB's JSON parser accepts every one of these; RFC 8259 none.
NONSTANDARD = [b"NaN", b'{"x": Infinity}', b'{"a":1,}', b"[1, 2,]", b'{"y": -Infinity}']


def _bodies() -> list[bytes]:
    good = [b'{"n": 0}', b"[1, 2]", b'"text"', b"3.5"]
    return [
        good[0],
        NONSTANDARD[0],
        good[1],
        NONSTANDARD[1],
        good[2],
        NONSTANDARD[2],
        good[3],
        *NONSTANDARD[3:],
    ]


def test_json_mapping_parks_what_rfc_8259_rejects(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ing = EventHubIngestor(settings_for(mapping_env(1, data)))
    bodies = _bodies()
    result = ing.ingest(ing.mapping(1), batch(source_events(0, len(bodies), body=lambda i: bodies[i])))
    ing.close()
    assert result is not None and (result.written, result.dead_lettered) == (4, 5)
    assert result.dead_letter_reasons == (("invalid_json", 5),)
    assert [r[0] for r in rows(data, "SELECT sequence_number FROM lake.raw.events_1 ORDER BY 1")] == [
        0,
        2,
        4,
        6,
    ]
    letters = rows(
        data, "SELECT sequence_number, kind, reason, raw FROM lake.raw._streamduck_dead_letters ORDER BY 1"
    )
    assert [(r[0], r[1], r[3]) for r in letters] == [(i, "invalid_json", bodies[i]) for i in (1, 3, 5, 7, 8)]
    assert "trailing comma" in letters[2][2] and letters[0][2].startswith("invalid JSON")


def test_lenient_mapping_keeps_what_duckdb_accepts_and_still_parks_garbage(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ing = EventHubIngestor(settings_for(mapping_env(1, data, MOTHERDUCK_1_JSON_LENIENT="true")))
    bodies = [*_bodies(), b"{not json"]
    result = ing.ingest(ing.mapping(1), batch(source_events(0, len(bodies), body=lambda i: bodies[i])))
    ing.close()
    assert result is not None and (result.written, result.dead_lettered) == (9, 1)
    assert rows(data, "SELECT sequence_number, kind FROM lake.raw._streamduck_dead_letters") == [
        (9, "invalid_json")
    ]


def test_lenient_setting_must_be_a_boolean() -> None:
    from shared.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        settings_for(mapping_env(1, Path("unused"), MOTHERDUCK_1_JSON_LENIENT="maybe"))
    assert "MOTHERDUCK_1_JSON_LENIENT" in caught.value.problems


class _RivalAfterRead:
    """A real cursor that lets the rival delivery commit right after this one read the (absent) watermark."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, rival: threading.Thread) -> None:
        self._cur, self._rival = cur, rival

    def execute(self, sql: str, params: Any = None) -> Any:
        result = self._cur.execute(sql, params or [])
        if sql.startswith("SELECT sequence_number") and self._rival.ident is None:
            self._rival.start()
            self._rival.join()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class _RacingConnections(DuckConnections):
    def __init__(self, data_dir: Path, rival: threading.Thread) -> None:
        super().__init__(data_dir=data_dir, default_token=None)
        self._rival = rival

    def cursor(self, database: str, token: Any = None) -> Any:
        return _RivalAfterRead(super().cursor(database, token), self._rival)


def decode(m: EventHubMapping, events: list[func.EventHubEvent]) -> DecodedBatch:
    return decode_batch(events, m, namespace="test.servicebus.windows.net", max_event_bytes=1 << 20)


def test_two_first_deliveries_racing_on_two_connections_lose_transiently(tmp_path: Path) -> None:
    """No watermark row yet. Delivery A reads none; delivery B, on another connection in another thread,
    commits its first row; A's insert then violates the key. That is a harmless race: A raises
    TransientError (the host retries), and A's retry skips every event B applied."""
    data = tmp_path / "data"
    ing = EventHubIngestor(settings_for(mapping_env(1, data)))
    m = ing.mapping(1)
    events = batch(source_events(0, 25))
    rival_results: list[BatchResult] = []
    plain = ing.sink  # the rival: its own cursor on the ingestor's connection to the file
    racer = threading.Thread(target=lambda: rival_results.append(plain.write_batch(m, decode(m, events))))
    ing.sink = MotherDuckSink(_RacingConnections(data, racer))
    with pytest.raises(TransientError, match="wrote its first watermark meanwhile"):
        ing.ingest(m, events)
    assert [r.written for r in rival_results] == [25]
    ing.sink = plain
    retry = ing.ingest(m, events)  # the host retries the loser's batch
    assert retry is not None and (retry.written, retry.skipped) == (0, 25)
    ing.close()
    assert rows(data, "SELECT count(*), count(DISTINCT sequence_number) FROM lake.raw.events_1") == [(25, 25)]
