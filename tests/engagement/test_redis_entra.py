"""Microsoft Entra ID sign-in to Redis through redis-entraid: when it is used, which identity it asks, the user
name and token, error typing, and a real Redis (ACL user named after the object id, accepting only the tokens the
credential issued) accepting the sign-in and the background renewal of the pooled connection."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from redis_entraid.identity_provider import DefaultAzureCredentialProvider, ManagedIdentityProvider

from shared.engagement.redis_io import (
    ENTRA_SCOPE,
    entra_credential_provider,
    redis_client,
    redis_errors,
    use_entra_auth,
)
from shared.errors import ConfigError, TransientError

OID = "6f1c2a1e-9d2b-4f4e-8a47-0b5e3c2d1a90"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass
class Credential:
    """An azure-core ``TokenCredential``: a new JWT access token (``lifetime`` seconds) per call, or ``error``.

    ``issued`` runs with each token before it is handed out (the real Redis learns it there)."""

    lifetime: int = 3600
    oid: str = OID
    error: Exception | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    issued: Callable[[str], None] = lambda token: None
    scopes: list[tuple[str, ...]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with self.lock:
            self.scopes.append(scopes)
            if self.error is not None:
                raise self.error
            expires_on = int(time.time()) + self.lifetime
            claims = {"oid": self.oid, "exp": expires_on, "n": len(self.tokens) + 1, **self.claims}
            token = jwt({k: v for k, v in claims.items() if v is not None})
            self.issued(token)
            self.tokens.append(token)
            return AccessToken(token, expires_on)


def test_entra_auth_only_without_a_password_and_with_an_identity() -> None:
    identity = {"AZURE_CLIENT_ID": CLIENT_ID}
    assert use_entra_auth("rediss://cache.example:10000/0", environ=identity)
    assert use_entra_auth("rediss://cache.example:10000/0", entra=True, environ={})
    assert not use_entra_auth("rediss://cache.example:10000/0", environ={})
    assert not use_entra_auth("rediss://:secret@cache.example:10000/0", entra=True, environ=identity)
    assert not use_entra_auth("rediss://user:secret@cache.example:10000/0", environ=identity)


def test_the_user_assigned_identity_of_azure_client_id_else_the_default_credential() -> None:
    managed = entra_credential_provider({"AZURE_CLIENT_ID": CLIENT_ID})
    assert isinstance(managed._idp, ManagedIdentityProvider)
    assert managed._idp._resource == "https://redis.azure.com/"
    assert (
        managed._idp._app._managed_identity["Id"] == CLIENT_ID
    )  # msal's user-assigned identity, by client id
    default = entra_credential_provider({})
    assert isinstance(default._idp, DefaultAzureCredentialProvider)
    assert default._idp._scopes == (ENTRA_SCOPE,)


def test_user_name_is_the_object_id_and_password_the_token() -> None:
    credential = Credential()
    provider = entra_credential_provider(credential=credential)
    user, password = provider.get_credentials()
    assert user == OID
    assert password == credential.tokens[0]
    assert credential.scopes[0] == (ENTRA_SCOPE,)


@pytest.mark.parametrize(
    ("credential", "expected", "variable"),
    [
        (
            Credential(error=CredentialUnavailableError("no managed identity endpoint")),
            ConfigError,
            "AZURE_CLIENT_ID",
        ),
        (Credential(claims={"exp": None}), ConfigError, "REDIS_URL"),  # a token without expiry
        (Credential(error=ClientAuthenticationError("token endpoint timed out")), TransientError, None),
    ],
)
def test_token_errors_become_streamduck_errors(
    credential: Credential, expected: type[Exception], variable: str | None
) -> None:
    provider = entra_credential_provider(credential=credential)
    with pytest.raises(expected) as info, redis_errors():
        provider.get_credentials()
    if isinstance(info.value, ConfigError):
        assert set(info.value.problems) == {variable}


def test_real_redis_accepts_the_sign_in_and_the_renewal_of_pooled_connections(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    oid = str(uuid.uuid4())

    def register(token: str) -> None:
        """The first sign-in takes two tokens (the connection's and the renewal loop's first, which a real
        credential serves from its cache): Redis accepts both. From the first renewal on, Redis accepts the token
        issued last and no other."""
        renewal = len(credential.tokens) >= 2
        admin.acl_setuser(
            oid,
            enabled=True,
            reset_passwords=renewal,
            passwords=[f"+{token}"],
            keys=["*"],
            categories=["+@all"],
        )

    credential = Credential(lifetime=3, oid=oid, issued=register)

    def auth_calls() -> tuple[int, int]:
        stats = admin.info("commandstats").get("cmdstat_auth", {})
        return int(stats.get("calls", 0)), int(stats.get("failed_calls", 0))

    client: redis.Redis | None = None
    try:
        url = f"{redis_url}?client_name=entra-{oid[:8]}"  # a client of its own in the process-wide cache
        client = redis_client(url, entra=True, credential=credential)
        calls, failed = auth_calls()
        assert client.ping() is True
        assert client.acl_whoami() == oid
        signed_in = len(credential.tokens)  # the connection's token and the renewal loop's first one
        # within 70% of the 3 s lifetime the provider renews the token and the pooled connection signs in again
        # with it; Redis no longer knows any earlier token, so a successful AUTH used the new one
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            len(credential.tokens) <= signed_in or auth_calls()[0] < calls + 2
        ):
            time.sleep(0.1)
        assert len(credential.tokens) > signed_in, "no renewal"
        assert auth_calls() == (calls + 2, failed)  # first sign-in and the renewal's, none failed
        assert client.acl_whoami() == oid  # the same pooled connection, still signed in
        admin.client_kill_filter(_type="normal", user=oid)  # a new connection signs in with a new token
        assert client.ping() is True
        assert client.acl_whoami() == oid
        assert not [e for e in admin.acl_log() if e.get("username") == oid]  # no refused sign-in
    finally:
        if client is not None:
            stop_renewals(client)
        admin.acl_deluser(oid)
        admin.close()


def stop_renewals(client: redis.Redis) -> None:
    """Stop the provider's renewal loop before its user goes, so no renewal fails after the test. redis-entraid
    has no public stop; its token manager's ``stop`` is the one the library itself returns from ``start``."""
    provider = client.get_connection_kwargs()["credential_provider"]
    provider._token_mgr.stop()
