"""Every Bicep file of infra/ parses (pycep-parser: syntax only, so no Bicep CLI is needed).

pycep cannot parse a few newer constructs (filtered loops ``[for ...: if (...)]``, lambdas, user functions,
object spread, ``cidrSubnet``); the infrastructure avoids them, and this test keeps it that way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .infra_helpers import BICEP_FILES, INFRA, MAIN_BICEP, parse_bicep, walk


def test_infra_has_the_expected_bicep_files() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert MAIN_BICEP in BICEP_FILES
    for module in ("app/function.bicep", "app/eventhubs.bicep", "app/keyvault.bicep", "app/rbac.bicep"):
        assert module in names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    tree = parse_bicep(path)
    assert tree.get("resources") or tree.get("modules") or tree.get("outputs"), (
        f"{path.name} declares nothing"
    )


def test_every_local_module_path_exists() -> None:
    for path in BICEP_FILES:
        for name, module in parse_bicep(path).get("modules", {}).items():
            target = module["detail"]["path"]
            assert not target.startswith("br"), (
                f"{path.name}: module {name} uses a registry module ({target})"
            )
            assert (path.parent / target).is_file(), f"{path.name}: module {name} points to missing {target}"


def test_loaded_files_exist() -> None:
    for path in BICEP_FILES:
        for node in walk(parse_bicep(path)):
            if isinstance(node, dict) and node.get("type") in {"load_json_content", "load_text_content"}:
                target = node["parameters"]["file_path"]
                assert (path.parent / target).is_file(), f"{path.name} loads missing {target}"
