"""StreamDuck function app (Azure Functions, Python v2 programming model).

Bindings only: every function decodes nothing itself and calls into ``shared``. Settings are validated
when the worker indexes this module, so a misconfigured app fails at start-up with a message naming the
variable to fix instead of failing on the first event.
"""

from __future__ import annotations

import azure.functions as func

from shared.settings import load_settings

settings = load_settings()
app = func.FunctionApp()

# --- Event Hubs -> MotherDuck: one function per mapping (EVENTHUBNAME_N -> MOTHERDUCK_N_*) -------------
# (registered below by the Event Hubs section)

# --- Kafka engagement pipeline -----------------------------------------------------------------------
# (registered below by the engagement section)
