"""check-credentials: a real token request per scope; OK only when Entra ID (or its stand-in) issued one.

The process gets a hermetic environment: HOME and AZURE_CONFIG_DIR in tmp_path and a PATH without az, azd
or pwsh, so no developer login of the host running the tests can answer. A managed identity endpoint is
emulated where a test needs a credential that answers (the App Service protocol: IDENTITY_ENDPOINT +
IDENTITY_HEADER).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from shared.cli.credentials import SCOPES
from tests.support.cli import base_env, run_cli


def no_credential_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return base_env(
        tmp_path,
        HOME=str(tmp_path),
        AZURE_CONFIG_DIR=str(tmp_path / "az"),
        PATH=str(empty),  # no az / azd / pwsh to ask
        **extra,
    )


def test_no_credential_fails_every_scope_with_reasons(tmp_path: Path) -> None:
    result = run_cli(
        "check-credentials", "--json", "--timeout", "20", env=no_credential_env(tmp_path), cwd=tmp_path
    )
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: no token for Event Hubs, Storage, Redis")
    assert "try: sign in with `az login`" in result.stderr.splitlines()[1]
    report = result.json()
    assert report["ok"] is False
    assert report["hint"].startswith("sign in with `az login`")
    assert [s["scope"] for s in report["scopes"]] == [scope for _, scope in SCOPES]
    assert [s["scope"] for s in report["scopes"]] == [
        "https://eventhubs.azure.net/.default",
        "https://storage.azure.com/.default",
        "https://redis.azure.com/.default",
    ]
    for scope in report["scopes"]:
        assert scope["status"] == "failed"
        assert scope["credential"] is None
        assert "no credential of the chain issued a token" in scope["error"]
        # the SDK's reason for each credential tried, e.g. the environment variables it lacks
        assert "EnvironmentCredential" in scope["attempts"]
        assert "ManagedIdentityCredential" in scope["attempts"]
        assert "not fully configured" in scope["attempts"]["EnvironmentCredential"]

    table = run_cli("check-credentials", env=no_credential_env(tmp_path), cwd=tmp_path)
    assert table.code == 1
    assert "Traceback" not in table.stderr
    for resource, _ in SCOPES:
        assert resource in table.stdout
    assert table.stdout.count("failed") >= 3
    assert "EnvironmentCredential:" in table.stdout


def _jwt(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


class _ManagedIdentity(BaseHTTPRequestHandler):
    """App Service managed identity endpoint: a token for every resource except Redis."""

    def do_GET(self) -> None:
        resource = parse_qs(urlparse(self.path).query).get("resource", [""])[0]
        if self.headers.get("X-IDENTITY-HEADER") != "secret-header" or "redis" in resource:
            status, payload = 400, {"error": "invalid_resource", "error_description": "not granted"}
        else:
            status = 200
            payload = {
                "access_token": _jwt({"oid": "object-1", "tid": "tenant-1"}),
                "expires_on": str(int(time.time()) + 3600),
                "resource": resource,
                "token_type": "Bearer",
            }
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: no request log on stderr
        return


@pytest.fixture
def identity_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ManagedIdentity)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/msi/token"
    finally:
        server.shutdown()
        server.server_close()


def test_says_which_credential_answered_and_fails_on_any_missing_scope(
    tmp_path: Path, identity_endpoint: str
) -> None:
    env = no_credential_env(tmp_path, IDENTITY_ENDPOINT=identity_endpoint, IDENTITY_HEADER="secret-header")
    result = run_cli("check-credentials", "--json", "--timeout", "20", env=env, cwd=tmp_path)
    assert result.code == 1, result.stderr  # Redis had no token: non-zero even though two scopes passed
    scopes = {s["resource"]: s for s in result.json()["scopes"]}
    for resource in ("Event Hubs", "Storage"):
        assert scopes[resource]["status"] == "ok"
        assert scopes[resource]["credential"] == "ManagedIdentityCredential"
        assert scopes[resource]["identity"] == {"oid": "object-1", "tid": "tenant-1"}
        assert scopes[resource]["expires_on"]
    assert scopes["Redis"]["status"] == "failed"
    assert "Token request error" in scopes["Redis"]["attempts"].get("ManagedIdentityCredential", ""), scopes[
        "Redis"
    ]
    assert "error: no token for Redis (1 of 3" in result.stderr


@pytest.mark.slow  # waits out the command's 2 s timeout
def test_an_endpoint_that_never_answers_is_cut_by_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/msi/token"
        env = no_credential_env(tmp_path, IDENTITY_ENDPOINT=endpoint, IDENTITY_HEADER="secret-header")
        started = time.monotonic()
        result = run_cli("check-credentials", "--json", "--timeout", "2", env=env, cwd=tmp_path)
        elapsed = time.monotonic() - started
    assert result.code == 1
    assert elapsed < 30, elapsed  # --timeout plus the interpreter start-up, not the SDK's own retries
    for scope in result.json()["scopes"]:
        assert scope["status"] == "failed"
        assert scope["error"].startswith("no token within 2s")
