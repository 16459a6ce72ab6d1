"""Discover the functions a ``FunctionApp`` registers and resolve their bindings like the host does.

Binding values of the form ``%NAME%`` are app-setting expressions; ``brokerList``, ``username``,
``password`` and ``connection`` name an app setting first and fall back to the literal value (the Kafka and
Event Hubs extensions' rule). Everything is resolved against one environment mapping, so a dry run shows
exactly what ``run`` will use.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import azure.functions as func

from shared.devhost.expressions import resolve_expression, resolve_setting_name
from shared.devhost.policy import RetryPolicy, parse_retry_policy
from shared.errors import ConfigError


class TriggerKind(StrEnum):
    EVENT_HUB = "eventHubTrigger"
    KAFKA = "kafkaTrigger"
    TIMER = "timerTrigger"
    OTHER = "other"


@dataclass(frozen=True)
class OutputBinding:
    """An output binding the dev host emulates (Kafka only; others are reported as unsupported)."""

    name: str
    type: str
    topic: str | None = None
    brokers: str | None = None


@dataclass(frozen=True)
class HostedFunction:
    """One registered function, its trigger resolved against the environment."""

    name: str
    kind: TriggerKind
    arg_name: str
    many: bool
    source: str  # resolved event hub name, topic, or schedule
    consumer_group: str | None
    connection: str | None  # Event Hubs: the app-setting prefix; Kafka: the resolved broker list
    retry: RetryPolicy | None
    outputs: tuple[OutputBinding, ...]
    trigger: Mapping[str, Any]
    user_function: Callable[..., Any] = field(repr=False, compare=False)
    context_param: str | None = None
    is_async: bool = False

    @property
    def source_label(self) -> str:
        if self.kind is TriggerKind.EVENT_HUB:
            return f"eventhub:{self.source} ({self.consumer_group})"
        if self.kind is TriggerKind.KAFKA:
            return f"kafka:{self.source} ({self.consumer_group})"
        if self.kind is TriggerKind.TIMER:
            return f"timer:{self.source}"
        return str(self.trigger.get("type", "?"))


def import_app(module: str, app_dir: Path | None = None, *, reload: bool = False) -> func.FunctionApp:
    """Import ``module`` (default ``function_app``) and return its ``FunctionApp``.

    The one place in ``shared`` that imports the function app: finding the app's functions is the dev host's
    job, and everything else that runs them (``run``, ``validate-config``, the demo) asks it here. ``reload``
    imports the module again when it was imported already, so it registers its functions from the current
    environment (it reads its settings when it is imported).
    """
    if app_dir is not None and str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    loaded = sys.modules.get(module)
    mod = importlib.reload(loaded) if reload and loaded is not None else importlib.import_module(module)
    for value in vars(mod).values():
        if isinstance(value, func.FunctionApp):
            return value
    raise ConfigError({"--app": f"module {module!r} defines no azure.functions.FunctionApp"})


class _QuietIndexing(logging.Filter):
    """The library warns on the root logger that auth levels do not apply to non-HTTP apps: not news here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Auth level is not applied")


@contextmanager
def quiet_indexing() -> Iterator[None]:
    """Silence the library's auth-level warning while an app is indexed."""
    quiet = _QuietIndexing()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)


def discover(app: func.FunctionApp, environ: Mapping[str, str]) -> list[HostedFunction]:
    """Every function of ``app`` with its trigger, retry policy and outputs resolved against ``environ``."""
    from shared.appindex import indexed_functions

    found: list[HostedFunction] = []
    problems: dict[str, str] = {}
    with quiet_indexing():
        indexed = indexed_functions(app)
    for function in indexed.values():
        try:
            found.append(_describe(function, environ))
        except ConfigError as exc:
            problems.update(exc.problems)
    if problems:
        raise ConfigError(problems)
    return found


def _describe(function: Any, environ: Mapping[str, str]) -> HostedFunction:
    name = str(function.get_function_name())
    trigger_obj = function.get_trigger()
    trigger: dict[str, Any] = (
        json.loads(json.dumps(trigger_obj.get_dict_repr(), default=str)) if trigger_obj else {}
    )
    where = f"function {name}"
    kind_raw = str(trigger.get("type", ""))
    kind = TriggerKind(kind_raw) if kind_raw in {k.value for k in TriggerKind} else TriggerKind.OTHER
    many = str(trigger.get("cardinality", "ONE")).upper() == "MANY"
    consumer_group: str | None = None
    connection: str | None = None
    if kind is TriggerKind.EVENT_HUB:
        source = resolve_expression(str(trigger.get("eventHubName", "")), environ, where=where)
        consumer_group = resolve_expression(
            str(trigger.get("consumerGroup") or "$Default"), environ, where=where
        )
        connection = str(trigger.get("connection") or "")
    elif kind is TriggerKind.KAFKA:
        source = resolve_expression(str(trigger.get("topic", "")), environ, where=where)
        consumer_group = resolve_expression(str(trigger.get("consumerGroup", "")), environ, where=where)
        connection = resolve_setting_name(str(trigger.get("brokerList", "")), environ, where=where)
    elif kind is TriggerKind.TIMER:
        source = resolve_expression(str(trigger.get("schedule", "")), environ, where=where)
    else:
        source = kind_raw

    outputs: list[OutputBinding] = []
    for binding in function.get_bindings():
        rep = json.loads(json.dumps(binding.get_dict_repr(), default=str))
        if str(rep.get("direction", "")).upper() != "OUT":
            continue
        if rep.get("type") == "kafka":
            outputs.append(
                OutputBinding(
                    name=str(rep["name"]),
                    type="kafka",
                    topic=resolve_expression(str(rep.get("topic", "")), environ, where=where),
                    brokers=resolve_setting_name(str(rep.get("brokerList", "")), environ, where=where),
                )
            )
        else:
            outputs.append(OutputBinding(name=str(rep.get("name")), type=str(rep.get("type"))))

    retry_raw = function.get_settings_dict("retry_policy")
    retry = parse_retry_policy(retry_raw, environ, where=where) if retry_raw else None

    user_function = function.get_user_function()
    signature = inspect.signature(user_function)
    context_param = None
    for pname, param in signature.parameters.items():
        if pname == "context" or param.annotation in (func.Context, "func.Context", "Context"):
            context_param = pname
    return HostedFunction(
        name=name,
        kind=kind,
        arg_name=str(trigger.get("name", "")),
        many=many,
        source=source,
        consumer_group=consumer_group,
        connection=connection,
        retry=retry,
        outputs=tuple(outputs),
        trigger=trigger,
        user_function=user_function,
        context_param=context_param,
        is_async=inspect.iscoroutinefunction(user_function),
    )


def select(functions: list[HostedFunction], names: list[str] | None) -> list[HostedFunction]:
    """Keep the functions named in ``names`` (all when empty); unknown names are a usage error."""
    if not names:
        return functions
    known = {f.name for f in functions}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            {
                "--function": f"unknown function(s) {', '.join(unknown)}; "
                f"registered: {', '.join(sorted(known)) or 'none'}"
            }
        )
    return [f for f in functions if f.name in names]
