"""The functions ``function_app.py`` registers, as the demo calls them.

The demo hands its traffic to the registered functions the way the worker invokes them. It does not import the
app itself: the dev host finds it and its functions (:func:`shared.devhost.functions.import_app`,
:func:`shared.devhost.functions.discover`), with their bindings resolved against the process environment. The
app reads its settings from that environment when it is imported, so the caller makes it the demo's first
(``streamduck demo`` exports it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import azure.functions as func

from shared.devhost.functions import HostedFunction, TriggerKind, discover, import_app
from shared.errors import ConfigError

APP_MODULE = "function_app"
APP_DIR = Path(__file__).resolve().parents[2]  # the project folder, next to the ``shared`` package


def registered_functions(*, eventhub_functions: Sequence[str] | None = None) -> dict[str, HostedFunction]:
    """Every function of the app by name (the app is imported on first use).

    ``eventhub_functions``: the Event Hub-triggered functions the app must register. When it registered others
    (it was imported before the environment named these mappings), it is imported again.
    """
    try:
        found = _by_name(import_app(APP_MODULE, APP_DIR))
    except ConfigError:
        if eventhub_functions is None:
            raise
        # Registered from an earlier environment whose app settings are gone: register them anew.
        return _by_name(import_app(APP_MODULE, APP_DIR, reload=True))
    if eventhub_functions is not None:
        registered = sorted(f.name for f in found.values() if f.kind is TriggerKind.EVENT_HUB)
        if registered != sorted(eventhub_functions):
            return _by_name(import_app(APP_MODULE, APP_DIR, reload=True))
    return found


def _by_name(app: func.FunctionApp) -> dict[str, HostedFunction]:
    return {f.name: f for f in discover(app, os.environ)}
