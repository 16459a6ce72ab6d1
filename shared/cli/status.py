"""``streamduck status``: the report of :mod:`shared.readmodel.status` as tables."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from shared.cli.output import out


def render(report: dict[str, Any]) -> None:
    if not report["mappings"]:
        out.print("Event Hubs mappings: none configured (EVENTHUBNAME_N ...)")
    for m in report["mappings"]:
        title = f"mapping {m['mapping']}: {m['event_hub']} ({m['consumer_group']}) -> {m['target']}"
        table = Table(title=title, title_justify="left")
        for column in ("partition", "watermark (sequence)", "enqueued", "epoch", "lag"):
            table.add_column(column)
        for p in m["partitions"]:
            table.add_row(
                p["partition"],
                "-" if p.get("sequence_number") is None else str(p["sequence_number"]),
                str(p.get("enqueued_time") or "-"),
                str(p.get("epoch", "-")),
                "-" if p.get("lag") is None else str(p["lag"]),
            )
        out.print(table)
        dead = ", ".join(f"{k}: {n}" for k, n in m["dead_letters"].items()) or "none"
        compaction = m["last_compaction"]["finished_at"] if m["last_compaction"] else "never"
        out.print(
            f"  rows: {m['rows'] if m['rows'] is not None else '-'}; dead letters: {dead}; "
            f"last compaction: {compaction}"
        )
        for key in ("error", "lag_error"):
            if m.get(key):
                out.print(f"  [yellow]{key.replace('_', ' ')}:[/] {m[key]}", markup=True)
    k = report["kafka"]
    if k.get("not_configured"):
        out.print(f"Kafka consumer group {k['consumer_group']}: not configured ({k['not_configured']})")
    else:
        _render_kafka(k)
    dl = report["engagement_dead_letters"]
    kinds = ", ".join(f"{kind}: {n}" for kind, n in dl["by_kind"].items()) or "none"
    if dl.get("error"):
        kinds = f"- ([yellow]{escape(dl['error'])}[/])"
    out.print(f"Engagement dead letters ({escape(dl['store'])}, {escape(dl['table'])}): {kinds}")
    lb = report["leaderboard"]
    table = Table(title=f"Leaderboard, last {lb.get('window_minutes')} minutes", title_justify="left")
    for column in ("#", "content", "title", "score"):
        table.add_column(column)
    for i, e in enumerate(lb.get("entries", []), 1):
        table.add_row(
            str(i), str(e.get("content_id")), str(e.get("title") or "-"), f"{float(e.get('score', 0)):,.2f}"
        )
    out.print(table)
    if lb.get("error"):
        out.print(f"  [yellow]leaderboard:[/] {lb['error']}")


def _render_kafka(k: dict[str, Any]) -> None:
    table = Table(title=f"Kafka consumer group {k['consumer_group']}", title_justify="left")
    for column in ("topic", "partition", "committed", "high watermark", "lag"):
        table.add_column(column)
    for t in k["topics"]:
        if t.get("error"):
            table.add_row(t["topic"], "-", "-", "-", t["error"])
        for p in t["partitions"]:
            table.add_row(
                t["topic"],
                str(p["partition"]),
                "-" if p["committed"] is None else str(p["committed"]),
                str(p["high_watermark"]),
                "produced" if p["lag"] is None else str(p["lag"]),
            )
    out.print(table)
    if k.get("error"):
        out.print(f"  [yellow]kafka:[/] {k['error']}")
