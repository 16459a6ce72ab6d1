"""Redis adapter: connections and the one place where redis-py exceptions become StreamDuck errors.

Unavailable, timing out, loading, failing over or read-only -> :class:`TransientError` (the host retries
the batch; every Redis write of the pipeline is atomic and idempotent, so a retry completes it). Any other
reply error is a bug or a misconfiguration -> :class:`TerminalError`.

Microsoft Entra ID: Azure Managed Redis is provisioned with Entra ID only, so ``REDIS_URL`` carries no
password there. When the URL has no password and ``AZURE_CLIENT_ID`` (the app's user-assigned identity) is
set, or ``REDIS_ENTRA_AUTH`` is true, connections sign in with an access token for
``https://redis.azure.com/.default`` from azure-identity (``ManagedIdentityCredential`` for
``AZURE_CLIENT_ID``, else ``DefaultAzureCredential``) as the password and the identity's object id (the
token's ``oid`` claim) as the user name. :class:`EntraIdCredentialProvider` renews the token before it expires
and hands it to redis-py, which re-authenticates the pooled connections (``AUTH``) without dropping them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
from redis.auth.token import SimpleToken
from redis.credentials import StreamingCredentialProvider

from shared.errors import ConfigError, StreamDuckError, TerminalError, TransientError

STORE = "redis"
ENTRA_SCOPE = "https://redis.azure.com/.default"

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


def translate_redis_error(exc: BaseException) -> StreamDuckError:
    """The StreamDuck error for a redis-py exception."""
    if isinstance(exc, StreamDuckError):
        return exc
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
    except (redis.exceptions.RedisError, OSError) as exc:
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


def token_object_id(token: str) -> str:
    """The ``oid`` claim (object id of the signed-in identity) of a JWT access token, not verified."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        oid = claims["oid"]
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            {"REDIS_URL": f"the Entra ID access token for Redis has no object id (oid claim): {exc!r}"}
        ) from None
    if not isinstance(oid, str) or not oid:
        raise ConfigError({"REDIS_URL": "the Entra ID access token for Redis has an empty object id (oid)"})
    return oid


class EntraIdCredentialProvider(StreamingCredentialProvider):
    """Redis credentials from Microsoft Entra ID: user name = the identity's object id, password = a token.

    A token is renewed ``refresh_margin`` seconds before it expires (at most half its lifetime): by
    :meth:`get_credentials` when a connection is opened, and by a timer that hands the new token to redis-py,
    which sends ``AUTH`` on every pooled connection. A failed renewal is retried every ``retry_seconds`` while
    the current token lasts. Errors getting a token surface as redis-py errors (so as StreamDuck errors):
    no identity available -> :class:`redis.exceptions.AuthenticationError` (configuration), anything else ->
    :class:`redis.exceptions.ConnectionError` (transient).
    """

    def __init__(
        self,
        credential: TokenCredentialLike,
        *,
        scope: str = ENTRA_SCOPE,
        refresh_margin: float = 300.0,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        self.credential = credential
        self.scope = scope
        self.refresh_margin = refresh_margin
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.background = background
        self._lock = threading.Lock()
        self._token: AccessTokenLike | None = None
        self._username = ""
        self._received_at = 0.0
        self._next: list[Callable[[Any], None]] = []
        self._errors: list[Callable[[Exception], None]] = []
        self._timer: threading.Timer | None = None

    # redis-py's StreamingCredentialProvider
    def on_next(self, callback: Callable[[Any], None]) -> None:
        self._next.append(callback)

    def on_error(self, callback: Callable[[Exception], None]) -> None:
        self._errors.append(callback)

    def is_streaming(self) -> bool:
        return True

    def get_credentials(self) -> tuple[str, str]:
        with self._lock:
            token = self._token
            if token is None or self.clock() >= self.refresh_at(token):
                token = self._fetch()
            return self._username, token.token

    async def get_credentials_async(self) -> tuple[str, str]:
        return self.get_credentials()

    def refresh_at(self, token: AccessTokenLike) -> float:
        """When ``token`` is renewed: ``refresh_margin`` before it expires, at most half its lifetime."""
        lifetime = max(token.expires_on - self._received_at, 0.0)
        return token.expires_on - min(self.refresh_margin, lifetime / 2)

    def refresh(self) -> bool:
        """Renew the token now if it is due and hand it to the connections; whether a new token was taken."""
        with self._lock:
            current = self._token
            if current is not None and self.clock() < self.refresh_at(current):
                self._schedule(self.refresh_at(current))
                return False
            try:
                token = self._fetch()
            except redis.exceptions.RedisError as exc:
                log.warning(
                    "Redis Entra ID token renewal failed, retrying in %.0f s: %s", self.retry_seconds, exc
                )
                self._schedule(self.clock() + self.retry_seconds)
                return False
            if current is not None and token.expires_on <= current.expires_on:
                self._schedule(
                    self.clock() + self.retry_seconds
                )  # the credential still hands out the old one
                return False
            update = SimpleToken(
                token.token, token.expires_on * 1000.0, self._received_at * 1000.0, {"oid": self._username}
            )
            callbacks = list(self._next)
        for callback in callbacks:
            callback(update)
        return True

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _fetch(self) -> AccessTokenLike:
        """A new token from the credential (caller holds the lock); schedules the next renewal."""
        from azure.core.exceptions import ClientAuthenticationError
        from azure.identity import CredentialUnavailableError

        try:
            token = self.credential.get_token(self.scope)
        except CredentialUnavailableError as exc:
            raise redis.exceptions.AuthenticationError(
                f"no Azure identity for Redis Entra ID auth: {exc}"
            ) from exc
        except ClientAuthenticationError as exc:
            raise redis.exceptions.ConnectionError(f"Entra ID token for Redis: {exc}") from exc
        self._username = token_object_id(token.token)
        self._received_at = self.clock()
        self._token = token
        self._schedule(self.refresh_at(token))
        return token

    def _schedule(self, at: float) -> None:
        if not self.background:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(max(at - self.clock(), 1.0), self.refresh)
        self._timer.daemon = True
        self._timer.name = "redis-entra-token"
        self._timer.start()


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


def entra_credential(environ: Mapping[str, str] | None = None) -> TokenCredentialLike:
    """``ManagedIdentityCredential`` of ``AZURE_CLIENT_ID`` when set, else ``DefaultAzureCredential``."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    env = os.environ if environ is None else environ
    client_id = env.get("AZURE_CLIENT_ID", "").strip()
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


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
    ``credential`` replaces the azure-identity credential (tests).
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
            provider: EntraIdCredentialProvider | None = None
            if with_entra:
                provider = EntraIdCredentialProvider(credential or entra_credential(environ))
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
