"""The Redis the demo writes to: ``REDIS_URL`` when it is set (it must answer); otherwise a Redis named with
``--local-redis`` when it answers; otherwise a temporary ``redis-server`` that the demo starts and stops
itself. A Redis that merely happens to run on the default port is never written to unless it is named.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import StreamDuckError


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def temporary_redis(local_url: str | None = None) -> Iterator[str]:
    """Start ``redis-server`` on a free loopback port (no persistence); stop it on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        tried = f", none answers at {local_url} (--local-redis)" if local_url else ""
        raise RedisUnavailable(
            f"Redis is needed: none is configured (REDIS_URL){tried}, and redis-server is not installed to "
            "start one. Install it (apt-get install redis-server, or bash scripts/services.sh install redis), "
            "set REDIS_URL, or name a running Redis with --local-redis."
        )
    with tempfile.TemporaryDirectory(prefix="streamduck-redis-") as folder:
        port = _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not _pings(url, 0.2):
                if process.poll() is not None or time.monotonic() > deadline:
                    detail = (
                        (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip()
                    )
                    raise RedisUnavailable(
                        f"could not start a temporary redis-server on port {port}: {detail[:200]}"
                    )
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextmanager
def redis_for_demo(environ: dict[str, str], local_url: str | None = None) -> Iterator[tuple[str, str]]:
    """Yield (url, how) and leave ``environ['REDIS_URL']`` pointing at a Redis that answers.

    In order: ``REDIS_URL`` (must answer), else ``local_url`` (``--local-redis``) when it answers, else a
    temporary ``redis-server`` found on PATH. Raises :class:`RedisUnavailable` when none can be had.
    """
    configured = environ.get("REDIS_URL")
    if configured:
        if not _pings(configured, 2.0):
            raise RedisUnavailable(
                "REDIS_URL is set but Redis does not answer there; start it, fix REDIS_URL, or unset it "
                "to let the demo start a temporary redis-server"
            )
        yield configured, "configured (REDIS_URL)"
        return
    if local_url and _pings(local_url, 0.5):
        environ["REDIS_URL"] = local_url
        yield local_url, "local (--local-redis)"
        return
    with temporary_redis(local_url) as url:
        environ["REDIS_URL"] = url
        yield url, "temporary redis-server started by the demo"
