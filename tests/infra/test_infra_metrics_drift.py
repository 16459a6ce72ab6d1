"""The workbook and the alert rules read exactly the metrics the code emits, nothing else.

Source of truth: :mod:`shared.telemetry.catalog` (``ALL``, ``NAMES``, each metric's attribute keys), read at test
time. What the dashboards read: the KQL of every ``query`` in infra/app/workbook.json and of every
``scheduledQueryRules`` criterion in infra/app/observability.bicep. In a query, a string literal
``"streamduck.…"`` inside ``Properties[...]`` / ``customDimensions[...]`` is an attribute key; every other
``"streamduck.…"`` literal is a metric name (so ``Name startswith "streamduck.eventhubs"`` fails: names are
matched whole). Checked both ways:

- every metric name and attribute key a query uses is in the catalog (a renamed metric breaks a tile);
- every catalog metric is read by the workbook or an alert, and every attribute key by some query (a new
  metric without a tile fails until one reads it);
- a query uses only attribute keys that the metrics it reads carry;
- queries read ``AppMetrics`` or ``customMetrics`` only: no parsing of log lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pytest

from shared.telemetry import catalog

from .infra_helpers import INFRA, Json, body, parse_bicep, walk

WORKBOOK = INFRA / "app" / "workbook.json"
OBSERVABILITY = INFRA / "app" / "observability.bicep"

_ATTRIBUTE = re.compile(r'(?:Properties|customDimensions)\s*\[\s*"([^"]*)"\s*\]')
_STREAMDUCK_LITERAL = re.compile(r'"(streamduck\.[^"]*)"')
_METRIC_TABLES = re.compile(r"^\s*(AppMetrics|customMetrics)\b")
# Log tables and text parsing: what the dashboards used before the metrics, and must not come back.
_FORBIDDEN = re.compile(
    r"\b(AppTraces|traces|AppRequests|requests|AppExceptions|exceptions|extract|parse|parse_json|"
    r"matches\s+regex|extract_all)\b"
)


@dataclass(frozen=True)
class Query:
    where: str  # e.g. "workbook.json: eventhubs-lag"
    text: str

    @property
    def attributes(self) -> set[str]:
        return set(_ATTRIBUTE.findall(self.text))

    @property
    def metrics(self) -> set[str]:
        return set(_STREAMDUCK_LITERAL.findall(_ATTRIBUTE.sub("", self.text)))


def _bicep_string(raw: str) -> str:
    """A Bicep string literal's value (pycep keeps the escapes as written)."""
    escapes = {"n": "\n", "r": "\r", "t": "\t"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), raw)


def workbook_queries() -> list[Query]:
    document = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return [
        Query(f"{WORKBOOK.name}: {item.get('name')}", item["content"]["query"])
        for item in walk(document["items"])
        if isinstance(item, dict) and isinstance(item.get("content"), dict) and "query" in item["content"]
    ]


def alert_queries() -> list[Query]:
    queries = []
    for name, resource in parse_bicep(OBSERVABILITY)["resources"].items():
        if resource["type"] != "Microsoft.Insights/scheduledQueryRules":
            continue
        for criterion in body(resource)["properties"]["criteria"]["allOf"]:
            queries.append(Query(f"{OBSERVABILITY.name}: {name}", _bicep_string(criterion["query"])))
    return queries


def all_queries() -> list[Query]:
    return workbook_queries() + alert_queries()


# ------------------------------------------------------------------------------------------------ the checks
def unknown_uses(queries: Iterable[Query], metrics: Iterable[catalog.Metric]) -> list[str]:
    """Metric names and attribute keys the queries use that the catalog does not define (or not together)."""
    by_name = {m.name: m for m in metrics}
    known_attributes = {a for m in by_name.values() for a in m.attributes}
    problems = []
    for query in queries:
        for name in sorted(query.metrics - set(by_name)):
            problems.append(f"{query.where}: metric {name!r} is not in shared/telemetry/catalog.py")
        for key in sorted(query.attributes - known_attributes):
            problems.append(f"{query.where}: attribute {key!r} is not in shared/telemetry/catalog.py")
        carried = {a for n in query.metrics if n in by_name for a in by_name[n].attributes}
        for key in sorted((query.attributes & known_attributes) - carried):
            problems.append(
                f"{query.where}: attribute {key!r} is not recorded on {sorted(query.metrics & set(by_name))}"
            )
    return problems


def unused(queries: Iterable[Query], metrics: Iterable[catalog.Metric]) -> list[str]:
    """Catalog metrics no query reads and attribute keys no query uses."""
    queries = list(queries)
    metrics = list(metrics)
    read = {n for q in queries for n in q.metrics}
    used = {a for q in queries for a in q.attributes}
    problems = [
        f"metric {m.name!r} ({m.description}) is read by no workbook tile and no alert"
        for m in metrics
        if m.name not in read
    ]
    problems += [
        f"attribute {a!r} is used by no query"
        for a in sorted({a for m in metrics for a in m.attributes} - used)
    ]
    return problems


def test_there_are_queries_in_the_workbook_and_the_alerts() -> None:
    assert len(workbook_queries()) >= 10
    assert len(alert_queries()) >= 4


def test_every_metric_and_attribute_queried_is_in_the_catalog() -> None:
    problems = unknown_uses(all_queries(), catalog.ALL)
    assert not problems, "\n".join(problems)


def test_every_catalog_metric_and_attribute_is_queried() -> None:
    problems = unused(all_queries(), catalog.ALL)
    assert not problems, "\n".join(
        [*problems, "fix: add a tile to infra/app/workbook.json or an alert to infra/app/observability.bicep"]
    )


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: q.where)
def test_queries_read_metrics_not_log_lines(query: Query) -> None:
    assert _METRIC_TABLES.match(query.text), f"{query.where} must start with AppMetrics or customMetrics"
    forbidden = _FORBIDDEN.findall(query.text)
    assert not forbidden, f"{query.where} reads logs or parses text: {forbidden}"
    assert not re.search(r"(Properties|customDimensions)\.", query.text), (
        f'{query.where}: read attributes as Properties["streamduck.x"] (dotted keys need brackets)'
    )
    assert query.metrics, f"{query.where} names no metric"


def test_catalog_names_are_what_azure_monitor_can_store() -> None:
    """Names and keys are plain dotted identifiers: the queries match them exactly, no escaping needed."""
    for metric in catalog.ALL:
        assert re.fullmatch(r"streamduck(\.[a-z_]+)+", metric.name), metric.name
        for key in metric.attributes:
            assert re.fullmatch(r"streamduck\.[a-z_]+", key), key
    assert {m.name for m in catalog.ALL} == catalog.NAMES


# ----------------------------------------------------------------- the check fails when either side changes
def _renamed(metrics: Iterable[catalog.Metric], old: str, new: str) -> list[catalog.Metric]:
    return [
        catalog.Metric(new if m.name == old else m.name, m.kind, m.unit, m.description, m.attributes)
        for m in metrics
    ]


def test_a_metric_renamed_in_the_code_fails_both_ways() -> None:
    metrics = _renamed(catalog.ALL, catalog.EH_LAG.name, "streamduck.eventhubs.end_to_end_lag")
    unknown = unknown_uses(all_queries(), metrics)
    assert any("'streamduck.eventhubs.lag' is not in" in p for p in unknown), unknown
    assert any("workbook.json: eventhubs-lag" in p for p in unknown)
    assert any("observability.bicep: lagAlert" in p for p in unknown)
    assert unused(all_queries(), metrics) == [
        "metric 'streamduck.eventhubs.end_to_end_lag' (End-to-end lag: commit time minus the newest event's "
        "enqueued time, per batch.) is read by no workbook tile and no alert"
    ]


def test_a_new_metric_or_attribute_without_a_tile_fails() -> None:
    extra = catalog.Metric(
        "streamduck.eventhubs.bytes.written",
        catalog.Kind.COUNTER,
        "By",
        "Bytes written.",
        ("streamduck.table",),
    )
    assert unused(all_queries(), [*catalog.ALL, extra]) == [
        "metric 'streamduck.eventhubs.bytes.written' (Bytes written.) is read by no workbook tile and no alert",
        "attribute 'streamduck.table' is used by no query",
    ]


def test_a_query_on_an_attribute_the_metric_lacks_fails() -> None:
    query = Query(
        "example",
        'AppMetrics | where Name == "streamduck.job.runs" | extend r = tostring(Properties["streamduck.reason"])',
    )
    assert unknown_uses([query], catalog.ALL) == [
        "example: attribute 'streamduck.reason' is not recorded on ['streamduck.job.runs']"
    ]
    prefix = Query("prefix", 'AppMetrics | where Name startswith "streamduck.eventhubs"')
    assert unknown_uses([prefix], catalog.ALL) == [
        "prefix: metric 'streamduck.eventhubs' is not in shared/telemetry/catalog.py"
    ]


def _titles() -> Mapping[str, str]:
    document: Json = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    return {item["name"]: str(item["content"].get("title", "")) for item in document["items"]}


def test_workbook_has_the_tiles_operators_look_for() -> None:
    titles = " | ".join(_titles().values()).lower()
    for topic in (
        "ingestion rate",
        "dead-lettered events per mapping and reason",
        "replayed",
        "batch duration",
        "lag per mapping and partition",
        "watermark",
        "enrichment rate",
        "unknown content",
        "kafka dead-letter",
        "kafka lag",
        "clickhouse insert and redis update",
        "failed runs by outcome",
        "job duration",
        "items by action",
    ):
        assert topic in titles, f"workbook lacks a tile about {topic}"
