"""docs/architecture.md's metrics table is the catalog's, row for row: the documented names, kinds, units,
attributes and meanings cannot drift from what the code emits."""

from __future__ import annotations

from shared.telemetry import catalog
from tests.conftest import ROOT


def catalog_table() -> str:
    lines = ["| Metric | Kind | Unit | Attributes | Meaning |", "|---|---|---|---|---|"]
    for m in catalog.ALL:
        attributes = ", ".join(f"`{a}`" for a in m.attributes)
        lines.append(f"| `{m.name}` | {m.kind.value} | `{m.unit}` | {attributes} | {m.description} |")
    return "\n".join(lines)


def test_architecture_doc_lists_exactly_the_catalog() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert "\n".join(rows) == catalog_table(), "regenerate the table from catalog_table()"


def test_catalog_names_and_attribute_keys_are_unique_and_namespaced() -> None:
    assert len(catalog.NAMES) == len(catalog.ALL)
    for m in catalog.ALL:
        assert m.name.startswith("streamduck.")
        assert all(a.startswith("streamduck.") for a in m.attributes)
        assert len(set(m.attributes)) == len(m.attributes)
