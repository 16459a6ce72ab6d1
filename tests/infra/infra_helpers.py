"""Shared helpers of the infrastructure tests: repository paths, parsed Bicep, parameters, tools.

The Bicep CLI is not installable where these tests run, so the Bicep files are read with pycep-parser
(syntax tree as JSON). A tool the tests need that is missing fails the test with the command to install it.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN_BICEP = INFRA / "main.bicep"
FUNCTION_BICEP = INFRA / "app" / "function.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"
CHECKOV_CONFIG = INFRA / ".checkov.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"
EMULATOR_CONFIG = INFRA / "local" / "eventhubs-emulator" / "Config.json"
COMPOSE_LOCAL_SETTINGS = INFRA / "local" / "local.settings.compose.json"

BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

Json = Any  # pycep's JSON: nested dicts, lists, str, int, bool, None


def require_tool(name: str, install_hint: str) -> str:
    """Path of the executable ``name`` (this interpreter's venv first, then PATH); fails, never skips."""
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: {install_hint}", pytrace=False)
    return path


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()


@functools.cache
def parse_bicep(path: Path) -> Json:
    """The pycep JSON of one Bicep file (parsed once per test session)."""
    return _parser().parse(file_path=path)


def parameters() -> dict[str, Json]:
    """``parameters`` of infra/main.parameters.json, as name -> value."""
    document = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))
    return {name: entry["value"] for name, entry in document["parameters"].items()}


def mappings() -> list[dict[str, Json]]:
    """The mappings the default deployment provisions (element k is mapping N = k + 1)."""
    value = parameters()["mappings"]
    assert isinstance(value, list)
    return value


def body(resource: Json) -> Json:
    """The property object of a pycep resource or module, unwrapping loops and conditions."""
    config = resource["config"]
    while (
        isinstance(config, dict) and "config" in config and ("loop_type" in config or "condition" in config)
    ):
        config = config["config"]
    return config


def walk(node: Json) -> Iterator[Json]:
    """Every node of a pycep JSON tree, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def strings(node: Json) -> Iterator[str]:
    """Every string leaf (identifiers and literals look alike in pycep JSON)."""
    for item in walk(node):
        if isinstance(item, str):
            yield item


_INTERPOLATION = re.compile(r"\$\{[^}]*\}")


def as_template(name: str) -> str:
    """``EVENTHUBNAME_${i + 1}_CONSUMER_GROUP`` -> ``EVENTHUBNAME_{n}_CONSUMER_GROUP``."""
    return _INTERPOLATION.sub("{n}", name)
