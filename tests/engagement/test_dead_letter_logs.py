"""Dead-letter visibility: the workbook tile and the alert of ``infra/app/observability.bicep`` count what both
pipelines log when they park records (``N dead-lettered``), read from the Bicep, the workbook and the code."""

from __future__ import annotations

import ast
import json
import logging
import re
import uuid
from pathlib import Path

import pytest

from shared.engagement.functions import CONTENT_BATCH_LOG, ENRICH_BATCH_LOG
from tests.infra.infra_helpers import INFRA, body, parse_bicep

from .support import T0_MS, Env, dumps, engagement_row

ROOT = Path(__file__).resolve().parents[2]
EVENTHUBS_INGEST = ROOT / "shared" / "eventhubs" / "ingest.py"


def _bicep_string(raw: str) -> str:
    """The value of a Bicep string literal's text (pycep keeps the escapes as written)."""
    escapes = {"n": "\n", "r": "\r", "t": "\t"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), raw)


def _kql_verbatim(query: str, function: str) -> list[str]:
    """The verbatim string arguments (``@"..."``) of every ``function(...)`` call in a KQL query."""
    return [m.replace('""', '"') for m in re.findall(function + r'\(@"((?:[^"]|"")*)"', query)]


def alert_query() -> str:
    rules = [
        body(r)
        for r in parse_bicep(INFRA / "app" / "observability.bicep")["resources"].values()
        if r["type"] == "Microsoft.Insights/scheduledQueryRules"
    ]
    (rule,) = [r for r in rules if "dead-letter" in r["properties"]["displayName"]]
    (criterion,) = rule["properties"]["criteria"]["allOf"]
    return _bicep_string(criterion["query"])


def workbook_query() -> str:
    document = json.loads((INFRA / "app" / "workbook.json").read_text(encoding="utf-8"))
    (tile,) = [
        item["content"]
        for item in document["items"]
        if "dead-letter" in str(item["content"].get("title", "")).lower() and "query" in item["content"]
    ]
    query: str = tile["query"]
    return query


def eventhubs_log_format() -> str:
    """The format string of the Event Hubs batch log line, read from the source."""
    tree = ast.parse(EVENTHUBS_INGEST.read_text(encoding="utf-8"))
    found = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "dead-lettered" in node.value
    ]
    assert len(found) == 1, found
    return found[0]


def _fill(fmt: str, dead: int, name: str) -> str:
    """``fmt`` with ``%s`` -> ``name`` and the ``%d`` before ``dead-lettered`` -> ``dead`` (others distinct)."""
    placeholders = re.findall(r"%[sd]", fmt)
    dead_index = len(re.findall(r"%[sd]", fmt.split("dead-lettered")[0])) - 1
    values: list[object] = []
    for i, kind in enumerate(placeholders):
        values.append(name if kind == "%s" else (dead if i == dead_index else 100 + i))
    return fmt % tuple(values)


def _counted(query: str, message: str) -> tuple[int | None, str | None]:
    """What the query takes from one log line: the dead-lettered count (None: filtered out) and the source."""
    assert 'Message has "dead-lettered"' in query
    if not re.search(r"(?<![\w-])dead-lettered(?![\w-])", message):  # KQL `has`: a whole term
        return None, None
    (count_re,) = [r for r in _kql_verbatim(query, "extract") if "dead-lettered" in r]
    match = re.search(count_re, message)
    count = int(match.group(1)) if match else None
    sources = [r for r in _kql_verbatim(query, "extract") if "dead-lettered" not in r]
    source_match = re.search(sources[0], message) if sources else None
    return count, source_match.group(1) if source_match else None


FORMATS = {
    "eventhubs": (eventhubs_log_format(), "eventhub_to_motherduck_1"),
    "engagement_enrich": (ENRICH_BATCH_LOG, "engagement_enrich"),
    "engagement_content_cdc": (CONTENT_BATCH_LOG, "engagement_content_cdc"),
}


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_bicep_alert_and_workbook_count_every_dead_letter_log_line(fmt_name: str) -> None:
    fmt, function = FORMATS[fmt_name]
    assert "%d dead-lettered" in fmt
    for query in (alert_query(), workbook_query()):
        for dead in (0, 1, 37):
            count, source = _counted(query, _fill(fmt, dead, function))
            assert count == dead, (query, fmt)
            if "summarize" in query:  # the workbook splits the series by the first word: the function
                assert source == function
    assert "| where deadLettered > 0" in alert_query()


def test_engagement_functions_log_what_the_alert_counts(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """The real log lines of a batch with parked records, read with the Bicep's own expression."""
    s = env.settings
    env.create_topics(s.topic_content, s.topic_engage, s.topic_out)
    cid = str(uuid.uuid4())
    msgs: list[tuple[str | None, bytes | None]] = [
        (cid, dumps(engagement_row(1, cid, ts_ms=T0_MS - 30_000))),
        (None, b'{"id": 2, "content_id": '),
        (None, b"[1, 2]"),
        (cid, dumps(engagement_row(3, cid, ts_ms=T0_MS - 20_000))),
    ]
    content: list[tuple[str | None, bytes | None]] = [("garbage-key", None)]
    caplog.set_level(logging.INFO, logger="streamduck.engagement")
    env.call("engagement_enrich", env.send(s.topic_engage, msgs))
    env.call("engagement_content_cdc", env.send(s.topic_content, content))
    lines = [r.getMessage() for r in caplog.records if r.name == "streamduck.engagement"]
    by_function = {line.split()[0]: line for line in lines if "dead-lettered" in line}
    assert set(by_function) == {"engagement_enrich", "engagement_content_cdc"}, lines
    for query in (alert_query(), workbook_query()):
        assert _counted(query, by_function["engagement_enrich"])[0] == 2
        assert _counted(query, by_function["engagement_content_cdc"])[0] == 1
    assert sum(env.pipeline.warehouse.count_dead_letters().values()) == 3
