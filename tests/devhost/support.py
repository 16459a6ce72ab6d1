"""A registered function as the dev host resolves it, built by hand for the tests of one source's parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.devhost.functions import HostedFunction, OutputBinding, TriggerKind
from shared.devhost.policy import RetryPolicy


def hosted(
    kind: TriggerKind,
    user_function: Callable[..., Any],
    *,
    name: str = "f",
    arg_name: str = "events",
    many: bool = True,
    source: str = "topic",
    consumer_group: str | None = "group",
    connection: str | None = None,
    retry: RetryPolicy | None = None,
    outputs: tuple[OutputBinding, ...] = (),
    trigger: Mapping[str, Any] | None = None,
) -> HostedFunction:
    return HostedFunction(
        name=name,
        kind=kind,
        arg_name=arg_name,
        many=many,
        source=source,
        consumer_group=consumer_group,
        connection=connection,
        retry=retry,
        outputs=outputs,
        trigger=trigger or {},
        user_function=user_function,
    )
