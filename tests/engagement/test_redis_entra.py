"""Microsoft Entra ID sign-in to Redis: when it is used, the user name and token, renewal before expiry, error
typing, and a real Redis (ACL user named after the object id) accepting the tokens and the renewal."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from shared.engagement.redis_io import (
    ENTRA_SCOPE,
    EntraIdCredentialProvider,
    redis_client,
    redis_errors,
    token_object_id,
    use_entra_auth,
)
from shared.errors import ConfigError, TransientError

OID = "6f1c2a1e-9d2b-4f4e-8a47-0b5e3c2d1a90"


def jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass
class Token:
    token: str
    expires_on: int


@dataclass
class FakeCredential:
    """Hands out a new token (``lifetime`` seconds) per call, or raises ``error``; records the scopes."""

    clock: list[float]  # now = clock[0] + offset (set ``real`` to add the wall clock)
    lifetime: int = 3600
    real: bool = False
    oid: str = OID
    error: Exception | None = None
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str, **kwargs: Any) -> Token:
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        n = len(self.scopes)
        return Token(jwt({"oid": self.oid, "n": n}), int(self.now()) + self.lifetime)

    def now(self) -> float:
        return (time.time() if self.real else 0.0) + self.clock[0]


def provider(credential: FakeCredential) -> EntraIdCredentialProvider:
    return EntraIdCredentialProvider(credential, clock=credential.now, background=False)


def test_entra_auth_only_without_a_password_and_with_an_identity() -> None:
    identity = {"AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}
    assert use_entra_auth("rediss://cache.example:10000/0", environ=identity)
    assert use_entra_auth("rediss://cache.example:10000/0", entra=True, environ={})
    assert not use_entra_auth("rediss://cache.example:10000/0", environ={})
    assert not use_entra_auth("rediss://:secret@cache.example:10000/0", entra=True, environ=identity)
    assert not use_entra_auth("rediss://user:secret@cache.example:10000/0", environ=identity)


def test_user_name_is_the_object_id_claim() -> None:
    assert token_object_id(jwt({"oid": OID, "appid": "client"})) == OID
    for bad in ("not-a-jwt", jwt({"appid": "client"}), jwt({"oid": ""})):
        with pytest.raises(ConfigError) as info:
            token_object_id(bad)
        assert "REDIS_URL" in info.value.problems


def test_token_is_cached_then_renewed_before_it_expires() -> None:
    credential = FakeCredential(clock=[1_000_000.0])
    entra = provider(credential)
    user, first = entra.get_credentials()
    assert user == OID
    assert credential.scopes == [(ENTRA_SCOPE,)]
    credential.clock[0] += 3600 - 301  # more than 5 minutes left: cached
    assert entra.get_credentials() == (OID, first)
    assert len(credential.scopes) == 1
    credential.clock[0] += 2  # within the 5-minute margin: renewed
    user, second = entra.get_credentials()
    assert (user, len(credential.scopes)) == (OID, 2)
    assert second != first


def test_short_lived_tokens_renew_at_half_life() -> None:
    credential = FakeCredential(clock=[0.0], lifetime=240)
    entra = provider(credential)
    _, first = entra.get_credentials()
    credential.clock[0] = 119.0
    assert entra.get_credentials()[1] == first
    credential.clock[0] = 120.0
    assert entra.get_credentials()[1] != first


def test_renewal_hands_the_new_token_to_redis_py() -> None:
    credential = FakeCredential(clock=[0.0])
    entra = provider(credential)
    seen: list[Any] = []
    entra.on_next(seen.append)
    assert entra.is_streaming()
    entra.get_credentials()
    assert entra.refresh() is False  # not due yet
    credential.clock[0] = 3600 - 60
    assert entra.refresh() is True
    (update,) = seen
    assert update.try_get("oid") == OID
    assert update.get_value() == entra.get_credentials()[1]
    assert update.get_expires_at_ms() == (3600 - 60 + 3600) * 1000


def test_token_errors_become_streamduck_errors() -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    for error, expected in (
        (CredentialUnavailableError("no managed identity endpoint"), ConfigError),
        (ClientAuthenticationError("token endpoint timed out"), TransientError),
    ):
        entra = provider(FakeCredential(clock=[0.0], error=error))
        with pytest.raises(expected), redis_errors():
            entra.get_credentials()
    failing = FakeCredential(clock=[0.0])
    entra = provider(failing)
    entra.get_credentials()
    failing.error = ClientAuthenticationError("down")
    failing.clock[0] = 3600 - 10
    assert entra.refresh() is False  # logged and retried later; the current token still works


def test_real_redis_accepts_the_object_id_and_token_and_the_renewal(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    oid = str(uuid.uuid4())
    credential = FakeCredential(clock=[0.0], oid=oid, real=True)
    tokens = [jwt({"oid": oid, "n": n}) for n in (1, 2)]  # what the credential hands out first and second
    admin.acl_setuser(oid, enabled=True, passwords=[f"+{tokens[0]}"], keys=["*"], categories=["+@all"])
    try:
        url = f"{redis_url}?client_name=entra-{oid[:8]}"  # a client of its own in the process-wide cache
        client = redis_client(url, entra=True, credential=credential)
        assert client.ping() is True
        assert client.acl_whoami() == oid
        entra = client.get_connection_kwargs()["credential_provider"]
        assert isinstance(entra, EntraIdCredentialProvider)
        entra.close()  # renew by hand below rather than by its timer
        entra.clock = credential.now
        # the token is renewed: Redis now knows only the new one; pooled connections re-authenticate
        admin.acl_setuser(oid, enabled=True, reset_passwords=True, passwords=[f"+{tokens[1]}"])
        credential.clock[0] = 3600 - 60
        assert entra.refresh() is True
        assert client.acl_whoami() == oid
        admin.client_kill_filter(_type="normal", user=oid)  # a new connection signs in with the new token
        assert client.ping() is True
        assert client.acl_whoami() == oid
        assert len(credential.scopes) == 2
    finally:
        admin.acl_deluser(oid)
        admin.close()
