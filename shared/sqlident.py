"""Validation and quoting of SQL identifiers that come from configuration.

Values are always bound as parameters; identifiers (database, schema, table names) cannot be, so they are
validated against a conservative pattern *and* quoted before they reach SQL.
"""

from __future__ import annotations

import re

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
IDENTIFIER_RULE = (
    "letters, digits and underscores, starting with a letter or underscore, at most 63 characters"
)


def is_identifier(name: str) -> bool:
    """True when ``name`` is safe to use as an SQL identifier."""
    return bool(IDENTIFIER_RE.fullmatch(name))


def quote_ident(name: str) -> str:
    """Return ``name`` double-quoted for SQL, after validating it.

    >>> quote_ident("events")
    '"events"'
    """
    if not is_identifier(name):
        raise ValueError(f"invalid SQL identifier {name!r}: use {IDENTIFIER_RULE}, for example `raw_events`")
    return f'"{name}"'


def qualified(*parts: str) -> str:
    """``db.schema.table`` with each part validated and quoted."""
    return ".".join(quote_ident(p) for p in parts)
