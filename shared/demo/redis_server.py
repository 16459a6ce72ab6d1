"""The Redis the demo writes to: ``REDIS_URL`` when it is set (it must answer); otherwise a Redis named with
``--local-redis`` when it answers; otherwise the demo's own ``redis-server``.

The demo's own Redis keeps its data under ``.streamduck/redis/`` (append-only file) and stays running after a
demo that finished, so ``streamduck status`` and ``streamduck dashboard`` still find the leaderboard; its pid
is in ``.streamduck/redis/redis.pid`` and ``streamduck demo --stop`` (``make demo-stop``) stops it. A demo
that is stopped before it finishes (Ctrl+C, SIGTERM, SIGHUP, an error) stops the Redis it started itself.
A Redis that merely happens to run on the default port is never written to unless it is named.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shared.demo.state import STATE_DIR
from shared.errors import StreamDuckError

REDIS_DIR = STATE_DIR / "redis"
PID_FILE = REDIS_DIR / "redis.pid"
LOG_FILE = REDIS_DIR / "redis.log"
OWN = "the demo's own redis-server, data in .streamduck/redis"


class RedisUnavailable(StreamDuckError):
    """No Redis for the demo: none is configured or named, or the one named does not answer."""


def _pings(url: str, timeout: float = 1.0) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _free_port(preferred: int | None = None) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", preferred or 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_redis(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"redis-server" in command and state != "Z"


def own_redis_pid() -> int | None:
    """The pid of the demo's own Redis when it runs (a stale pid file is removed)."""
    try:
        pid = int(PID_FILE.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if _is_redis(pid):
        return pid
    PID_FILE.unlink(missing_ok=True)
    return None


@dataclass
class Started:
    """A ``redis-server`` this process started."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if own_redis_pid() in (None, self.process.pid):
            PID_FILE.unlink(missing_ok=True)


def _start_own(local_url: str | None, port: int | None) -> Started:
    binary = shutil.which("redis-server")
    if binary is None:
        tried = f", none answers at {local_url} (--local-redis)" if local_url else ""
        raise RedisUnavailable(
            f"Redis is needed: none is configured (REDIS_URL){tried}, and redis-server is not installed to "
            "start one. Install it (apt-get install redis-server, or bash scripts/services.sh install redis), "
            "set REDIS_URL, or name a running Redis with --local-redis."
        )
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port = _free_port(port)
    folder = str(REDIS_DIR.resolve())
    with LOG_FILE.open("ab") as log:
        process = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl+C at the terminal reaches the demo, which decides
        )
    started = Started(f"redis://127.0.0.1:{port}/0", process)
    PID_FILE.write_text(f"{process.pid}\n", encoding="utf-8")
    try:
        deadline = time.monotonic() + 10
        while not _pings(started.url, 0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = LOG_FILE.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
                raise RedisUnavailable(
                    f"could not start redis-server on port {port}: {' '.join(tail)[:200]} (log: {LOG_FILE})"
                )
            time.sleep(0.05)
    except BaseException:
        started.stop()
        raise
    return started


def stop_own_redis(timeout: float = 10) -> int | None:
    """Stop the demo's own Redis (SIGTERM: it writes its data and exits); its pid, or None if none ran."""
    pid = own_redis_pid()
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_redis(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += 5
        time.sleep(0.05)
    PID_FILE.unlink(missing_ok=True)
    return pid


def _port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


@contextmanager
def redis_for_demo(
    environ: dict[str, str], local_url: str | None = None, *, own_url: str | None = None
) -> Iterator[tuple[str, str]]:
    """Yield (url, how) and leave ``environ['REDIS_URL']`` pointing at a Redis that answers.

    In order: ``REDIS_URL`` (must answer) unless it is ``own_url``, the demo's own Redis of an earlier run;
    else ``local_url`` (``--local-redis``) when it answers; else the demo's own ``redis-server`` (started
    again when it is not running). A Redis started here is stopped when the block ends by an exception (or a
    signal turned into one) and left running when it ends normally. Raises :class:`RedisUnavailable` when no
    Redis can be had.
    """
    configured = environ.get("REDIS_URL")
    if configured and configured != own_url:
        if not _pings(configured, 2.0):
            raise RedisUnavailable(
                "REDIS_URL is set but Redis does not answer there; start it, fix REDIS_URL, or unset it "
                "to let the demo start its own redis-server"
            )
        yield configured, "configured (REDIS_URL)"
        return
    if not configured and local_url and _pings(local_url, 0.5):
        environ["REDIS_URL"] = local_url
        yield local_url, "local (--local-redis)"
        return
    if configured and own_redis_pid() is not None and _pings(configured, 1.0):
        yield configured, OWN
        return
    started = _start_own(local_url, _port(configured) if configured else None)
    environ["REDIS_URL"] = started.url
    try:
        yield started.url, OWN
    except BaseException:
        started.stop()
        raise
