"""Error taxonomy: the type alone decides between *retry* and *park*.

- :class:`TransientError` - the operation may succeed if repeated (connection lost, transaction conflict,
  service unavailable). Function code lets it propagate so that the host's retry policy holds the
  partition and nothing is checkpointed past unwritten data.
- :class:`TerminalError` - repeating cannot help (bad input, bad configuration). Bad *input* is parked
  in a dead-letter store with the reason; bad *configuration* stops start-up with a message naming the
  variable to fix.

Each driver's exceptions are translated in exactly one place (``translate_*`` in the sink modules).
"""

from __future__ import annotations


class StreamDuckError(Exception):
    """Base class for every error StreamDuck raises on purpose."""


class TransientError(StreamDuckError):
    """Retrying may succeed. Raised to the host so it does not move past unwritten data."""

    def __init__(self, message: str, *, store: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{store}: {message}")
        self.store = store
        self.cause = cause


class UnavailableError(TransientError):
    """A store could not be reached or used: the message is :func:`describe_unreachable`'s plain sentence."""

    def __init__(self, store: str, target: str, cause: BaseException | str, *, variable: str) -> None:
        sentence = describe_unreachable(store, target, cause, variable=variable)
        super().__init__(sentence, store=store, cause=cause if isinstance(cause, BaseException) else None)
        self.args = (sentence,)
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence


class TerminalError(StreamDuckError):
    """Retrying cannot help."""


class ConfigError(TerminalError):
    """One or more settings are invalid. ``problems`` maps each variable name to what is wrong with it."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        lines = [f"{name}: {reason}" for name, reason in sorted(self.problems.items())]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class BadInputError(TerminalError):
    """One event can never be loaded. It is parked with ``reason``; its neighbours still land."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


# ------------------------------------------------------------------ stores that cannot be reached, in plain words

# Store -> (name, what to try when nothing answers). The variable to fix is given by the caller.
_STORES: dict[str, tuple[str, str]] = {
    "kafka": ("Kafka", "start a broker there (bash scripts/services.sh start kafka) or set {variable}"),
    "redis": ("Redis", "start Redis there (bash scripts/services.sh start redis) or set {variable}"),
    "storage": (
        "the checkpoint storage",
        "for UseDevelopmentStorage=true start Azurite (bash scripts/services.sh start azurite), "
        "else set {variable}",
    ),
    "eventhubs": (
        "Event Hubs",
        "check {variable} and that you can sign in (streamduck check-credentials)",
    ),
    "clickhouse": ("ClickHouse", "check {variable}, CLICKHOUSE_PORT and CLICKHOUSE_SECURE"),
    "duckdb": ("DuckDB", "check {variable}"),
    "motherduck": ("MotherDuck", "check {variable} and outbound HTTPS to motherduck.com"),
    "postgres": ("PostgreSQL", "start it (bash scripts/services.sh start postgres) or set {variable}"),
}

# (pattern in the lower-cased message, plain reason, whether the hint applies). First match wins.
_REASONS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (
        (
            "name or service not known",
            "nodename nor servname",
            "_resolve",
            "getaddrinfo",
            "name resolution",
            "failed to resolve",
            "no address associated",
        ),
        "the host name does not resolve",
        False,
    ),
    (
        (
            "authentication",
            "sasl",
            "wrongpass",
            "noauth",
            "unauthorized",
            "401",
            "403",
            "access denied",
            "invalid token",
            "password",
        ),
        "it refused the credentials",
        False,
    ),
    (("certificate", "ssl", "tls handshake"), "the TLS handshake failed", False),
    (
        ("connection refused", "errno 111", "connect call failed", "actively refused", "econnrefused"),
        "connection refused (nothing listens there)",
        True,
    ),
    (
        (
            "_transport",
            "transport failure",
            "all brokers are down",
            "brokers are down",
            "connection reset",
            "connection closed",
            "disconnected",
        ),
        "no answer (connection refused or closed)",
        True,
    ),
    (("timed out", "timeout", "_timed_out", "deadline"), "no answer within the time allowed", True),
    (("could not set lock", "conflicting lock"), "the file is in use by another process", False),
    (("not found", "404", "does not exist", "no such"), "not found there", False),
)


def describe_unreachable(store: str, target: str, exc: BaseException | str, *, variable: str) -> str:
    """One plain sentence for a store that failed: what, where, from which setting, why, what to try.

    ``store`` is a key of the table above (``kafka``, ``redis``, ``storage``, ``eventhubs``, ``clickhouse``,
    ``duckdb``, ``motherduck``, ``postgres``); ``target`` the address tried; ``variable`` the setting it
    came from. Every client's failures are translated here, so each command says it the same way.
    """
    name, hint = _STORES.get(store, (store, "check {variable}"))
    text = str(exc)
    lowered = text.lower()
    found = next(((r, h) for patterns, r, h in _REASONS if any(p in lowered for p in patterns)), None)
    reason, needs_hint = found if found else (_plain(text) or type(exc).__name__, True)
    advice = hint.format(variable=variable) if needs_hint else f"check {variable}"
    verb = "reach" if needs_hint else "use"
    return f"cannot {verb} {name} at {target} ({variable}): {reason}; try: {advice}"


def _plain(text: str) -> str:
    """The first line of a driver's message without its wrapping (``KafkaError{...str="..."}``)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if 'str="' in first:
        first = first.split('str="', 1)[1].split('"', 1)[0]
    return first[:200]


def redact_url(url: str) -> str:
    """``url`` without its user and password (``redis://***@host:6379/0``), fit for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
