"""Cold start: ``python -m bench.cold_start [--redis-url URL] [--top 15]``.

On Flex Consumption a new instance imports ``function_app`` and then runs its first batch. Each figure comes
from a fresh Python process, as a new instance starts:

- ``import_ms``: ``import function_app`` (its settings, the Functions library, the decorators);
- ``top_imports``: the modules that cost most, cumulative, from ``python -X importtime``;
- ``eventhubs``: the first Event Hubs batch (1,000 events) into a new local DuckDB file: the import of the
  ingestion code, the connection, the table checks and creation, the first transaction; then a second batch
  (already warm) for comparison. pandas, which is installed here for chDB but not deployed, is hidden (pyarrow
  would import it on its first use: about 230 ms that an instance in Azure does not pay);
- ``enrich``: the first engagement batch (1,000 events) with embedded chDB and Redis: the import of the
  enrichment code and chDB, the schema, the script load; then a second batch. In Azure the warehouse is a
  ClickHouse server (clickhouse-connect): the embedded engine's start is a local cost only.
- ``forbidden_modules_loaded``: what of the CLI, dashboard, chDB, Rich and typer the import pulled in (none).

Prints JSON; the goal is ``import_ms + eventhubs.first_batch_ms`` under 1.5 s on a small machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Modules the functions never need on their hot path: importing function_app must not load them.
FORBIDDEN = ("chdb", "typer", "rich", "shared.cli", "shared.dashboard", "shared.demo", "shared.simulate")

_IMPORT = """
import json, sys, time
started = time.perf_counter()
import function_app
elapsed = time.perf_counter() - started
forbidden = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in {forbidden!r}))
print(json.dumps({{"import_ms": elapsed * 1000, "forbidden_modules_loaded": forbidden}}))
"""

_EVENTHUBS = """
import json, sys, time
# pandas is not deployed (chDB, the local stand-in, brings it here), and pyarrow imports it on its first use
# when it is installed: hidden, so this process loads what an instance in Azure loads.
class NotDeployed:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotDeployed())
started = time.perf_counter()
import function_app
imported = time.perf_counter()
from bench.eventhubs_ingest import make_bodies
from datetime import UTC, datetime, timedelta
from shared.appindex import user_function
from shared.eventhubs.hostshape import PartitionInfo, SourceEvent, to_function_batch
bodies = make_bodies(2000)
partition = PartitionInfo("0", "bench", "$Default", "bench.servicebus.windows.net")
t0 = datetime(2026, 11, 22, tzinfo=UTC)
def batch(first):
    return to_function_batch([SourceEvent(body=bodies[i], sequence_number=i, offset=str(i), enqueued_time=t0 +
        timedelta(milliseconds=i), partition_key=None, properties={{}}) for i in range(first, first + 1000)], partition)
first, second = batch(0), batch(1000)
fn = user_function(function_app.app, "eventhub_to_motherduck_1")
a = time.perf_counter(); fn(first); b = time.perf_counter(); fn(second); c = time.perf_counter()
print(json.dumps({{"import_ms": (imported - started) * 1000, "first_batch_ms": (b - a) * 1000,
    "second_batch_ms": (c - b) * 1000}}))
"""

_ENRICH = """
import json, time
started = time.perf_counter()
import function_app
imported = time.perf_counter()
import random
from shared.demo.engagement import Collect, content_rows, engagement_rows, registered
from shared.engagement.kafka_io import trigger_batch
rng = random.Random(1)
now_ms = int(time.time() * 1000)
contents = content_rows(rng, 500, now_ms - 3_600_000)
rows = engagement_rows(rng, [c["id"] for c in contents], 2000, first_id=1, now_ms=now_ms, spread_ms=120_000)
stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms // 1000))
def batch(values, topic):
    n = len(values)
    return trigger_batch(values=values, topics=[topic] * n, partitions=[0] * n, offsets=list(range(n)),
        keys=[None] * n, timestamps=[stamp] * n)
content = batch([json.dumps(c).encode() for c in contents], function_app.settings.topic_content)
first = batch([json.dumps(r).encode() for r in rows[:1000]], function_app.settings.topic_engage)
second = batch([json.dumps(r).encode() for r in rows[1000:]], function_app.settings.topic_engage)
enrich = registered("engagement_enrich")
a = time.perf_counter(); enrich(events=first, out=Collect()); b = time.perf_counter()
enrich(events=second, out=Collect()); c = time.perf_counter()
registered("engagement_content_cdc")(events=content, out=Collect())
print(json.dumps({{"import_ms": (imported - started) * 1000, "first_batch_ms": (b - a) * 1000,
    "second_batch_ms": (c - b) * 1000}}))
"""


def _python(code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )


def _last_json(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def top_imports(env: dict[str, str], top: int) -> list[dict[str, Any]]:
    """The ``top`` most expensive imports of ``function_app`` (cumulative ms), from ``-X importtime``."""
    done = _python("import function_app", env, "-X", "importtime")
    rows: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if cumulative.strip().isdigit():
            rows.append((int(cumulative), name.rstrip()))
    rows.sort(reverse=True)
    return [
        {"module": name.strip(), "depth": (len(name) - len(name.lstrip())) // 2, "ms": round(us / 1000, 1)}
        for us, name in rows[:top]
    ]


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("STREAMDUCK_TEST_REDIS_URL", "redis://127.0.0.1:16379/0")
    )
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        run = Path(tmp).name.replace("-", "_")
        env = {
            **os.environ,
            "EVENTHUBNAME_1": "bench",
            "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
            "MOTHERDUCK_1_DATABASE": "bench",
            "MOTHERDUCK_1_SCHEMA": "raw",
            "MOTHERDUCK_1_TABLE": "events",
            "STREAMDUCK_DATA_DIR": str(Path(tmp) / "duck"),
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": f"bench:{run}:",
            "CLICKHOUSE_CHDB_PATH": str(Path(tmp) / "chdb"),
            "CLICKHOUSE_DATABASE": f"bench_{run}",
        }
        env.pop("MOTHERDUCK_TOKEN", None)
        env.pop("motherduck_token", None)
        imported = _last_json(_python(_IMPORT.format(forbidden=FORBIDDEN), env).stdout)
        eventhubs = _last_json(_python(_EVENTHUBS.format(), env).stdout)
        enrich = _last_json(_python(_ENRICH.format(), env).stdout)
        imports = top_imports(env, args.top)
        _cleanup(args.redis_url, run)
    return {
        "benchmark": "cold_start",
        "python": sys.version.split()[0],
        "import_ms": round(imported["import_ms"], 1),
        "forbidden_modules_loaded": imported["forbidden_modules_loaded"],
        "eventhubs": _rounded(eventhubs),
        "import_and_first_eventhubs_batch_ms": round(imported["import_ms"] + eventhubs["first_batch_ms"], 1),
        "enrich": _rounded(enrich),
        "import_and_first_enrich_batch_ms": round(imported["import_ms"] + enrich["first_batch_ms"], 1),
        "top_imports": imports,
        "cpu_count": os.cpu_count(),
    }


def _cleanup(redis_url: str, run: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"bench:{run}:*", count=1000):
        client.delete(key)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
