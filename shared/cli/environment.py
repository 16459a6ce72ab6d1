"""The environment a command runs with: the process environment plus ``.env`` and ``local.settings.json``.

Precedence (highest first):

1. files named on the command line: ``--env-file PATH``, then ``--local-settings PATH`` (verify);
2. the process environment;
3. ``./.env``;
4. ``./local.settings.json``'s ``Values`` (the file ``func start`` and the azd hook use).

A file named on the command line wins because the user asked for it on this very command; the implicit
files in the folder fill in what the shell did not export, and never override it. The implicit files are
read only when no file is named. Without ``--env-file``, the settings ``streamduck demo`` chose itself
(``.streamduck/demo.env``) fill in last what is still unset (:func:`shared.demo.state.fill_from_demo`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from shared.demo.state import fill_from_demo
from shared.errors import ConfigError
from shared.settings import Settings, load_settings

DOTENV = Path(".env")
LOCAL_SETTINGS = Path("local.settings.json")


def build_environ(
    env_file: Path | None,
    *,
    local_settings: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The merged settings (see the module docstring); ``base`` replaces the process environment."""
    environ: dict[str, str] = {}
    named = env_file is not None or local_settings is not None
    if not named and LOCAL_SETTINGS.is_file():
        environ.update(read_local_settings(LOCAL_SETTINGS, option=str(LOCAL_SETTINGS)))
    if not named and DOTENV.is_file():
        environ.update(_read(DOTENV))
    environ.update(os.environ if base is None else base)
    if local_settings is not None:
        environ.update(read_local_settings(local_settings))
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError({"--env-file": f"{env_file} does not exist or is not a file"})
        environ.update(_read(env_file))
    else:
        fill_from_demo(environ)
    return environ


def _read(path: Path) -> dict[str, str]:
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def read_local_settings(path: Path, *, option: str = "--local-settings") -> dict[str, str]:
    """``Values`` of a Functions ``local.settings.json`` as strings; :class:`ConfigError` naming ``option``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError({option: f"{path} does not exist"}) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError({option: f"cannot read {path}: {exc}"}) from None
    except json.JSONDecodeError as exc:
        raise ConfigError({option: f"{path} is not JSON: {exc}"}) from None
    values = document.get("Values") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigError({option: f'{path} has no "Values" object (the local.settings.json layout)'})
    if document.get("IsEncrypted") is True:
        raise ConfigError(
            {option: f"{path} is encrypted (IsEncrypted: true); decrypt it with `func settings decrypt`"}
        )
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def settings_from(environ: Mapping[str, str]) -> Settings:
    """Validated settings for ``environ`` (raises :class:`ConfigError` listing every problem)."""
    return load_settings(environ)


def export(environ: Mapping[str, str]) -> None:
    """Make ``environ`` the process environment, so ``function_app`` (which reads it at import) sees it."""
    for key, value in environ.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
