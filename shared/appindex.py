"""The function app as the worker indexes it: name -> ``Function`` (bindings, settings, user callable).

``FunctionApp.get_functions()`` may be called only once per app object (the library remembers names
across calls and rejects the second call), so everything that needs the functions (dev host, demo,
tests, benchmarks) goes through this cached accessor.
"""

from __future__ import annotations

import threading
from typing import Any

import azure.functions as func

_cache: dict[int, dict[str, Any]] = {}
_lock = threading.Lock()


def indexed_functions(app: func.FunctionApp) -> dict[str, Any]:
    """``{function name: azure.functions.decorators.core.Function}`` for ``app``, built once."""
    with _lock:
        found = _cache.get(id(app))
        if found is None:
            found = {str(f.get_function_name()): f for f in app.get_functions()}
            _cache[id(app)] = found
        return found


def user_function(app: func.FunctionApp, name: str) -> Any:
    """The plain callable the worker would invoke for function ``name``."""
    functions = indexed_functions(app)
    if name not in functions:
        raise KeyError(f"no function named {name!r}; the app has {', '.join(sorted(functions))}")
    return functions[name].get_user_function()
