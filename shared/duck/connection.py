"""DuckDB / MotherDuck connections: one per database and process, a cursor per invocation.

With a MotherDuck token a database ``analytics`` is ``md:analytics``; without one it is the local file
``<STREAMDUCK_DATA_DIR>/analytics.duckdb``, attached under the same catalog name, so three-part names
(``analytics.raw.events``) mean the same thing in both places.

DuckDB errors are translated here, in one place: :func:`translate` decides transient vs terminal; a refused
connection (MotherDuck rejecting the client's DuckDB version, the ``motherduck`` extension unavailable, a local
file written by a newer DuckDB) becomes an error that says what to do (:func:`translate_connect_error`).

DuckDB's home and extension directories are a writable temporary folder (:func:`duckdb_directories`): on
Flex Consumption the app's package is mounted read-only and ``~/.duckdb`` may not be writable, and the
``motherduck`` extension is downloaded there on the first ``md:`` connection of an instance.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
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


# --------------------------------------------------------------------------- directories and versions


def duckdb_directories(base: Path | None = None) -> dict[str, str]:
    """``home_directory`` and ``extension_directory`` under a writable temporary folder (created here).

    ``base`` defaults to ``<tempfile.gettempdir()>/streamduck-duckdb``. The ``motherduck`` extension is
    installed into ``<base>/extensions/v<duckdb version>/<platform>/`` on the first ``md:`` connection.
    """
    root = base if base is not None else Path(tempfile.gettempdir()) / "streamduck-duckdb"
    home, extensions = root / "home", root / "extensions"
    for folder in (home, extensions):
        folder.mkdir(parents=True, exist_ok=True)
    return {"home_directory": str(home), "extension_directory": str(extensions)}


@dataclass(frozen=True)
class VersionWindow:
    """The DuckDB client versions MotherDuck accepts (inclusive), from ``motherduck_versions.json``."""

    minimum: str
    maximum: str
    checked: str
    sources: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.minimum} to {self.maximum}"


@cache
def motherduck_window() -> VersionWindow:
    """The window recorded in ``shared/duck/motherduck_versions.json``."""
    data = json.loads(resources.files("shared.duck").joinpath("motherduck_versions.json").read_text("utf-8"))
    return VersionWindow(
        minimum=str(data["window"]["min"]),
        maximum=str(data["window"]["max"]),
        checked=str(data["checked"]),
        sources=tuple(str(u) for u in data["sources"]),
    )


# What the motherduck extension says when it refuses the client (raised from motherduck_init, wrapped by
# DuckDB in "Invalid Input Error: Initialization function ... threw an exception"), for example
#   Your DuckDB version (v1.5.3) is not yet supported by MotherDuck. The latest supported version is v1.5.2.
#   Your DuckDB version (v0.10.3) is not supported by MotherDuck. Please upgrade DuckDB to v1.2.1
#   Your MotherDuck extension is running on DuckDB v0.9.2 which is no longer supported.
_UNSUPPORTED_CLIENT = re.compile(
    r"Your DuckDB version \(v?[\w.-]+\) is not (?:yet )?supported by MotherDuck"
    r"|running on DuckDB v?[\w.-]+ which is no longer supported"
    r"|unsupported version of DuckDB",
    re.IGNORECASE,
)
# The motherduck extension could not be installed (download failed) or is absent with autoinstall off.
_EXTENSION_MISSING = re.compile(
    r'Failed to download extension "(?:motherduck|md)"'
    r'|Extension "[^"]*motherduck[^"]*\.duckdb_extension" not found'
    r'|Extension "(?:motherduck|md)" not found',
    re.IGNORECASE,
)
# DuckDB cannot read a file written by a newer DuckDB (a newer storage / serialization version).
_NEWER_FILE = re.compile(
    r"Trying to read a database file with version number (?P<found>\d+), but we can only read "
    r"versions? (?:between (?P<low>\d+) and (?P<high>\d+)|(?P<only>\d+))"
)
# Main header of a DuckDB file: checksum (8 bytes), b"DUCK", storage version (uint64), 4 flags (uint64),
# then the version of the DuckDB library that wrote it (32 bytes, NUL padded), then its git hash.
_HEADER_MAGIC_AT, _WRITER_AT, _WRITER_LEN = 8, 52, 32


def file_writer_version(path: Path) -> str | None:
    """The DuckDB version recorded in ``path``'s header as the one that created it (``v2.0.1``), if readable."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_WRITER_AT + _WRITER_LEN)
    except OSError:
        return None
    if len(head) < _WRITER_AT + _WRITER_LEN or head[_HEADER_MAGIC_AT : _HEADER_MAGIC_AT + 4] != b"DUCK":
        return None
    text = head[_WRITER_AT:].split(b"\0", 1)[0].decode("ascii", "replace").strip()
    return text or None


def translate_connect_error(
    exc: duckdb.Error, *, location: str, extension_directory: str | None = None
) -> StreamDuckError | None:
    """A clear error for a connection DuckDB or MotherDuck refused for a version or installation reason.

    ``location`` is ``md:<db>`` or a local file path; ``extension_directory`` where DuckDB looks for
    extensions. ``None`` when ``exc`` is none of these cases.

    - MotherDuck refuses the client's DuckDB version -> :class:`TerminalError` naming the installed version and
      the window MotherDuck accepts (retrying cannot help; install a DuckDB inside the window).
    - The ``motherduck`` extension cannot be downloaded (or is absent and autoinstall is off) ->
      :class:`TransientError`: the usual cause is outbound internet (VNet integration without a NAT gateway,
      a firewall, DNS); the host keeps retrying the batch, so nothing is skipped, and ingestion resumes by
      itself once the network is fixed, without a redeploy.
    - A local file written by a newer DuckDB -> :class:`TerminalError` naming the file, both versions and what
      to do with the data.
    """
    text = str(exc)
    installed = duckdb.__version__
    if _UNSUPPORTED_CLIENT.search(text):
        window = motherduck_window()
        return TerminalError(
            f"{location}: MotherDuck refused this client: installed DuckDB {installed}, MotherDuck accepts "
            f"{window} (checked {window.checked}, {window.sources[0]}). Install a DuckDB inside that window "
            f"(requirements.txt pins one) and redeploy. MotherDuck said: {_first_line(text)}"
        )
    if _EXTENSION_MISSING.search(text):
        return TransientError(
            f"cannot get the DuckDB 'motherduck' extension for DuckDB {installed} (needed for {location}): "
            f"{_first_line(text)}. It is downloaded from extensions.duckdb.org on the first MotherDuck connection "
            f"into {extension_directory or 'the DuckDB extension directory'}; allow outbound HTTPS from the app (with VNet "
            "integration: a NAT gateway on the integration subnet, see docs/deploy.md)",
            store=location,
            cause=exc,
        )
    newer = _NEWER_FILE.search(text)
    if newer:
        found = newer["found"]
        readable = f"{newer['low']} to {newer['high']}" if newer["low"] else newer["only"]
        writer = file_writer_version(Path(location))
        written_by = f"DuckDB {writer}" if writer else "a newer DuckDB"
        return TerminalError(
            f"cannot open local DuckDB file {location}: it was written by {written_by} (storage version {found}) "
            f"and the installed DuckDB {installed} reads storage versions {readable} only. StreamDuck pins "
            f"DuckDB {installed} because MotherDuck accepts clients {motherduck_window()} only. Demo data: delete "
            f"{location} (and {location}.wal). Data to keep: export it with the newer DuckDB (its CLI, or "
            f"`pip install duckdb=={(writer or '').lstrip('v') or '<newer>'}` in another environment): "
            f"`EXPORT DATABASE '<folder>'` on that file, then move the file away and run "
            f"`IMPORT DATABASE '<folder>'` on a new file at the same path with DuckDB {installed} "
            "(docs/deploy.md, 'DuckDB on Flex Consumption')"
        )
    return None


def _first_line(text: str) -> str:
    """The message without DuckDB's wrapping ("...threw an exception: "...") and without its advice lines."""
    marker = 'threw an exception: "'
    wrapped = marker in text
    inner = text.rsplit(marker, 1)[-1]
    for line in inner.splitlines():
        if line.strip():
            return line.strip().removesuffix('"') if wrapped else line.strip()
    return text.strip()


def translate(exc: duckdb.Error, *, store: str) -> StreamDuckError:
    """Map a DuckDB exception to :class:`TransientError` (retry) or :class:`TerminalError`."""
    if isinstance(exc, _TRANSIENT):
        return TransientError(f"{type(exc).__name__}: {exc}", store=store, cause=exc)
    if "database has been invalidated" in str(exc):
        return TransientError(f"{type(exc).__name__}: {exc}", store=store, cause=exc)
    return TerminalError(f"{store}: {type(exc).__name__}: {exc}")


class DuckConnections:
    """Thread-safe cache of root connections. ``cursor()`` gives each caller its own connection handle."""

    def __init__(
        self,
        *,
        data_dir: Path,
        default_token: SecretStr | None,
        duckdb_dir: Path | None = None,
        autoinstall_extensions: bool = True,
    ) -> None:
        """``duckdb_dir``: DuckDB's home and extension directories (:func:`duckdb_directories`);
        ``autoinstall_extensions``: whether DuckDB may download the ``motherduck`` extension when missing."""
        self._data_dir = data_dir
        self._default_token = default_token
        self._duckdb_dir = duckdb_dir
        self._autoinstall = autoinstall_extensions
        self._lock = threading.Lock()
        self._roots: dict[tuple[str, bool], duckdb.DuckDBPyConnection] = {}
        self._locations: dict[tuple[str, bool], str] = {}
        # Per thread: the (root, cursor) pairs thread_cursor keeps, by database.
        self._local = threading.local()

    def location(self, database: str, token: SecretStr | None = None) -> str:
        """Where ``database`` lives: ``md:<db>`` or the local file path."""
        key = (database, (token or self._default_token) is not None)
        found = self._locations.get(key)
        if found is None:
            found = f"md:{database}" if key[1] else str(self._data_dir / f"{database}.duckdb")
            self._locations[key] = found
        return found

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

    @contextmanager
    def thread_cursor(
        self, database: str, token: SecretStr | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on ``database`` that this thread keeps from one use to the next (DuckDB cursors are not
        shared between threads; making and closing one per use costs both). A use that raises closes it, so the
        next starts from a new one. It belongs to the root it was made from: after :meth:`discard` or
        :meth:`close` (which close the root, and its cursors with it) the next use makes a new one. A nested use
        on the same thread (a fault-injection seam delivering another batch) gets a cursor of its own."""
        key = (database, (token or self._default_token) is not None)
        local = self._local.__dict__
        kept: dict[tuple[str, bool], tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]]
        kept = local.setdefault("cursors", {})
        busy: set[tuple[str, bool]] = local.setdefault("busy", set())
        if key in busy:  # a nested use: a cursor of its own, closed after it
            cur = self.cursor(database, token)
            try:
                yield cur
            finally:
                cur.close()
            return
        entry = kept.pop(key, None)
        if entry is not None and entry[0] is not self._roots.get(key):
            entry = None  # made from a root that was closed since, and closed with it
        if entry is None:
            cur = self.cursor(database, token)
            root = self._roots.get(key)
        else:
            root, cur = entry
        busy.add(key)
        try:
            yield cur
        except BaseException:
            cur.close()
            raise
        finally:
            busy.discard(key)
        if root is not None and root is self._roots.get(key):
            kept[key] = (root, cur)
        else:
            cur.close()

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

    def config(self) -> dict[str, str | bool | int]:
        """The DuckDB configuration every connection of this cache starts from."""
        return {
            **duckdb_directories(self._duckdb_dir),
            "autoinstall_known_extensions": self._autoinstall,
            "autoload_known_extensions": True,
            "custom_user_agent": f"streamduck/{__version__}",
            "python_enable_replacements": True,  # the sink scans its Arrow tables by name
        }

    def _connect(self, database: str, token: SecretStr | None) -> duckdb.DuckDBPyConnection:
        if token is None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            path = self._data_dir / f"{database}.duckdb"
            try:
                return duckdb.connect(
                    str(path),
                    config={
                        **self.config(),
                        "checkpoint_threshold": LOCAL_CHECKPOINT_THRESHOLD,
                        "threads": LOCAL_THREADS,
                    },
                )
            except duckdb.IOException as exc:
                clear = translate_connect_error(exc, location=str(path))  # a file of a newer DuckDB
                if clear is not None:
                    raise clear from exc
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
            config = self.config()
            return duckdb.connect(
                f"md:{database}", config={**config, "motherduck_token": token.get_secret_value()}
            )
        except duckdb.Error as exc:
            clear = translate_connect_error(
                exc, location=f"md:{database}", extension_directory=str(config["extension_directory"])
            )
            if clear is not None:
                raise clear from exc
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
