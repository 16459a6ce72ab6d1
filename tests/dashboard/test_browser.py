"""The dashboard in a real browser after `streamduck demo`: headless Chromium (Debian's ``chromium``) driven by
Playwright, on the page a user opens, in the folder the demo ran in (its settings come from
``.streamduck/demo.env``). Also the activity series against what the demo reported it wrote.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.cli import base_env, run_cli, start_cli, stop, wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EVENTS = 1200

pytestmark = pytest.mark.integration


@dataclass
class Demo:
    url: str
    folder: Path
    summary: dict[str, Any]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 - the local dashboard
        return json.load(answer)


@pytest.fixture(scope="module")
def demo(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("browser")
    prefix = f"test:browser{folder.name[-6:]}:"
    # Nothing configured but Redis (the test service): the demo chooses the rest and saves it for the dashboard.
    env = base_env(folder, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix, PYTHONUNBUFFERED="1", COLUMNS="80")
    done = run_cli(
        "demo", "--events", str(EVENTS), "--seed", "11", "--json", env=env, cwd=folder, timeout=300
    )
    assert done.code == 0, done.stderr[-3000:]
    log = folder / "dashboard.log"
    process = start_cli("dashboard", "--port", "0", env=env, cwd=folder, log=log)
    found: list[str] = []

    def listening() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        found.extend(re.findall(r"StreamDuck dashboard: (http://127\.0\.0\.1:\d+/)", log.read_text()))
        return bool(found)

    try:
        wait_for(listening, timeout=60, what="the dashboard")
        yield Demo(found[0], folder, done.json())
    finally:
        stop(process)
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def test_activity_counts_what_the_demo_wrote(demo: Demo) -> None:
    data = _get(demo.url + "api/activity?minutes=15")
    seconds = data["bucket_seconds"]
    assert data["bucket_seconds"] == 15 and data["errors"] == {}
    (mapping,) = demo.summary["pipelines"]["eventhubs"]["mappings"]
    (ingest,) = data["ingest"]
    assert ingest["metric"] == "streamduck.eventhubs.events.written"
    assert ingest["label"] == f"telemetry \u2192 {mapping['target']}"
    assert round(sum(v for _, v in ingest["points"]) * seconds) == mapping["rows"]
    engagement = demo.summary["pipelines"]["engagement"]
    known, unknown = data["enrichment"]
    assert (known["metric"], unknown["metric"]) == (
        "streamduck.engagement.records.enriched",
        "streamduck.engagement.records.unknown_content",
    )
    assert round(sum(v for _, v in known["points"]) * seconds) == (
        engagement["clickhouse_rows"] - engagement["clickhouse_unknown_content_rows"]
    )
    assert (
        round(sum(v for _, v in unknown["points"]) * seconds) == engagement["clickhouse_unknown_content_rows"]
    )
    (lag,) = data["lag"]
    assert lag["metric"] == "streamduck.eventhubs.lag" and lag["points"]
    # Each batch's lag is its commit time minus its newest enqueued time: bounded by how long the demo ran.
    assert all(abs(v) <= demo.summary["pipelines"]["eventhubs"]["seconds"] + 5 for _, v in lag["points"])
    assert 0 <= data["freshness"]["seconds_ago"] < 600


def test_the_page_shows_titles_event_hubs_and_charts_with_points(demo: Demo) -> None:
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium") or Path(CHROMIUM).exists(), "apt-get install chromium (see .ci/run)"
    titles = [e["title"] for e in demo.summary["pipelines"]["engagement"]["leaderboard_top5_last_60_min"]]
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.goto(demo.url)
            for selector in ("#act-ingest circle.point", "#top-chart rect", "#eh-body td"):
                page.locator(selector).first.wait_for(state="attached", timeout=60_000)
            top = page.inner_text("#top-chart")
            assert any(title in top for title in titles), top
            assert page.inner_text("#top-title").startswith("Real-time Top 10 (last 10 minutes)")
            assert page.locator("#top-window option").all_inner_texts() == ["5", "10", "30", "60"]
            hubs = page.inner_text("#eventhubs")
            assert "mapping 1: telemetry ($Default)" in hubs and "watermark (sequence)" in hubs
            assert page.locator("#act-enrich circle.point").count() > 0
            assert page.locator("#act-lag circle.point").count() > 0
            assert re.fullmatch(r"last event \d+ (s|min) ago", page.inner_text("#freshness"))
            assert (
                page.is_hidden("#top-error") and page.is_hidden("#act-error") and page.is_hidden("#eh-error")
            )
            page.screenshot(path=str(demo.folder / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert console == []  # no script errors, nothing the page's Content-Security-Policy refused
