"""``streamduck check-credentials``: really acquire an Entra ID token for each scope StreamDuck uses.

Constructing a credential validates nothing (the earlier CLI reported every credential "Available" that
way). Here ``DefaultAzureCredential.get_token`` is called for each scope, so a row is OK only when Entra ID
issued a token. A failure carries the SDK's reason for every credential of the chain that was tried.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.clock import iso_utc

# The data-plane scopes StreamDuck's identity needs a token for.
SCOPES: tuple[tuple[str, str], ...] = (
    ("Event Hubs", "https://eventhubs.azure.net/.default"),
    ("Storage", "https://storage.azure.com/.default"),
    ("Redis", "https://redis.azure.com/.default"),
)

# "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. ..." in the chain's message
_ATTEMPT = re.compile(r"^\t(?P<name>[A-Za-z]+Credential): (?P<reason>.*)$")


@dataclass
class ScopeResult:
    resource: str
    scope: str
    ok: bool = False
    credential: str | None = None
    expires_on: str | None = None
    identity: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    attempts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "scope": self.scope,
            "status": "ok" if self.ok else "failed",
            "credential": self.credential,
            "expires_on": self.expires_on,
            "identity": self.identity,
            "error": self.error,
            "attempts": self.attempts,
            "seconds": self.seconds,
        }


def attempts_of(message: str) -> dict[str, str]:
    """Per credential of the chain, the reason it gave (parsed from DefaultAzureCredential's message)."""
    found: dict[str, str] = {}
    for line in message.splitlines():
        match = _ATTEMPT.match(line)
        if match:
            found[match["name"]] = match["reason"].strip()
    return found


def _claims(token: str) -> dict[str, str]:
    """Who the token was issued to (unverified JWT payload: only displayed, never trusted)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    keys = ("oid", "tid", "appid", "upn", "idtyp")
    return {k: str(data[k]) for k in keys if data.get(k) is not None}


def _answering_credential(credential: Any) -> str | None:
    # azure-identity has no public API naming the credential of the chain that answered; the chain keeps
    # it in ``_successful_credential``. Read defensively: absent in another SDK version means "not known".
    answered = getattr(credential, "_successful_credential", None)
    return type(answered).__name__ if answered is not None else None


def _one(credential: Any, result: ScopeResult) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    started = time.monotonic()
    try:
        token = credential.get_token(result.scope)
    except ClientAuthenticationError as exc:
        message = str(exc.message or exc)
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        result.attempts = attempts_of(message)
        sticky = _answering_credential(credential)
        if result.attempts:
            result.error = f"no credential of the chain issued a token ({len(result.attempts)} tried)"
        elif sticky is not None:
            # Once one credential of the chain answered (for another scope), DefaultAzureCredential asks
            # only that one: its refusal is the whole story.
            result.attempts = {sticky: first}
            result.error = f"{sticky} (the credential that answered) issued no token: {first}"
        else:
            result.error = first
    except Exception as exc:  # noqa: BLE001 - any failure is this scope's result, reported with its reason
        lines = str(exc).strip().splitlines()
        result.error = f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]
    else:
        result.ok = True
        result.credential = _answering_credential(credential) or "not reported by the SDK"
        result.expires_on = iso_utc(datetime.fromtimestamp(token.expires_on, tz=UTC))
        result.identity = _claims(token.token)
    result.seconds = round(time.monotonic() - started, 3)


def check_credentials(timeout: float) -> list[ScopeResult]:
    """One token request per scope, in order, all together bounded by ``timeout`` seconds.

    In order, with one credential, like the app: once a credential of the chain answered, the chain asks
    only that one for the next scopes (DefaultAzureCredential's behaviour), so the report is deterministic.
    """
    from azure.identity import DefaultAzureCredential

    # The chain logs its own failure as a warning; it is reported here, per scope, with every reason.
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    # process_timeout bounds the developer tool credentials (az, azd, PowerShell); the join below bounds
    # everything else (a managed identity endpoint that does not answer, for example).
    credential = DefaultAzureCredential(process_timeout=max(1, int(timeout)))
    done: list[ScopeResult] = []

    def work() -> None:
        for resource, scope in SCOPES:
            result = ScopeResult(resource, scope)
            _one(credential, result)
            done.append(result)

    worker = threading.Thread(target=work, name="token-requests", daemon=True)
    worker.start()
    worker.join(timeout)  # on timeout the daemon thread is abandoned; the process exits without it
    finished = list(done)
    for resource, scope in SCOPES[len(finished) :]:
        late = ScopeResult(resource, scope, seconds=timeout)
        late.error = f"no token within {timeout:g}s (timeout: a credential of the chain did not answer)"
        finished.append(late)
    return finished
