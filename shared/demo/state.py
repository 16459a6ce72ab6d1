"""What the demo leaves for the commands after it: its settings file and who holds the embedded ClickHouse.

``streamduck demo`` writes the settings it chose itself (the demo mapping when none is configured, the URL of
the Redis it keeps running) to ``.streamduck/demo.env``. The CLI reads that file last, below ``./.env`` and the
process environment (:func:`fill_from_demo`), so ``streamduck status`` and ``streamduck dashboard`` in the same
folder see what the demo made without any set-up.

chDB lets one process open a folder at a time; :func:`chdb_holder` names the process that has it open.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from dotenv import dotenv_values

STATE_DIR = Path(".streamduck")
DEMO_ENV = STATE_DIR / "demo.env"
_MAPPING_KEY = re.compile(r"EVENTHUBNAME_\d+")
_HEADER = (
    "# Written by `streamduck demo`: the settings it chose itself. Read by the CLI below ./.env and the\n"
    "# environment (docs/cli.md). Remove .streamduck/ to start afresh.\n"
)


def read_demo_env(path: Path = DEMO_ENV) -> dict[str, str]:
    """The demo's saved settings, or nothing when the demo has not run in this folder."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def write_demo_env(values: Mapping[str, str], path: Path = DEMO_ENV) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={_quoted(value)}\n" for key, value in values.items()]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(_HEADER + "".join(lines), encoding="utf-8")
    temporary.replace(path)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fill_from_demo(environ: MutableMapping[str, str], path: Path = DEMO_ENV) -> list[str]:
    """Add the demo's saved settings that ``environ`` lacks; return the keys added.

    The demo's mapping is taken only when ``environ`` configures no mapping at all (never mixed into a real
    configuration); any other key only when it is unset.
    """
    saved = read_demo_env(path)
    has_mappings = any(_MAPPING_KEY.fullmatch(key) and value for key, value in environ.items())
    added = []
    for key, value in saved.items():
        if key.startswith(("EVENTHUBNAME_", "MOTHERDUCK_")) and has_mappings:
            continue
        if not environ.get(key):
            environ[key] = value
            added.append(key)
    return added


# --------------------------------------------------------------------------------------- the chDB lock


def process_name(pid: int) -> str:
    """``streamduck dashboard --port 8050`` for a StreamDuck command, else its command line (or ``?``)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    for i, arg in enumerate(args):
        if arg == "-m" and i + 1 < len(args) and args[i + 1] == "shared":
            return " ".join(["streamduck", *args[i + 2 :]])
        if Path(arg).name == "streamduck":
            return " ".join(["streamduck", *args[i + 1 :]])
    return " ".join(args)[:200] or "?"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    match = re.search(r"^State:\s*(.*)$", text, re.MULTILINE)
    return match.group(1) if match else ""


def _pid_from_status_file(folder: Path) -> int | None:
    try:
        text = (folder / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"^PID:\s*(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _has_open_file(pid: int, prefix: str) -> bool:
    try:
        return any(str(fd.readlink()).startswith(prefix) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False  # gone, or another user's


def _pid_with_open_file(folder: Path) -> int | None:
    """A process with a file under ``folder`` open (a scan of ``/proc/*/fd``, as ``fuser`` does)."""
    prefix = str(folder.resolve()) + os.sep
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid() and _has_open_file(int(proc.name), prefix):
            return int(proc.name)
    return None


def chdb_holder(folder: Path) -> tuple[int, str] | None:
    """(pid, name) of another live process that runs the embedded ClickHouse of ``folder``, if any.

    The engine writes its pid to ``status`` in the folder; a stale file (the process is gone) is checked
    against the processes that have the folder's files open.
    """
    if not folder.is_dir():
        return None
    pid = _pid_from_status_file(folder)
    prefix = str(folder.resolve()) + os.sep
    if pid is None or pid == os.getpid() or not _alive(pid) or not _has_open_file(pid, prefix):
        pid = _pid_with_open_file(folder)
    if pid is None or pid == os.getpid():
        return None
    return pid, process_name(pid)
