"""scripts/services.sh: a Kafka readiness wait that times out says why (the client's last error)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "services.sh"


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.slow  # waits out the 2 s readiness timeout
def test_kafka_readiness_timeout_names_the_last_client_error(tmp_path: Path) -> None:
    port = _closed_port()
    pidfile = tmp_path / "kafka.pid"
    pidfile.write_text(str(os.getpid()))  # a live process standing in for the broker
    shell = (
        'source "$1"; KAFKA_PORT="$2"; KAFKA_PID="$3"; TIMEOUT=2; kafka_client_ready "$4"'  # sourced: no main
    )
    done = subprocess.run(
        ["bash", "-c", shell, "services", str(SCRIPT), str(port), str(pidfile), sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stdout == ""  # sourcing ran no command
    message = done.stderr.strip()
    assert message.startswith(f"no metadata from 127.0.0.1:{port} after 2s (last error: KafkaException: ")
    assert "_TRANSPORT" in message or "_TIMED_OUT" in message
    assert "Traceback" not in message
