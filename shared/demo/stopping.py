"""Stopping the demo on a signal at a safe point, between two batches.

A signal handler that raises at once can land anywhere, e.g. inside a native module's import, where the
exception turns into another error. So the first SIGINT, SIGTERM or SIGHUP only asks the demo to stop, and
the demo's loops call :func:`check` between batches, which raises :class:`Stopped` there; a second signal
raises at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_requested: list[int] = []


class Stopped(KeyboardInterrupt):
    """The demo received a signal and stopped between two batches."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _request(signum: int, frame: FrameType | None) -> None:
    if _requested:
        raise Stopped(_requested[0])
    _requested.append(signum)


def check() -> None:
    """Raise :class:`Stopped` when a signal asked the demo to stop."""
    if _requested:
        raise Stopped(_requested[0])


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP ask the demo to stop (see the module docstring)."""
    _requested.clear()
    previous = {s: signal.signal(s, _request) for s in SIGNALS}
    try:
        yield
        check()  # a signal during the last steps: the demo did not finish as asked
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _requested.clear()
