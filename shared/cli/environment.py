"""The environment a command runs with: the process environment plus ``.env`` files.

Precedence (highest first): ``--env-file PATH`` values, the process environment, ``./.env``. An explicit
``--env-file`` wins because the user named it on the command line; the implicit ``./.env`` never overrides
what the shell already exported (the earlier CLI's behaviour). Without ``--env-file``, the settings
``streamduck demo`` chose itself (``.streamduck/demo.env``) fill in last what is still unset
(:func:`shared.demo.state.fill_from_demo`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from shared.demo.state import fill_from_demo
from shared.errors import ConfigError
from shared.settings import Settings, load_settings


def build_environ(env_file: Path | None, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge ``./.env``, the process environment and ``env_file`` (see the module docstring)."""
    environ: dict[str, str] = {}
    implicit = Path(".env")
    if env_file is None and implicit.is_file():
        environ.update(_read(implicit))
    environ.update(os.environ if base is None else base)
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError({"--env-file": f"{env_file} does not exist or is not a file"})
        environ.update(_read(env_file))
    else:
        fill_from_demo(environ)
    return environ


def _read(path: Path) -> dict[str, str]:
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def settings_from(environ: Mapping[str, str]) -> Settings:
    """Validated settings for ``environ`` (raises :class:`ConfigError` listing every problem)."""
    return load_settings(environ)


def export(environ: Mapping[str, str]) -> None:
    """Make ``environ`` the process environment, so ``function_app`` (which reads it at import) sees it."""
    for key, value in environ.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
