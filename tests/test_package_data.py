"""The files the package reads at run time ship with it, and the one copy it carries matches its source."""

from __future__ import annotations

import tomllib
from pathlib import Path

from shared.simulate.targets import SCHEMA_SQL

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "shared"
INIT_SQL = ROOT / "infra" / "local" / "postgres" / "init.sql"
INIT_SQL_COPY = PACKAGE / "simulate" / "init.sql"


def test_every_data_file_of_the_package_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["shared"]
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    data = {
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert data, "no data files found"
    assert sorted(str(p.relative_to(ROOT)) for p in data - shipped) == []


def test_the_simulators_init_sql_is_the_infra_file() -> None:
    """infra/local/postgres/init.sql is the source; the package carries it unchanged (copy it after an edit)."""
    assert INIT_SQL_COPY.read_bytes() == INIT_SQL.read_bytes(), (
        f"cp {INIT_SQL.relative_to(ROOT)} {INIT_SQL_COPY.relative_to(ROOT)}"
    )


def test_the_simulator_creates_the_tables_of_init_sql() -> None:
    script = INIT_SQL.read_text(encoding="utf-8")
    statements = SCHEMA_SQL.strip().split("\n\n")
    assert [s.split("(", 1)[0].strip() for s in statements] == [
        "CREATE TABLE IF NOT EXISTS content",
        "CREATE TABLE IF NOT EXISTS engagement_events",
    ]
    assert all(statement in script for statement in statements)
