"""The README documents every setting the code reads and the two commands CI and users rely on."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import MAPPING_VARIABLES, Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_names_every_fixed_setting() -> None:
    missing = [v for v in Settings.fixed_variables if f"`{v}`" not in README]
    assert missing == [], f"README configuration table lacks {missing}"


def test_readme_names_every_mapping_variable() -> None:
    for template in MAPPING_VARIABLES:
        assert f"`{template.replace('{n}', 'N')}`" in README


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command() -> None:
    assert "make demo" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make lint$", ci, re.MULTILINE)
    assert re.search(r"^make test\b", ci, re.MULTILINE)


def test_docs_say_nothing_about_this_machine() -> None:
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        assert "/work/" not in text and "/root/" not in text, path
