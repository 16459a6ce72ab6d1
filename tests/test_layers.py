"""The packages of ``shared`` form layers without loops: no import cycle, and no import runs back up.

The import graph is read from the source with :mod:`ast`, so every import counts: at module level, inside
functions (the lazy imports that keep cold starts short) and under ``TYPE_CHECKING``. A module may import its own
package and the layers below it; the packages of one layer are independent of each other. The same table is in
``docs/architecture.md`` (section "Layers"), which this test keeps in step.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "shared"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Low to high. ``shared`` is the package's own ``__init__`` (the version), ``__main__`` is ``python -m shared``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("shared", "errors", "sqlident", "ncrontab", "timespan", "clock", "telemetry", "appindex"),
    ("settings",),
    ("kafkaconfig", "duck"),
    ("eventhubs", "engagement"),
    ("simulate",),
    ("devhost",),
    ("readmodel",),
    ("demo", "verify"),
    ("dashboard",),
    ("cli",),
    ("__main__",),
)

# The only module that imports the function app: finding its functions is the dev host's job.
APP_IMPORTER = "shared.devhost.functions"
_DYNAMIC_IMPORTS = {"import_module", "reload", "__import__"}

Graph = dict[str, set[str]]


# --------------------------------------------------------------------------------------- the graph


def module_names(package: Path) -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``package`` (a package is named by its ``__init__``)."""
    names: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names one import statement asks for (``from a import b`` gives ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        base = here[: len(here) - node.level + 1]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    return [origin, *(f"{origin}.{alias.name}" for alias in node.names)]


def import_graph(package: Path) -> Graph:
    """Module -> the package's modules it imports, anywhere in its file."""
    modules = module_names(package)
    graph: Graph = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _imported(node, module, path.name == "__init__.py")
            origin = names[0]
            # ``from a import b`` imports module ``a.b`` when there is one, else the name ``b`` of module ``a``.
            found = [n for n in names[1:] if n in modules] if isinstance(node, ast.ImportFrom) else []
            for name in found or ([origin] if isinstance(node, ast.ImportFrom) else names):
                if name in modules and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def layer_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """(layer index, package name) of ``shared.<package>...``; ``None`` when the table does not name it."""
    parts = module.split(".")
    package = parts[1] if len(parts) > 1 else parts[0]
    for index, names in enumerate(layers):
        if package in names:
            return index, package
    return None


# --------------------------------------------------------------------------------------- the checks


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_violations(graph: Mapping[str, Iterable[str]], layers: Sequence[Sequence[str]]) -> list[str]:
    """Imports that run back up (or sideways to another package of the same layer), and unplaced modules."""
    problems: list[str] = []
    for module in sorted(graph):
        source = layer_of(module, layers)
        if source is None:
            problems.append(f"{module} is in no layer: add its package to LAYERS and to docs/architecture.md")
            continue
        for target in sorted(graph[module]):
            destination = layer_of(target, layers)
            if destination is None or destination[1] == source[1]:
                continue  # an unplaced target is reported as a module of its own
            if destination[0] > source[0]:
                problems.append(f"{module} imports {target}: {destination[1]} is above {source[1]}")
            elif destination[0] == source[0]:
                problems.append(f"{module} imports {target}: {destination[1]} is beside {source[1]}")
    return problems


# --------------------------------------------------------------------------------------- shared


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE)


def test_no_import_cycles(graph: Graph) -> None:
    assert cycles(graph) == []


def test_imports_only_run_down_the_layers(graph: Graph) -> None:
    assert layer_violations(graph, LAYERS) == []


def test_every_layer_names_an_existing_package(graph: Graph) -> None:
    present = {layer_of(module, LAYERS) for module in graph}
    named = {(index, name) for index, names in enumerate(LAYERS) for name in names}
    assert named - present == set(), "LAYERS names packages that do not exist"


def test_only_the_dev_host_imports_the_function_app() -> None:
    for module, path in module_names(PACKAGE).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert "function_app" not in names, f"{module} imports function_app"
            if isinstance(node, ast.Call):
                called = node.func
                name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
                if name in _DYNAMIC_IMPORTS:
                    assert module == APP_IMPORTER, f"{module} imports a module by name ({name})"


def test_the_architecture_document_has_the_same_layers() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"^\| \d+ \|", line)]
    documented = [tuple(re.findall(r"`([^`]+)`", row.split("|")[2])) for row in rows]
    assert documented == [tuple(names) for names in reversed(LAYERS)]


# --------------------------------------------------------------------------------------- the check itself


def test_the_checks_find_a_cycle_and_an_import_back_up(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "errors.py": "",
        "settings.py": "from shared.errors import Error\n",
        "duck/__init__.py": "",
        "duck/tables.py": "def f():\n    from shared.eventhubs.sink import Clock  # runs back up\n",
        "eventhubs/__init__.py": "",
        "eventhubs/sink.py": "from shared.duck import tables\nfrom . import ingest\n",
        "eventhubs/ingest.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sink import X\n",
    }
    for name, text in files.items():
        path = tmp_path / "shared" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    graph = import_graph(tmp_path / "shared")
    assert graph["shared.eventhubs.sink"] == {"shared.duck.tables", "shared.eventhubs.ingest"}
    assert cycles(graph) == [["shared.duck.tables", "shared.eventhubs.ingest", "shared.eventhubs.sink"]]
    layers = (("shared", "errors"), ("settings",), ("duck",), ("eventhubs",))
    assert layer_violations(graph, layers) == [
        "shared.duck.tables imports shared.eventhubs.sink: eventhubs is above duck"
    ]
    assert layer_violations(graph, (("shared", "errors"), ("settings",), ("duck", "eventhubs"))) == [
        "shared.duck.tables imports shared.eventhubs.sink: eventhubs is beside duck",
        "shared.eventhubs.sink imports shared.duck.tables: duck is beside eventhubs",
    ]
    assert layer_violations(graph, layers[:-1]) == [
        "shared.eventhubs is in no layer: add its package to LAYERS and to docs/architecture.md",
        "shared.eventhubs.ingest is in no layer: add its package to LAYERS and to docs/architecture.md",
        "shared.eventhubs.sink is in no layer: add its package to LAYERS and to docs/architecture.md",
    ]
