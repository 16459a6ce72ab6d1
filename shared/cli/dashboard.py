"""``streamduck dashboard``: listen, print the address, serve until Ctrl+C or SIGTERM (then exit 0)."""

from __future__ import annotations

import ipaddress
import signal
import sys
from collections.abc import Mapping
from types import FrameType

from shared.cli.output import EXIT_UNAVAILABLE, err, fail, out
from shared.dashboard.data import DashboardData
from shared.dashboard.server import DashboardServer
from shared.settings import Settings


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(settings: Settings, environ: Mapping[str, str], *, host: str, port: int) -> DashboardServer:
    """A bound (not yet serving) dashboard server; port 0 picks a free port."""
    try:
        return DashboardServer((host, port), DashboardData(settings, environ))
    except OSError as exc:
        fail(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port or --host",
            EXIT_UNAVAILABLE,
        )


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(settings: Settings, environ: Mapping[str, str], *, host: str, port: int) -> None:
    server = make_server(settings, environ, host=host, port=port)
    data = server.data
    if not _loopback(host):
        err.print(
            f"[yellow]warning:[/] listening on {host}: the dashboard has no sign-in, so anyone who can reach "
            "this address can read it"
        )
    out.print(f"StreamDuck dashboard: {server.url}  (Ctrl+C to stop)", markup=False)
    out.print(f"  ClickHouse: {data.describe_clickhouse()}", markup=False)
    out.print(
        f"  leaderboard windows: {', '.join(str(w) for w in data.windows)} minutes; "
        f"Event Hubs mappings: {len(settings.mappings)}",
        markup=False,
    )
    sys.stdout.flush()
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        out.print("dashboard stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
