"""DuckDB / MotherDuck connections: one per database and process, a cursor per invocation.

With a MotherDuck token a database ``analytics`` is ``md:analytics``; without one it is the local file
``<STREAMDUCK_DATA_DIR>/analytics.duckdb``, attached under the same catalog name, so three-part names
(``analytics.raw.events``) mean the same thing in both places.

DuckDB errors are translated here, in one place: :func:`translate` decides transient vs terminal.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
from pydantic import SecretStr

from shared import __version__
from shared.errors import ConfigError, StreamDuckError, TerminalError, TransientError

_TRANSIENT: tuple[type[duckdb.Error], ...] = (
    duckdb.TransactionException,
    duckdb.IOException,
    duckdb.HTTPException,
    duckdb.ConnectionException,
    duckdb.OutOfMemoryException,
    duckdb.InterruptException,
    duckdb.FatalException,
)
# A local file's write-ahead log is folded into the database file (a CHECKPOINT, which compresses whole row
# groups) when it passes this size. DuckDB's default, 16 MB, would checkpoint inside an ingest commit every
# few batches and rewrite the same partly filled row groups each time; with 256 MB most checkpoints are the
# compaction timer's, the commits stay short, and a restart replays at most this much log.
LOCAL_CHECKPOINT_THRESHOLD = "256MB"
# Each statement of the ingest path touches one batch; splitting it over DuckDB's worker threads costs more in
# scheduling than it gains (measured: 5-20% more events/s with one thread). Batches of different partitions
# still run in parallel, each in the worker thread that calls DuckDB. CHECKPOINT is then single-threaded too,
# which only lengthens the compaction timer's run.
LOCAL_THREADS = 1

# After these the connection may be unusable: drop it so the retry reconnects.
_RECONNECT: tuple[type[duckdb.Error], ...] = (duckdb.ConnectionException, duckdb.FatalException)


def translate(exc: duckdb.Error, *, store: str) -> StreamDuckError:
    """Map a DuckDB exception to :class:`TransientError` (retry) or :class:`TerminalError`."""
    if isinstance(exc, _TRANSIENT):
        return TransientError(f"{type(exc).__name__}: {exc}", store=store, cause=exc)
    if "database has been invalidated" in str(exc):
        return TransientError(f"{type(exc).__name__}: {exc}", store=store, cause=exc)
    return TerminalError(f"{store}: {type(exc).__name__}: {exc}")


class DuckConnections:
    """Thread-safe cache of root connections. ``cursor()`` gives each caller its own connection handle."""

    def __init__(self, *, data_dir: Path, default_token: SecretStr | None) -> None:
        self._data_dir = data_dir
        self._default_token = default_token
        self._lock = threading.Lock()
        self._roots: dict[tuple[str, bool], duckdb.DuckDBPyConnection] = {}

    def location(self, database: str, token: SecretStr | None = None) -> str:
        """Where ``database`` lives: ``md:<db>`` or the local file path."""
        if (token or self._default_token) is not None:
            return f"md:{database}"
        return str(self._data_dir / f"{database}.duckdb")

    def cursor(self, database: str, token: SecretStr | None = None) -> duckdb.DuckDBPyConnection:
        token = token or self._default_token
        key = (database, token is not None)
        with self._lock:
            root = self._roots.get(key)
            if root is None:
                root = self._connect(database, token)
                self._roots[key] = root
        try:
            return root.cursor()
        except duckdb.Error as exc:
            self.discard(database, token)
            raise translate(exc, store=self.location(database, token)) from exc

    def discard(self, database: str, token: SecretStr | None = None) -> None:
        """Forget (and close) the connection of ``database``; the next ``cursor()`` reconnects."""
        key = (database, (token or self._default_token) is not None)
        with self._lock:
            root = self._roots.pop(key, None)
        if root is not None:
            root.close()

    def handle_error(
        self, exc: duckdb.Error, database: str, token: SecretStr | None = None
    ) -> StreamDuckError:
        """Translate ``exc``; drop the connection if DuckDB says it is no longer usable."""
        if isinstance(exc, _RECONNECT) or "database has been invalidated" in str(exc):
            self.discard(database, token)
        return translate(exc, store=self.location(database, token))

    def close(self) -> None:
        with self._lock:
            roots, self._roots = list(self._roots.values()), {}
        for root in roots:
            root.close()

    def _connect(self, database: str, token: SecretStr | None) -> duckdb.DuckDBPyConnection:
        if token is None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            path = self._data_dir / f"{database}.duckdb"
            try:
                return duckdb.connect(
                    str(path),
                    config={
                        "custom_user_agent": f"streamduck/{__version__}",
                        "python_enable_replacements": True,  # the sink scans its Arrow tables by name
                        "checkpoint_threshold": LOCAL_CHECKPOINT_THRESHOLD,
                        "threads": LOCAL_THREADS,
                    },
                )
            except duckdb.IOException as exc:
                raise TransientError(
                    f"cannot open local DuckDB file {path} ({exc}); another process may hold it "
                    "(one process per file; set MOTHERDUCK_TOKEN to use MotherDuck)",
                    store=str(path),
                    cause=exc,
                ) from exc
        if not token.get_secret_value().strip():
            raise ConfigError(
                {"MOTHERDUCK_TOKEN": "is empty, for example MOTHERDUCK_TOKEN=<token from app.motherduck.com>"}
            )
        try:
            return duckdb.connect(
                f"md:{database}",
                config={
                    "motherduck_token": token.get_secret_value(),
                    "custom_user_agent": f"streamduck/{__version__}",
                    "python_enable_replacements": True,  # the sink scans its Arrow tables by name
                },
            )
        except duckdb.Error as exc:
            raise TransientError(
                f"cannot reach MotherDuck database md:{database}: {type(exc).__name__}: {exc}. "
                "Check MOTHERDUCK_TOKEN (or MOTHERDUCK_N_TOKEN), outbound HTTPS to *.motherduck.com, and that the "
                "DuckDB 'motherduck' extension can be installed or is preinstalled",
                store=f"md:{database}",
                cause=exc,
            ) from exc


def fetch_one(
    cur: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[object, ...] | None:
    """First row of a query, with the result fully consumed (DuckDB 2 keeps unfinished results open)."""
    rows = cur.execute(sql, params or []).fetchall()
    return tuple(rows[0]) if rows else None
