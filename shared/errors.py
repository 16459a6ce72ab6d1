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
