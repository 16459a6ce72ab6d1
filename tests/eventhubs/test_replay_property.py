"""Property: whatever the host does (replays, any split, failures between insert and commit, restarts),
the table ends up holding exactly the distinct events, each once, with its own body."""

from __future__ import annotations

import json

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.duck import tables
from shared.errors import TransientError
from shared.eventhubs.ingest import EventHubIngestor
from shared.eventhubs.sink import MotherDuckSink
from tests.eventhubs.helpers import batch, mapping_env, rows, settings_for, source_events

# slow: hypothesis replays many delivery schedules (seconds); left out of `make test-unit`.
pytestmark = pytest.mark.slow

PARTITIONS = ("0", "1", "2")
EVENTS_PER_PARTITION = 60


class InjectedCrash(duckdb.IOException):
    """Raised inside the transaction after the inserts, before COMMIT."""


step = st.tuples(
    st.sampled_from(PARTITIONS),
    st.integers(
        min_value=0, max_value=30
    ),  # how far behind the checkpoint the delivery starts (replay depth)
    st.integers(min_value=1, max_value=25),  # batch length
    st.sampled_from(["ok", "ok", "ok", "fail", "restart"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_any_replay_schedule_leaves_exactly_the_distinct_events(
    tmp_path_factory: object, steps: list[tuple[str, int, int, str]]
) -> None:
    data_dir = tmp_path_factory.mktemp("prop") / "data"  # type: ignore[attr-defined]
    env = mapping_env(1, data_dir)
    stream = {
        p: source_events(0, EVENTS_PER_PARTITION, body=lambda i, p=p: json.dumps({"p": p, "n": i}).encode())
        for p in PARTITIONS
    }
    checkpoint = dict.fromkeys(PARTITIONS, 0)  # the host's checkpoint: next position to deliver
    crash = {"now": False}

    def before_commit(cur: duckdb.DuckDBPyConnection) -> None:
        if crash["now"]:
            raise InjectedCrash("instance died before commit")

    def start() -> EventHubIngestor:
        ing = EventHubIngestor(settings_for(env))
        ing.sink = MotherDuckSink(ing.connections, before_commit=before_commit)
        return ing

    ing = start()
    m = ing.mapping(1)
    for partition, behind, length, what in steps:
        if what == "restart":  # process restart: new connections, caches gone
            ing.close()
            tables.forget_ensured()
            ing = start()
            continue
        begin = max(0, checkpoint[partition] - behind)
        chunk = stream[partition][begin : begin + length]
        if not chunk:
            continue
        crash["now"] = what == "fail"
        try:
            ing.ingest(m, batch(chunk, partition=partition))
        except TransientError:
            assert what == "fail"
            continue  # no checkpoint: the host will deliver from the old position again
        # success: the host checkpoints after the batch (it may also have replayed older events)
        checkpoint[partition] = max(checkpoint[partition], begin + len(chunk))

    crash["now"] = False
    for partition in PARTITIONS:  # drain: the host keeps delivering until the end of each partition
        ing.ingest(
            m,
            batch(stream[partition][checkpoint[partition] :] or stream[partition][-1:], partition=partition),
        )
    ing.close()

    got = rows(
        data_dir, "SELECT partition_id, sequence_number, body->>'p', (body->>'n')::INT FROM lake.raw.events_1"
    )
    expected = sorted((p, i, p, i) for p in PARTITIONS for i in range(EVENTS_PER_PARTITION))
    assert sorted(got) == expected
    marks = rows(
        data_dir, "SELECT partition_id, sequence_number FROM lake.raw._streamduck_watermarks ORDER BY 1"
    )
    assert marks == [(p, EVENTS_PER_PARTITION - 1) for p in PARTITIONS]
