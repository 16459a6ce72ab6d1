"""Redis adapter: connections and the one place where redis-py exceptions become StreamDuck errors.

Unavailable, timing out, loading, failing over or read-only -> :class:`TransientError` (the host retries
the batch; every Redis write of the pipeline is atomic and idempotent, so a retry completes it). Any other
reply error is a bug or a misconfiguration -> :class:`TerminalError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis

from shared.errors import ConfigError, StreamDuckError, TerminalError, TransientError

STORE = "redis"

_TRANSIENT: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ReadOnlyError,
    OSError,
)


def translate_redis_error(exc: BaseException) -> StreamDuckError:
    """The StreamDuck error for a redis-py exception."""
    if isinstance(exc, StreamDuckError):
        return exc
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return ConfigError({"REDIS_URL": f"Redis refused the credentials: {exc}"})
    if isinstance(exc, _TRANSIENT):
        return TransientError(f"{type(exc).__name__}: {exc}", store=STORE, cause=exc)
    if isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        ("BUSY", "LOADING", "MASTERDOWN")
    ):
        return TransientError(f"{type(exc).__name__}: {exc}", store=STORE, cause=exc)
    return TerminalError(f"redis: {type(exc).__name__}: {exc}")


@contextmanager
def redis_errors() -> Iterator[None]:
    """Translate redis-py exceptions raised in the block."""
    try:
        yield
    except (redis.exceptions.RedisError, OSError) as exc:
        raise translate_redis_error(exc) from exc


_CLIENTS: dict[str, redis.Redis] = {}
_LOCK = threading.Lock()


def redis_client(url: str) -> redis.Redis:
    """One client (connection pool) per URL per process; thread-safe."""
    with _LOCK:
        client = _CLIENTS.get(url)
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
                )
            except ValueError as exc:
                raise ConfigError({"REDIS_URL": f"{exc}, for example redis://127.0.0.1:6379/0"}) from exc
            _CLIENTS[url] = client
        return client


def load_lua(name: str) -> str:
    """The text of a Lua script shipped next to this module."""
    return resources.files("shared.engagement").joinpath(name).read_text(encoding="utf-8")


class LuaScript:
    """A Lua script run with EVALSHA (loaded on first use and after a NOSCRIPT reply)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._sha: str | None = None

    def __call__(self, client: redis.Redis, keys: list[str], args: list[Any]) -> Any:
        with redis_errors():
            if self._sha is None:
                self._sha = str(client.script_load(self.source))
            try:
                return client.evalsha(self._sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                self._sha = str(client.script_load(self.source))
                return client.evalsha(self._sha, len(keys), *keys, *args)
