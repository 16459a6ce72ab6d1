"""streamduck dashboard: the JSON endpoints against the stores, bad parameters, store failures, the page.

The stores are real: chDB in a temporary folder, DuckDB files, the local Redis (``redis_url``). They are
loaded through the registered functions by ``tests/dashboard/load.py`` in its own process; the dashboard then
runs as ``python -m shared dashboard --port 0`` (chDB lets one process open a folder at a time, so nothing
else opens it meanwhile). Each answer is compared with what the stores hold, read independently: the loader's
own query of every enriched row, ``ZREVRANGE`` of the window key, the content store's hash, DuckDB opened
read-only.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import duckdb
import pytest
import redis

from shared.engagement.leaderboard import Leaderboard
from tests.support.cli import ROOT, base_env, run_cli, start_cli, stop, wait_for

MAPPING = {
    "EVENTHUBNAME_1": "telemetry",
    "EVENTHUBNAME_1_CONSUMER_GROUP": "$Default",
    "MOTHERDUCK_1_DATABASE": "dash_events",
    "MOTHERDUCK_1_SCHEMA": "raw",
    "MOTHERDUCK_1_TABLE": "telemetry",
    "MOTHERDUCK_1_FORMAT": "json",
}
WINDOWS = (5, 10, 30, 60)
URL_LINE = re.compile(r"StreamDuck dashboard: (http://127\.0\.0\.1:\d+/)")


@dataclass
class Http:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, *, method: str = "GET") -> Http:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        return Http(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, *, method: str = "GET") -> Http:
        return get(self.url + path.lstrip("/"), method=method)


def start_dashboard(env: dict[str, str], folder: Path, name: str) -> Dashboard:
    log = folder / f"{name}.log"
    process = start_cli("dashboard", "--port", "0", env=env, cwd=folder, log=log)
    found: list[str] = []

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the dashboard exited with {process.returncode}: {log.read_text()[-3000:]}")
        match = URL_LINE.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            found.append(match.group(1))
        return bool(found)

    wait_for(listening, timeout=60, what="the dashboard's address")
    return Dashboard(found[0], process, log)


@dataclass
class Loaded:
    dashboard: Dashboard
    env: dict[str, str]
    folder: Path
    prefix: str
    redis: redis.Redis
    enriched: list[tuple[int, int, str, Decimal | None]]  # id, event time (ms), content id, seconds
    data_dir: Path


@pytest.fixture(scope="module")
def loaded(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    folder = tmp_path_factory.mktemp("dashboard")
    prefix = f"test:dash{uuid.uuid4().hex[:10]}:"
    env = base_env(
        folder,
        **MAPPING,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        CLICKHOUSE_DATABASE="dash_analytics",
        LEADERBOARD_WINDOWS=",".join(str(w) for w in WINDOWS),
        CONTENT_CACHE_TTL_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    out = folder / "loaded.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.dashboard.load", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(out.read_text(encoding="utf-8"))
    (mapping,) = facts["eventhubs"]["mappings"]
    assert mapping["accounted_for"] and mapping["rows"] > 0
    enriched = [
        (int(i), int(ts), str(cid), None if seconds is None else Decimal(seconds))
        for i, ts, cid, seconds in facts["enriched"]
    ]
    assert len(enriched) == facts["engagement"]["clickhouse_rows"] > 500
    client = redis.Redis.from_url(redis_url)
    dashboard = start_dashboard(env, folder, "dashboard")
    try:
        yield Loaded(dashboard, env, folder, prefix, client, enriched, Path(env["STREAMDUCK_DATA_DIR"]))
    finally:
        stop(dashboard.process)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def title_in_store(loaded: Loaded, content_id: str) -> str | None:
    raw = loaded.redis.hget(f"{loaded.prefix}eng:content", content_id)
    return None if raw is None else str(json.loads(raw)["title"])


def by_content_totals(loaded: Loaded) -> list[tuple[str, Decimal]]:
    """Engagement seconds per content over every enriched row, best first (ties by content id)."""
    totals: dict[str, Decimal] = {}
    for _, _, content_id, seconds in loaded.enriched:
        totals[content_id] = totals.get(content_id, Decimal(0)) + (seconds or Decimal(0))
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


# --------------------------------------------------------------------------------------- ClickHouse panels


@pytest.mark.integration
@pytest.mark.parametrize("rows", [10, 50, 500])
def test_recent_is_the_newest_enriched_events_by_event_time(loaded: Loaded, rows: int) -> None:
    answer = loaded.dashboard.get(f"/api/recent?rows={rows}")
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    data = answer.json()
    newest = sorted(loaded.enriched, key=lambda r: (-r[1], -r[0]))[:rows]
    assert data["rows"] == rows and data["count"] == rows
    assert [e["id"] for e in data["events"]] == [r[0] for r in newest]
    stamps = [e["event_ts_ms"] for e in data["events"]]
    assert stamps == sorted(stamps, reverse=True)
    for event, (_, ts, content_id, seconds) in zip(data["events"], newest, strict=True):
        assert event["event_ts_ms"] == ts and event["content_id"] == content_id
        assert event["engagement_seconds"] == (None if seconds is None else float(seconds))
        assert event["title"] is not None and event["title"] == title_in_store(loaded, content_id)


@pytest.mark.integration
def test_recent_shows_50_rows_by_default(loaded: Loaded) -> None:
    data = loaded.dashboard.get("/api/recent").json()
    assert data["rows"] == 50 and len(data["events"]) == 50


@pytest.mark.integration
def test_engagement_by_content_sums_seconds_per_content_with_titles(loaded: Loaded) -> None:
    expected = by_content_totals(loaded)
    assert len(expected) > 20  # the limit really cuts
    # The loaded events are at most 55 minutes old: a 90-minute window holds every one of them.
    data = loaded.dashboard.get("/api/by-content?minutes=90&limit=20").json()
    assert data["minutes"] == 90 and data["limit"] == 20
    got = [(c["content_id"], c["engagement_seconds"]) for c in data["content"]]
    assert got == [(cid, float(seconds)) for cid, seconds in expected[:20]]
    assert [c["rank"] for c in data["content"]] == list(range(1, 21))
    events = {cid: 0 for cid, _ in expected}
    for _, _, content_id, _ in loaded.enriched:
        events[content_id] += 1
    for c in data["content"]:
        assert c["events"] == events[c["content_id"]]
        assert c["title"] is not None and c["title"] == title_in_store(loaded, c["content_id"])

    five = loaded.dashboard.get("/api/by-content?minutes=90&limit=5").json()
    assert [c["content_id"] for c in five["content"]] == [cid for cid, _ in expected[:5]]


@pytest.mark.integration
def test_engagement_by_content_defaults_to_the_last_60_minutes_top_20(loaded: Loaded) -> None:
    data = loaded.dashboard.get("/api/by-content").json()
    assert data["minutes"] == 60 and data["limit"] == 20
    assert 0 < len(data["content"]) <= 20
    seconds = [c["engagement_seconds"] for c in data["content"]]
    assert seconds == sorted(seconds, reverse=True)


# --------------------------------------------------------------------------------------- leaderboard


@pytest.mark.integration
@pytest.mark.parametrize(("n", "window"), [(3, 5), (10, 10), (20, 60)])
def test_top_n_is_the_precomputed_window_with_titles(loaded: Loaded, n: int, window: int) -> None:
    board = Leaderboard(loaded.redis, prefix=loaded.prefix, windows=WINDOWS)
    for _ in range(3):  # the minute may turn between the rebuild and the read: then build it again
        minute = int(time.time() * 1000) // 60_000
        board.precompute_windows(minute * 60_000 + 1)  # what the engagement_leaderboard_windows timer does
        answer = loaded.dashboard.get(f"/api/top?n={n}&window={window}")
        direct = cast(
            list[tuple[bytes, float]],
            loaded.redis.zrevrange(board.window_key(window), 0, n - 1, withscores=True),
        )
        if int(time.time() * 1000) // 60_000 == minute:
            break
    assert answer.status == 200, answer.body
    data = answer.json()
    assert data["n"] == n and data["window"] == window and data["windows"] == list(WINDOWS)
    assert data["precomputed"] is True and data["key"] == board.window_key(window)
    assert direct, "the window is empty: nothing to compare"
    assert [(e["content_id"], e["engagement_seconds"]) for e in data["entries"]] == [
        (member.decode(), round(score, 2)) for member, score in direct
    ]
    assert [e["rank"] for e in data["entries"]] == list(range(1, len(direct) + 1))
    for e in data["entries"]:
        assert e["title"] is not None and e["title"] == title_in_store(loaded, e["content_id"])


@pytest.mark.integration
def test_top_defaults_to_10_over_10_minutes(loaded: Loaded) -> None:
    data = loaded.dashboard.get("/api/top").json()
    assert data["n"] == 10 and data["window"] == 10


# --------------------------------------------------------------------------------------- Event Hubs


@pytest.mark.integration
def test_eventhubs_shows_rows_watermarks_dead_letters_and_last_compaction(loaded: Loaded) -> None:
    answer = loaded.dashboard.get("/api/eventhubs")
    assert answer.status == 200, answer.body
    (m,) = answer.json()["mappings"]
    assert m["error"] is None
    assert m["target"] == "dash_events.raw.telemetry" and m["event_hub"] == "telemetry"
    con = duckdb.connect(str(loaded.data_dir / "dash_events.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT count(*) FROM dash_events.raw.telemetry").fetchall()[0][0]
        marks = con.execute(
            "SELECT partition_id, max(sequence_number) FROM (SELECT partition_id, sequence_number FROM "
            "dash_events.raw.telemetry UNION ALL SELECT partition_id, sequence_number FROM "
            "dash_events.raw._streamduck_dead_letters) GROUP BY partition_id"
        ).fetchall()
        letters = con.execute(
            "SELECT kind, count(*) FROM dash_events.raw._streamduck_dead_letters GROUP BY kind"
        ).fetchall()
        maintenance = con.execute("SELECT count(*) FROM dash_events.raw._streamduck_maintenance").fetchall()
    finally:
        con.close()
    assert m["rows"] == rows > 0
    # Every partition's watermark is the highest sequence number that landed or was parked.
    watermarks = {p["partition"]: p["sequence_number"] for p in m["partitions"]}
    assert watermarks == {str(p): int(s) for p, s in marks}
    assert m["dead_letters"] == {str(k): int(n) for k, n in letters} and m["dead_letters_total"] > 0
    assert maintenance[0][0] == 1
    assert m["last_compaction"] is not None and m["last_compaction"]["checkpointed"] is True


# --------------------------------------------------------------------------------------- parameters


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/api/recent?rows=9", "rows must be from 10 to 500, got 9"),
        ("/api/recent?rows=501", "rows must be from 10 to 500, got 501"),
        ("/api/recent?rows=abc", "rows must be a whole number from 10 to 500"),
        ("/api/recent?rows=", "rows must be a whole number from 10 to 500"),
        ("/api/recent?rows=10&rows=20", "rows is given 2 times"),
        ("/api/recent?row=10", "unknown parameter 'row' for /api/recent; accepted: rows"),
        ("/api/by-content?minutes=0", "minutes must be from 1 to 1440"),
        ("/api/by-content?minutes=1441", "minutes must be from 1 to 1440"),
        ("/api/by-content?limit=101", "limit must be from 1 to 100"),
        ("/api/top?n=2", "n must be from 3 to 20, got 2"),
        ("/api/top?n=21", "n must be from 3 to 20, got 21"),
        ("/api/top?window=15", "window must be one of the precomputed leaderboard windows (5, 10, 30, 60"),
        ("/api/top?window=0", "window must be one of the precomputed leaderboard windows"),
        ("/api/top?window=90", "refused rather than cut short"),
        ("/api/top?window=10m", "LEADERBOARD_WINDOWS"),
        ("/api/eventhubs?all=1", "unknown parameter 'all' for /api/eventhubs"),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(loaded: Loaded, path: str, says: str) -> None:
    answer = loaded.dashboard.get(path)
    assert answer.status == 400
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json()["error"]
    assert says in error and "\n" not in error


@pytest.mark.integration
def test_unknown_paths_and_methods_answer_json(loaded: Loaded) -> None:
    missing = loaded.dashboard.get("/api/nothing")
    assert missing.status == 404 and "/api/top" in missing.json()["error"]
    posted = loaded.dashboard.get("/api/top", method="POST")
    assert posted.status == 405 and "only reads" in posted.json()["error"]


# --------------------------------------------------------------------------------------- page


@pytest.mark.integration
def test_page_is_served_and_calls_every_endpoint(loaded: Loaded) -> None:
    page = loaded.dashboard.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode("utf-8")
    for endpoint in ("/api/recent", "/api/by-content", "/api/top", "/api/eventhubs"):
        assert endpoint in html
    for panel in ("Recent enriched events (ClickHouse)", "Engagement by content", "Real-time Top", "Redis"):
        assert panel in html
    assert 'min="10" max="500"' in html and 'min="3" max="20"' in html
    assert "setInterval" in html  # refreshes itself
    # The Content-Security-Policy allows exactly the inline script and style sheet the page carries.
    policy = page.headers["Content-Security-Policy"]
    for tag in ("script", "style"):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(inline.encode("utf-8")).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert loaded.dashboard.get("/healthz").json()["status"] == "ok"
    head = loaded.dashboard.get("/", method="HEAD")
    assert head.status == 200 and head.body == b""


# --------------------------------------------------------------------------------------- store failures


def assert_unavailable(answer: Http, store: str, says: str) -> None:
    assert answer.status == 503, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    data = answer.json()
    assert data["store"] == store
    assert says in data["error"], data["error"]
    assert "\n" not in data["error"] and "Traceback" not in data["error"]


@pytest.mark.integration
def test_chdb_folder_held_by_another_process_is_503_naming_it(loaded: Loaded) -> None:
    assert loaded.dashboard.get("/api/recent?rows=10").status == 200  # the first dashboard holds the folder
    second = start_dashboard(loaded.env, loaded.folder, "second")
    try:
        answer = second.get("/api/recent")
        assert_unavailable(
            answer,
            "clickhouse",
            f"in use by `streamduck dashboard --port 0` (pid {loaded.dashboard.process.pid})",
        )
        assert "CLICKHOUSE_HOST" in answer.json()["error"]
        assert second.get("/api/top").status == 200  # Redis still answers
    finally:
        stop(second.process)
    log = second.log.read_text(encoding="utf-8", errors="replace")
    assert "Cannot lock file" not in log and "EmbeddedServer" not in log  # the engine was not even tried


@pytest.mark.integration
def test_unreachable_stores_are_503_with_a_one_line_reason(tmp_path: Path) -> None:
    closed = "127.0.0.1:1"
    env = base_env(
        tmp_path,
        **MAPPING,
        CLICKHOUSE_HOST="127.0.0.1",
        CLICKHOUSE_PORT="1",
        CLICKHOUSE_SECURE="false",
        REDIS_URL=f"redis://{closed}/0",
        PYTHONUNBUFFERED="1",
    )
    dashboard = start_dashboard(env, tmp_path, "down")
    try:
        assert_unavailable(dashboard.get("/api/recent"), "clickhouse", "clickhouse")
        assert_unavailable(dashboard.get("/api/by-content"), "clickhouse", "clickhouse")
        assert_unavailable(dashboard.get("/api/top"), "redis", "redis")
        (m,) = dashboard.get("/api/eventhubs").json()["mappings"]
        assert m["error"].startswith("no data yet")
        assert dashboard.get("/healthz").status == 200
    finally:
        assert stop(dashboard.process) == 0
    assert "Traceback" not in dashboard.log.read_text()


@pytest.mark.integration
def test_missing_chdb_folder_is_503_and_is_not_created(tmp_path: Path) -> None:
    env = base_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0", PYTHONUNBUFFERED="1")
    dashboard = start_dashboard(env, tmp_path, "empty")
    try:
        assert_unavailable(dashboard.get("/api/recent"), "clickhouse", "no data yet")
        eventhubs = dashboard.get("/api/eventhubs").json()
        assert eventhubs["mappings"] == [] and "no Event Hubs mappings" in eventhubs["note"]
    finally:
        stop(dashboard.process)
    assert not Path(env["CLICKHOUSE_CHDB_PATH"]).exists()


# --------------------------------------------------------------------------------------- command line


def test_help_names_the_options_with_examples(tmp_path: Path) -> None:
    result = run_cli("dashboard", "--help", env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 0, result.stderr
    for option in ("--host", "--port", "--env-file", "127.0.0.1", "8050", "Examples"):
        assert option in result.stdout


def test_a_port_in_use_is_one_error_line_and_exit_4(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("dashboard", "--port", str(port), env=base_env(tmp_path), cwd=tmp_path)
    assert result.code == 4
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr
