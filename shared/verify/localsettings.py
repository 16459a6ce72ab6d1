"""The ``Values`` of a Functions ``local.settings.json`` (what ``azd provision``'s hook writes) as settings."""

from __future__ import annotations

import json
from pathlib import Path

from shared.errors import ConfigError

OPTION = "--local-settings"


def read_local_settings(path: Path) -> dict[str, str]:
    """``Values`` of ``path`` as strings; :class:`ConfigError` naming the option when it cannot be used."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError({OPTION: f"{path} does not exist"}) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError({OPTION: f"cannot read {path}: {exc}"}) from None
    except json.JSONDecodeError as exc:
        raise ConfigError({OPTION: f"{path} is not JSON: {exc}"}) from None
    values = document.get("Values") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigError({OPTION: f'{path} has no "Values" object (the local.settings.json layout)'})
    if document.get("IsEncrypted") is True:
        raise ConfigError(
            {OPTION: f"{path} is encrypted (IsEncrypted: true); decrypt it with `func settings decrypt`"}
        )
    return {str(k): "" if v is None else str(v) for k, v in values.items()}
