"""Binding values as the host reads them: ``%NAME%`` app-setting expressions and values that name a setting.

Binding values of the form ``%NAME%`` are app-setting expressions; ``brokerList``, ``username``,
``password`` and ``connection`` name an app setting first and fall back to the literal value (the Kafka and
Event Hubs extensions' rule).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.errors import ConfigError

_EXPRESSION_RE = re.compile(r"%([^%]+)%")


def resolve_expression(value: str, environ: Mapping[str, str], *, where: str) -> str:
    """Replace every ``%NAME%`` in ``value`` by the app setting ``NAME`` (missing -> ConfigError)."""
    missing: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ or environ[name] == "":
            missing[name] = f"missing: referenced as %{name}% by {where}"
            return match.group(0)
        return environ[name]

    resolved = _EXPRESSION_RE.sub(substitute, value)
    if missing:
        raise ConfigError(missing)
    return resolved


def resolve_setting_name(value: str, environ: Mapping[str, str], *, where: str) -> str:
    """Binding values that name an app setting first (``brokerList``, ``username``, ...), else the literal."""
    if "%" in value:
        return resolve_expression(value, environ, where=where)
    return environ.get(value) or value
