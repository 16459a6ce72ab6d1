"""The dashboard's HTTP server: the page and the JSON endpoints, standard library only.

Answers are JSON (except the page). A bad parameter is a 400 naming the parameter and what it accepts; a
store that cannot answer is a 503 with a one-line reason and the store's name; anything unexpected is a 500
with the error's type (the traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared import __version__
from shared.dashboard.data import (
    ACTIVITY_MINUTES,
    LIMIT,
    MINUTES,
    ROWS,
    TOP_N,
    BadRequest,
    DashboardData,
    StoreUnavailable,
    int_param,
    one_line,
    only_params,
)
from shared.dashboard.page import CONTENT_SECURITY_POLICY, HTML
from shared.errors import StreamDuckError

log = logging.getLogger("streamduck.dashboard")

Query = Mapping[str, Sequence[str]]
Endpoint = Callable[[DashboardData, Query], dict[str, Any]]


def _recent(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/api/recent", ["rows"])
    return data.recent(int_param(query, "rows", ROWS))


def _by_content(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/api/by-content", ["minutes", "limit"])
    return data.by_content(int_param(query, "minutes", MINUTES), int_param(query, "limit", LIMIT))


def _top(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/api/top", ["n", "window"])
    return data.top(int_param(query, "n", TOP_N), data.window_param(query))


def _eventhubs(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/api/eventhubs", [])
    return data.eventhubs()


def _activity(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/api/activity", ["minutes"])
    return data.activity(int_param(query, "minutes", ACTIVITY_MINUTES))


def _info(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/api/info", [])
    return data.info()


def _healthz(data: DashboardData, query: Query) -> dict[str, Any]:
    only_params(query, "/healthz", [])
    return {"status": "ok", "version": __version__}


ENDPOINTS: dict[str, Endpoint] = {
    "/api/recent": _recent,
    "/api/by-content": _by_content,
    "/api/top": _top,
    "/api/eventhubs": _eventhubs,
    "/api/activity": _activity,
    "/api/info": _info,
    "/healthz": _healthz,
}
PAGES = ("/", "/index.html")


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def to_json(payload: object) -> bytes:
    return json.dumps(payload, default=_json_default, ensure_ascii=False).encode("utf-8")


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "streamduck-dashboard"
    sys_version = ""

    # ----------------------------------------------------------------------------------- responses

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: object, *, head: bool = False) -> None:
        self._send(status, to_json(payload), "application/json; charset=utf-8", head=head)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """JSON instead of the standard library's HTML error page (malformed requests, unknown methods)."""
        try:
            reason = message or HTTPStatus(code).phrase
        except ValueError:
            reason = message or "error"
        self.close_connection = True
        self._json(code, {"error": reason})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ----------------------------------------------------------------------------------- routing

    def _answer(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path in PAGES:
            self._send(HTTPStatus.OK, HTML.encode("utf-8"), "text/html; charset=utf-8", head=head)
            return
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            accepted = ", ".join(["/", *ENDPOINTS])
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path!r}; try one of {accepted}"}, head=head)
            return
        try:
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=20)
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad query string: {exc}"}, head=head)
            return
        try:
            payload = endpoint(self.server.data, query)
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)}, head=head)
        except StoreUnavailable as exc:
            log.warning("%s: %s unavailable: %s", path, exc.store, exc.reason)
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": exc.reason, "store": exc.store}, head=head)
        except StreamDuckError as exc:
            log.warning("%s: %s", path, one_line(exc))
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": one_line(exc)}, head=head)
        except Exception as exc:
            log.exception("%s failed", path)
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": f"internal error ({type(exc).__name__}); the dashboard's log has the details"},
                head=head,
            )
        else:
            self._json(HTTPStatus.OK, payload, head=head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        body = to_json({"error": f"{self.command} is not allowed: the dashboard only reads (GET)"})
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed


class DashboardServer(ThreadingHTTPServer):
    """One thread per request; the stores are shared through :class:`DashboardData`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], data: DashboardData) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, DashboardHandler)
        self.data = data

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is not worth a traceback; anything else is logged."""
        if isinstance(sys.exception(), ConnectionError):
            log.debug("request from %s ended early", client_address)
        else:
            log.exception("request from %s failed", client_address)
