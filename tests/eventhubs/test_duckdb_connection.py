"""DuckDB's writable directories reach every connection, and a local file written by a newer DuckDB (its header
declares a newer storage version) fails with an error naming the file, both versions and what to do."""

from __future__ import annotations

import struct
from pathlib import Path

import duckdb
import pytest

from shared.duck.connection import DuckConnections, duckdb_directories, file_writer_version
from shared.errors import TerminalError

_MASK = (1 << 64) - 1
_BLOCK = 4096  # the main header, then two database headers, each a 4 KiB block with a leading checksum


def _checksum(block: bytes) -> int:
    """DuckDB's block checksum (src/common/checksum.cpp) of a 4 KiB header after its 8-byte checksum."""
    result = 5381
    for (word,) in struct.iter_unpack("<Q", block):
        result ^= (word * 0xBF58476D1CE4E5B9) & _MASK
    return result


def write_as_duckdb_2(path: Path) -> None:
    """Make ``path`` (a file written by the installed DuckDB) look the way DuckDB 2.0.1 writes its headers
    (measured on a file DuckDB 2.0.1 created): main header version number 999 and library ``v2.0.1``, both
    database headers with serialization compatibility 69; checksums recomputed."""
    data = bytearray(path.read_bytes())
    assert data[8:12] == b"DUCK"
    struct.pack_into("<Q", data, 12, 999)
    data[52:84] = b"v2.0.1".ljust(32, b"\0")
    for header in (_BLOCK, 2 * _BLOCK):
        struct.pack_into("<Q", data, header + 7 * 8, 69)  # checksum, iteration, meta block, free list,
        # block count, block alloc size, vector size, serialization compatibility
    for start in (0, _BLOCK, 2 * _BLOCK):
        struct.pack_into("<Q", data, start, _checksum(bytes(data[start + 8 : start + _BLOCK])))
    path.write_bytes(bytes(data))


def _new_file(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.close()


def test_the_checksum_is_duckdbs(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    _new_file(path)
    data = path.read_bytes()
    for start in (0, _BLOCK):
        assert struct.unpack_from("<Q", data, start)[0] == _checksum(data[start + 8 : start + _BLOCK])


def test_home_and_extension_directories_reach_the_connection(tmp_path: Path) -> None:
    connections = DuckConnections(
        data_dir=tmp_path / "data", default_token=None, duckdb_dir=tmp_path / "duck"
    )
    try:
        cur = connections.cursor("lake")
        got = cur.execute(
            "SELECT current_setting('home_directory'), current_setting('extension_directory'), "
            "current_setting('autoinstall_known_extensions')"
        ).fetchall()
    finally:
        connections.close()
    assert got == [(str(tmp_path / "duck" / "home"), str(tmp_path / "duck" / "extensions"), True)]


def test_default_directories_are_under_the_temporary_folder() -> None:
    import tempfile

    dirs = duckdb_directories()
    for key in ("home_directory", "extension_directory"):
        assert Path(dirs[key]).is_relative_to(Path(tempfile.gettempdir()) / "streamduck-duckdb")
        assert Path(dirs[key]).is_dir()


def test_a_file_of_a_newer_duckdb_names_file_versions_and_what_to_do(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "lake.duckdb"
    _new_file(path)
    write_as_duckdb_2(path)
    assert file_writer_version(path) == "v2.0.1"
    with pytest.raises(duckdb.IOException, match="version number 69"):
        duckdb.connect(str(path))  # what DuckDB itself says about the file

    connections = DuckConnections(data_dir=data_dir, default_token=None, duckdb_dir=tmp_path / "duck")
    with pytest.raises(TerminalError) as info:
        connections.cursor("lake")
    message = str(info.value)
    assert f"cannot open local DuckDB file {path}" in message
    assert "written by DuckDB v2.0.1 (storage version 69)" in message
    assert f"the installed DuckDB {duckdb.__version__} reads storage versions 64 to 68 only" in message
    assert "EXPORT DATABASE" in message and "IMPORT DATABASE" in message
    assert f"delete {path}" in message


def test_writer_version_of_something_else_is_unknown(tmp_path: Path) -> None:
    other = tmp_path / "x.duckdb"
    other.write_bytes(b"not a database" * 10)
    assert file_writer_version(other) is None
    assert file_writer_version(tmp_path / "missing.duckdb") is None


def test_a_thread_keeps_its_cursor_until_a_use_fails_or_the_connection_is_closed(tmp_path: Path) -> None:
    connections = DuckConnections(data_dir=tmp_path, default_token=None)
    with connections.thread_cursor("lake") as first:
        first.execute("CREATE TABLE t (a INTEGER)")
        with connections.thread_cursor("lake") as nested:  # a nested use gets a cursor of its own
            assert nested is not first
    with connections.thread_cursor("lake") as again:
        assert again is first  # kept between uses
    with pytest.raises(duckdb.CatalogException), connections.thread_cursor("lake") as failing:
        failing.execute("SELECT * FROM missing")
    with pytest.raises(duckdb.ConnectionException):
        first.execute("SELECT 1")  # the failed use closed it
    with connections.thread_cursor("lake") as fresh:
        assert fresh is not first
        assert fresh.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    connections.discard("lake")  # closes the root and its cursors
    with connections.thread_cursor("lake") as reconnected:
        assert reconnected is not fresh
        assert reconnected.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    connections.close()
    duckdb.connect(str(tmp_path / "lake.duckdb"), read_only=True).close()  # nothing holds the file
