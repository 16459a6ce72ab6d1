"""A new Functions instance imports function_app before its first batch: only what the functions need.

The CLI, the dashboard, the demo and the simulator, Rich, typer and the embedded ClickHouse engine are local
tools; importing any of them at start-up would add their import time to every cold start in Azure.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.cold_start import FORBIDDEN
from tests.conftest import ROOT


def test_importing_function_app_loads_no_local_tool() -> None:
    code = (
        "import json, sys; import function_app; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {{'chdb', 'typer', 'rich'}} "
        f"or any(m == f or m.startswith(f + '.') for f in {FORBIDDEN!r}))))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "EVENTHUBNAME_1": "hub",
        "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
        "MOTHERDUCK_1_DATABASE": "db",
        "MOTHERDUCK_1_SCHEMA": "raw",
        "MOTHERDUCK_1_TABLE": "events",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []
    assert {"chdb", "typer", "rich", "shared.cli", "shared.dashboard"} <= set(FORBIDDEN)
