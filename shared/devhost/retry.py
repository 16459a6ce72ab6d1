"""The invoker that calls a function with its retry policy (:mod:`shared.devhost.policy`) as the host does.

Host semantics mirrored here:

- A batch is retried in place while the partition is held (no later batch of that partition runs meanwhile).
- ``exponential_backoff``: the n-th retry waits ``min(maximum_interval, minimum_interval * 2**(n-1))``;
  ``fixed_delay``: every retry waits ``delay_interval``. ``max_retry_count = -1`` retries forever.
- When the retries are exhausted (or there is no policy) the host moves on: the checkpoint / offset commit
  advances past the batch. The invoker reports that as ``failed``; the source still checkpoints, like the
  host.
- On shutdown a batch that has not succeeded is abandoned **without** a checkpoint, so it is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext

from shared.devhost.functions import HostedFunction

log = logging.getLogger("streamduck.devhost")


class _RetryContext(RetryContext):
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self._count = retry_count
        self._max = max_retry_count

    @property
    def retry_count(self) -> int:
        return self._count

    @property
    def max_retry_count(self) -> int:
        return self._max

    @property
    def exception(self) -> Any:
        return None


class _TraceContext(TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class DevContext(func.Context):
    """The ``context`` argument: invocation id, function name and the retry context."""

    def __init__(self, function_name: str, retry_count: int, max_retry_count: int) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._retry = _RetryContext(retry_count, max_retry_count)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return threading.local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> RetryContext:
        return self._retry


class OutValue(func.Out[Any]):
    """``func.Out`` for output bindings: the value set by the function, read after it returns."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass
class Outcome:
    status: Literal["succeeded", "failed", "abandoned"]
    attempts: int
    error: str | None = None


class Invoker:
    """Calls a function with the host's retry semantics; interruptible by ``stop`` while waiting."""

    def __init__(
        self, stop: threading.Event, *, on_retry: Callable[[str, str, int, BaseException], None] | None = None
    ) -> None:
        self.stop = stop
        self.on_retry = on_retry

    def invoke(
        self,
        fn: HostedFunction,
        payload: Any,
        *,
        deliver_outputs: Callable[[dict[str, Any]], None] | None = None,
        label: str = "",
    ) -> Outcome:
        """Call ``fn`` with ``payload`` until it succeeds, its policy gives up, or shutdown abandons it."""
        retry = 0
        while True:
            outputs = {o.name: OutValue() for o in fn.outputs}
            kwargs: dict[str, Any] = {fn.arg_name: payload, **outputs}
            if fn.context_param:
                max_count = fn.retry.max_retry_count if fn.retry else 0
                kwargs[fn.context_param] = DevContext(fn.name, retry, max_count)
            try:
                result = fn.user_function(**kwargs)
                if fn.is_async:
                    result = asyncio.run(result)
                if deliver_outputs is not None and outputs:
                    deliver_outputs({name: out.get() for name, out in outputs.items()})
                return Outcome("succeeded", retry + 1)
            except Exception as exc:  # noqa: BLE001 - the host boundary: any failure is retried or reported
                error = f"{type(exc).__name__}: {exc}"
                if self.stop.is_set():
                    log.warning("%s: batch abandoned on shutdown (not checkpointed): %s", fn.name, error)
                    return Outcome("abandoned", retry + 1, error)
                retry += 1
                if fn.retry is None or not fn.retry.allows(retry):
                    log.error(
                        "%s: batch failed after %d attempt(s), the host moves on: %s", fn.name, retry, error
                    )
                    return Outcome("failed", retry, error)
                delay = fn.retry.delay_for(retry)
                log.warning(
                    "%s: attempt %d failed (%s); retry %d in %.1fs", fn.name, retry, error, retry, delay
                )
                if self.on_retry is not None:
                    self.on_retry(fn.name, label, retry, exc)
                if self.stop.wait(delay):
                    log.warning("%s: batch abandoned on shutdown while retrying (not checkpointed)", fn.name)
                    return Outcome("abandoned", retry, error)
