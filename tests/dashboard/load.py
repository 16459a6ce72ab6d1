"""Loads the stores of a dashboard test through the registered functions, then writes what they hold.

Run as ``python -m tests.dashboard.load OUT.json`` with the test's environment, in its own process: chDB lets
one process open a folder at a time, and the dashboard under test opens the same folder after this exits.

- Event Hubs: ``shared.demo.eventhubs.run_demo`` hands generated events (bad ones and host-style replays
  included) to the registered ``eventhub_to_motherduck_1``; the demo then fires the registered
  ``compact_motherduck`` timer once.
- Engagement: ``shared.demo.engagement.run_demo`` hands Debezium-shaped content and engagement batches to the
  registered handlers (ClickHouse rows, the content store and the leaderboard in Redis).

``OUT.json`` holds every current enriched row (id, event time, content id, engagement seconds as a decimal
string), read here with a query of its own, for the test to compare the dashboard's answers with.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENGAGEMENT_EVENTS = 6000  # 24 content items: more than the 20 the by-content panel shows
EVENTHUB_EVENTS = 400


def main(out: Path) -> None:
    from shared.demo.engagement import run_demo as engagement_demo
    from shared.demo.eventhubs import run_demo as eventhubs_demo
    from shared.engagement.clickhouse import Warehouse
    from shared.settings import load_settings

    settings = load_settings(dict(os.environ))
    eventhubs = eventhubs_demo(settings, events=EVENTHUB_EVENTS, seed=5)
    engagement = engagement_demo(settings, events=ENGAGEMENT_EVENTS, seed=9)
    rows = Warehouse.from_settings(settings).query(
        "SELECT id, toUnixTimestamp64Milli(event_ts), toString(content_id), toString(engagement_seconds) "
        "FROM {db}.engagement_enriched FINAL"
    )
    out.write_text(
        json.dumps(
            {
                "eventhubs": eventhubs,
                "engagement": engagement,
                "enriched": [[int(i), int(ts), cid, seconds] for i, ts, cid, seconds in rows],
            },
            default=str,
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
