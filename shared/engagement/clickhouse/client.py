"""The ClickHouse client of the process and the translation of its errors.

Transport: HTTP(S) to a ClickHouse server when ``CLICKHOUSE_HOST`` is set, else the embedded chDB engine
(``clickhouse_connect.get_client(interface="chdb", path=CLICKHOUSE_CHDB_PATH)``). chDB allows one engine per
process, so one client per path is shared by every caller in the process; an HTTP client is shared per server
and user.

Errors: clickhouse-connect and chDB exceptions become StreamDuck errors here and nowhere else
(:func:`translate_clickhouse_error`, applied by :func:`clickhouse_errors`): transient ones raise so the host
retries, terminal ones are parked by the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, StreamDuckError, TerminalError, TransientError
from shared.settings import Settings

STORE = "clickhouse"

# Error names (in the exception text of both transports) of failures that pass: retry, never park.
_TRANSIENT_NAMES = (
    "TIMEOUT_EXCEEDED",
    "SOCKET_TIMEOUT",
    "NETWORK_ERROR",
    "ALL_CONNECTION_TRIES_FAILED",
    "TOO_MANY_SIMULTANEOUS_QUERIES",
    "TOO_MANY_PARTS",
    "MEMORY_LIMIT_EXCEEDED",
    "CANNOT_ALLOCATE_MEMORY",
    "TABLE_IS_READ_ONLY",
    "UNKNOWN_STATUS_OF_INSERT",
    "KEEPER_EXCEPTION",
    "QUERY_WAS_CANCELLED",
    "ABORTED",
    "SERVER_OVERLOADED",
    "CANNOT_SCHEDULE_TASK",
)


def translate_clickhouse_error(exc: BaseException) -> StreamDuckError:
    """The StreamDuck error for a clickhouse-connect or chDB exception."""
    from clickhouse_connect.driver import exceptions as ch

    if isinstance(exc, StreamDuckError):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ch.OperationalError | ch.InterfaceError | OSError | TimeoutError):
        return TransientError(message, store=STORE, cause=exc)
    text = str(exc)
    if any(name in text for name in _TRANSIENT_NAMES):
        return TransientError(message, store=STORE, cause=exc)
    if "AUTHENTICATION_FAILED" in text or "REQUIRED_PASSWORD" in text:
        return ConfigError({"CLICKHOUSE_PASSWORD": f"ClickHouse refused the credentials: {text[:200]}"})
    return TerminalError(f"clickhouse: {message}")


@contextmanager
def clickhouse_errors() -> Iterator[None]:
    """Raise the :func:`translate_clickhouse_error` of a driver error raised inside the block."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        yield
    except (ClickHouseError, OSError, RuntimeError) as exc:
        raise translate_clickhouse_error(exc) from exc


_CLIENTS: dict[tuple[str, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def chdb_client(path: Path | str) -> Any:
    """The process-wide chDB client for ``path`` (chDB allows one engine per process)."""
    import clickhouse_connect

    resolved = str(Path(path).resolve())
    with _CLIENTS_LOCK:
        key = ("chdb", resolved)
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        others = [k[1] for k in _CLIENTS if k[0] == "chdb"]
        if others:
            raise ConfigError(
                {
                    "CLICKHOUSE_CHDB_PATH": (
                        f"this process already runs the embedded engine at {others[0]}; chDB allows one "
                        f"engine per process, so use that path (or a separate process) instead of {resolved}"
                    )
                }
            )
        Path(resolved).mkdir(parents=True, exist_ok=True)
        with clickhouse_errors():
            client = clickhouse_connect.get_client(interface="chdb", path=resolved)
        _CLIENTS[key] = client
        return client


def client_for(settings: Settings) -> Any:
    """HTTP client when ``CLICKHOUSE_HOST`` is set, else the shared chDB client."""
    if not settings.clickhouse_host:
        return chdb_client(settings.clickhouse_chdb_path)
    import clickhouse_connect

    key = ("http", settings.clickhouse_host, str(settings.clickhouse_port), settings.clickhouse_user)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else ""
            with clickhouse_errors():
                client = clickhouse_connect.get_client(
                    host=settings.clickhouse_host,
                    port=settings.clickhouse_port,
                    username=settings.clickhouse_user,
                    password=password,
                    secure=settings.clickhouse_secure,
                    compress="lz4",
                    connect_timeout=10,
                    send_receive_timeout=120,
                )
            _CLIENTS[key] = client
        return client
