"""Redis adapter: connections and the one place where redis-py exceptions become StreamDuck errors.

Unavailable, timing out, loading, failing over or read-only -> :class:`TransientError` (the host retries
the batch; every Redis write of the pipeline is atomic and idempotent, so a retry completes it). Any other
reply error is a bug or a misconfiguration -> :class:`TerminalError`.

Microsoft Entra ID: Azure Managed Redis is provisioned with Entra ID only, so ``REDIS_URL`` carries no
password there. When the URL has no password and ``AZURE_CLIENT_ID`` (the app's user-assigned identity) is
set, or ``REDIS_ENTRA_AUTH`` is true, connections sign in with Microsoft's ``redis-entraid`` credential provider
(``create_from_managed_identity`` for ``AZURE_CLIENT_ID``, else ``create_from_default_azure_credential``): the
user name is the identity's object id (the token's ``oid`` claim), the password an access token for Redis.
The provider renews the token in the background (at 70% of its lifetime) and redis-py re-authenticates the
pooled connections (``AUTH``) without dropping them. Errors getting a token are translated here too.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
from redis.auth.err import InvalidTokenSchemaErr, RequestTokenErr, TokenRenewalErr
from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
from redis_entraid.cred_provider import (
    EntraIdCredentialsProvider,
    create_from_default_azure_credential,
    create_from_managed_identity,
)
from redis_entraid.identity_provider import (
    DefaultAzureCredentialProvider,
    ManagedIdentityIdType,
    ManagedIdentityType,
)

from shared.errors import ConfigError, StreamDuckError, TerminalError, TransientError

STORE = "redis"
ENTRA_SCOPE = "https://redis.azure.com/.default"
ENTRA_RESOURCE = "https://redis.azure.com/"  # the same audience, as the managed identity endpoint names it
# redis-entraid's defaults, except 100 ms (not 3 ms) between the 3 retries of a failed token request.
_TOKEN_MANAGER = TokenManagerConfig(
    expiration_refresh_ratio=0.7,  # renew when 70% of the token's lifetime has passed
    lower_refresh_bound_millis=0,
    token_request_execution_timeout_in_ms=100,
    retry_policy=RetryPolicy(max_attempts=3, delay_in_ms=100),
)

log = logging.getLogger("streamduck.redis")

_TRANSIENT: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ReadOnlyError,
    OSError,
)


# What redis-entraid / redis-py's token manager raise when no usable token can be had (not RedisError).
_TOKEN_ERRORS: tuple[type[Exception], ...] = (RequestTokenErr, InvalidTokenSchemaErr, TokenRenewalErr)
_CAUGHT: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError, *_TOKEN_ERRORS)


def translate_redis_error(exc: BaseException) -> StreamDuckError:
    """The StreamDuck error for a redis-py (or Entra ID token) exception."""
    if isinstance(exc, StreamDuckError):
        return exc
    if isinstance(exc, _TOKEN_ERRORS):
        return translate_token_error(exc)
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return ConfigError({"REDIS_URL": f"Redis refused the credentials: {exc}"})
    if isinstance(exc, _TRANSIENT):
        return TransientError(f"{type(exc).__name__}: {exc}", store=STORE, cause=exc)
    if isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        ("BUSY", "LOADING", "MASTERDOWN")
    ):
        return TransientError(f"{type(exc).__name__}: {exc}", store=STORE, cause=exc)
    return TerminalError(f"redis: {type(exc).__name__}: {exc}")


@contextmanager
def redis_errors() -> Iterator[None]:
    """Translate redis-py exceptions raised in the block."""
    try:
        yield
    except _CAUGHT as exc:
        raise translate_redis_error(exc) from exc


# --------------------------------------------------------------------------------------- Entra ID


class AccessTokenLike(Protocol):
    """``azure.core.credentials.AccessToken``."""

    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int: ...


class TokenCredentialLike(Protocol):
    """``azure.core.credentials.TokenCredential`` (what azure-identity's credentials implement)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: redis-entraid puts the credential's exception in ``args[0]`` and the chain."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(c for c in (current.__cause__, current.__context__) if c is not None)


def translate_token_error(exc: BaseException) -> StreamDuckError:
    """No Entra ID token for Redis: no identity at all -> :class:`ConfigError` naming the setting to fix; a token
    that is not a JWT with ``exp`` -> :class:`ConfigError`; anything else (the token endpoint unreachable,
    throttled, timing out) -> :class:`TransientError`."""
    from azure.identity import CredentialUnavailableError

    causes = list(_causes(exc))
    if any(isinstance(c, CredentialUnavailableError) for c in causes):
        return ConfigError(
            {
                "AZURE_CLIENT_ID": "no Azure identity to sign in to Redis with Entra ID (REDIS_URL has no "
                f"password): {exc}; set AZURE_CLIENT_ID to the app's user-assigned identity (locally: az login), "
                "or put a password in REDIS_URL"
            }
        )
    if any(isinstance(c, InvalidTokenSchemaErr) for c in causes):
        return ConfigError({"REDIS_URL": f"the Entra ID access token for Redis is not usable: {exc}"})
    return TransientError(f"Entra ID token for Redis: {type(exc).__name__}: {exc}", store=STORE, cause=exc)


def entra_credential_provider(
    environ: Mapping[str, str] | None = None, *, credential: TokenCredentialLike | None = None
) -> EntraIdCredentialsProvider:
    """redis-entraid's credential provider for ``https://redis.azure.com``.

    ``AZURE_CLIENT_ID`` set: the app's user-assigned managed identity (``create_from_managed_identity``); else
    ``create_from_default_azure_credential`` (a developer's ``az login``, environment credentials, a
    system-assigned identity). ``credential`` (any azure-core ``TokenCredential``) replaces both (tests).
    """
    if credential is not None:
        idp = DefaultAzureCredentialProvider(credential, (ENTRA_SCOPE,))
        return EntraIdCredentialsProvider(idp, _TOKEN_MANAGER)
    env = os.environ if environ is None else environ
    client_id = env.get("AZURE_CLIENT_ID", "").strip()
    if client_id:
        return create_from_managed_identity(
            identity_type=ManagedIdentityType.USER_ASSIGNED,
            resource=ENTRA_RESOURCE,
            id_type=ManagedIdentityIdType.CLIENT_ID,
            id_value=client_id,
            token_manager_config=_TOKEN_MANAGER,
        )
    return create_from_default_azure_credential((ENTRA_SCOPE,), token_manager_config=_TOKEN_MANAGER)


def use_entra_auth(url: str, *, entra: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to sign in with Entra ID: the URL has no password, and ``entra`` or ``AZURE_CLIENT_ID`` is set."""
    env = os.environ if environ is None else environ
    try:
        password = urlsplit(url).password
    except ValueError:
        return False
    if password:
        return False
    return entra or bool(env.get("AZURE_CLIENT_ID", "").strip())


# --------------------------------------------------------------------------------------- clients

_CLIENTS: dict[tuple[str, bool], redis.Redis] = {}
_LOCK = threading.Lock()


def redis_client(
    url: str,
    *,
    entra: bool = False,
    credential: TokenCredentialLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> redis.Redis:
    """One client (connection pool) per URL per process; thread-safe.

    Signs in with Microsoft Entra ID when :func:`use_entra_auth` says so (``entra`` is ``REDIS_ENTRA_AUTH``);
    ``credential`` (an azure-core ``TokenCredential``) replaces the azure-identity credential (tests).
    """
    with_entra = use_entra_auth(url, entra=entra, environ=environ)
    key = (url, with_entra)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            options: dict[str, Any] = {
                "socket_connect_timeout": 5,
                "socket_timeout": 30,
                "health_check_interval": 30,
            }
            provider: EntraIdCredentialsProvider | None = None
            if with_entra:
                provider = entra_credential_provider(environ, credential=credential)
                options["credential_provider"] = provider
                username = urlsplit(url).username
                if username:
                    url = url.replace(f"{username}@", "", 1)  # the user name is the identity's object id
            try:
                pool = redis.ConnectionPool.from_url(url, **options)
            except ValueError as exc:
                raise ConfigError({"REDIS_URL": f"{exc}, for example redis://127.0.0.1:6379/0"}) from exc
            client = redis.Redis(connection_pool=pool, credential_provider=provider)
            client.auto_close_connection_pool = True
            _CLIENTS[key] = client
        return client
