"""``streamduck validate-config``: every setting, then a connection to every configured store.

Non-interactive by design (works with no terminal and no stdin). Each problem names the variable to fix.
Checks run in parallel, each bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, describe_unreachable
from shared.settings import KafkaAuthMode, KafkaProtocol, Settings, load_settings


@dataclass(frozen=True)
class Check:
    check: str
    target: str
    ok: bool
    variable: str = ""
    detail: str = ""
    warning: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "target": self.target,
            "status": "ok" if self.ok else ("warning" if self.warning else "problem"),
            "variable": self.variable,
            "detail": self.detail,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _writable_dir(path: Path) -> str | None:
    """None when ``path`` is (or can be created as) a writable folder; else the reason."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return f"no existing parent folder for {path}"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def check_duckdb(settings: Settings, timeout: float) -> list[Check]:
    checks: list[Check] = []
    for m in settings.mappings:
        token = settings.token_for(m)
        variable = f"MOTHERDUCK_{m.index}_TOKEN" if m.token else "MOTHERDUCK_TOKEN"
        if token is None:
            reason = _writable_dir(settings.data_dir)
            target = f"{settings.data_dir / m.database}.duckdb"
            checks.append(
                Check("duckdb", target, reason is None, "STREAMDUCK_DATA_DIR" if reason else "", reason or "")
            )
            continue
        try:
            import duckdb

            con = duckdb.connect(
                f"md:{m.database}",
                config={"motherduck_token": token.get_secret_value(), "autoinstall_known_extensions": False},
            )
            try:
                con.execute("SELECT 1").fetchone()
            finally:
                con.close()
            checks.append(Check("motherduck", f"md:{m.database}", True))
        except Exception as exc:  # noqa: BLE001 - any driver failure is a reported problem
            detail = describe_unreachable("motherduck", f"md:{m.database}", exc, variable=variable)
            checks.append(Check("motherduck", f"md:{m.database}", False, variable, detail))
    return checks


def check_storage(environ: Mapping[str, str], settings: Settings, timeout: float) -> list[Check]:
    if not settings.mappings:
        return []
    from shared.devhost.eventhubs import CHECKPOINT_CONTAINER, storage_target

    try:
        target = storage_target(environ)
    except ConfigError as exc:
        return [Check("storage", "checkpoints", False, k, v) for k, v in exc.problems.items()]
    try:
        from azure.storage.blob import BlobServiceClient

        if target.connection_string:
            service = BlobServiceClient.from_connection_string(
                target.connection_string, connection_timeout=timeout, read_timeout=timeout, retry_total=0
            )
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(
                str(target.account_url),
                credential=DefaultAzureCredential(),
                connection_timeout=timeout,
                read_timeout=timeout,
                retry_total=0,
            )
        with service:
            service.get_container_client(CHECKPOINT_CONTAINER).exists()
        return [Check("storage", target.describe(), True)]
    except Exception as exc:  # noqa: BLE001
        variable = (
            "AzureWebJobsStorage" if target.connection_string else "AzureWebJobsStorage__blobServiceUri"
        )
        detail = describe_unreachable("storage", target.describe(), exc, variable=variable)
        return [Check("storage", target.describe(), False, variable, detail)]


def check_eventhubs(environ: Mapping[str, str], settings: Settings, timeout: float) -> list[Check]:
    if not settings.mappings:
        return []
    checks: list[Check] = []
    if settings.eventhub_connection_string is None and settings.eventhub_namespace is None:
        return [
            Check(
                "eventhubs",
                "namespace",
                False,
                "EVENTHUB_CONNECTION_STRING",
                "missing: set it (SAS or emulator), or "
                "EVENTHUB_NAMESPACE=<namespace>.servicebus.windows.net (Entra ID)",
            )
        ]
    from azure.eventhub import EventHubConsumerClient

    for m in settings.mappings:
        try:
            if settings.eventhub_connection_string is not None:
                client = EventHubConsumerClient.from_connection_string(
                    settings.eventhub_connection_string.get_secret_value(),
                    consumer_group=m.consumer_group,
                    eventhub_name=m.event_hub,
                    retry_total=0,
                )
                variable = "EVENTHUB_CONNECTION_STRING"
            else:
                from azure.identity import DefaultAzureCredential

                client = EventHubConsumerClient(
                    str(settings.eventhub_namespace),
                    m.event_hub,
                    m.consumer_group,
                    DefaultAzureCredential(),
                    retry_total=0,
                )
                variable = "EVENTHUB_NAMESPACE"
            with client:
                props = client.get_eventhub_properties()
            checks.append(
                Check("eventhubs", f"{m.event_hub} ({len(props['partition_ids'])} partitions)", True)
            )
        except Exception as exc:  # noqa: BLE001
            text = _first_line(exc)
            var = f"EVENTHUBNAME_{m.index}" if "not found" in text.lower() or "404" in text else variable
            detail = describe_unreachable("eventhubs", m.event_hub, exc, variable=var)
            checks.append(Check("eventhubs", m.event_hub, False, var, detail))
    return checks


def check_kafka(settings: Settings, timeout: float) -> list[Check]:
    checks: list[Check] = []
    sasl = settings.kafka_protocol in {KafkaProtocol.SASLPLAINTEXT, KafkaProtocol.SASLSSL}
    if sasl and settings.kafka_auth_mode is KafkaAuthMode.NOTSET:
        checks.append(
            Check(
                "kafka",
                "auth",
                False,
                "KAFKA_AUTH_MODE",
                "missing: a SASL protocol needs a mechanism, for example PLAIN",
            )
        )
    if settings.kafka_auth_mode is not KafkaAuthMode.NOTSET:
        if not settings.kafka_username:
            checks.append(
                Check(
                    "kafka",
                    "auth",
                    False,
                    "KAFKA_USERNAME",
                    "missing: SASL needs a user, for example $ConnectionString",
                )
            )
        if settings.kafka_password is None:
            checks.append(Check("kafka", "auth", False, "KAFKA_PASSWORD", "missing: SASL needs a password"))
        if not sasl:
            checks.append(
                Check(
                    "kafka",
                    "auth",
                    False,
                    "KAFKA_PROTOCOL",
                    "a SASL mechanism is set but the protocol is not SASL, for example SASLSSL",
                )
            )
    if checks:
        return checks
    from confluent_kafka.admin import AdminClient

    from shared.kafkaconfig import client_config

    try:
        admin = AdminClient({**client_config(settings), "socket.timeout.ms": int(timeout * 1000)})
        metadata = admin.list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        detail = describe_unreachable("kafka", settings.kafka_brokers, exc, variable="KAFKA_BROKERS")
        return [Check("kafka", settings.kafka_brokers, False, "KAFKA_BROKERS", detail)]
    checks.append(Check("kafka", f"{settings.kafka_brokers} ({len(metadata.brokers)} broker(s))", True))
    for variable, topic in (
        ("TOPIC_CONTENT", settings.topic_content),
        ("TOPIC_ENGAGE", settings.topic_engage),
        ("TOPIC_OUT", settings.topic_out),
    ):
        present = topic in metadata.topics
        checks.append(
            Check(
                "kafka topic",
                topic,
                present,
                "" if present else variable,
                ""
                if present
                else "topic does not exist yet (created by Debezium, the simulator or auto-creation)",
                warning=not present,
            )
        )
    return checks


def check_redis(settings: Settings, timeout: float) -> list[Check]:
    import redis

    url = settings.redis_url.get_secret_value()
    from shared.devhost.host import _redact

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
        return [Check("redis", _redact(url), True)]
    except Exception as exc:  # noqa: BLE001
        detail = describe_unreachable("redis", _redact(url), exc, variable="REDIS_URL")
        return [Check("redis", _redact(url), False, "REDIS_URL", detail)]


def check_clickhouse(settings: Settings, timeout: float) -> list[Check]:
    if settings.clickhouse_host is None:
        reason = _writable_dir(settings.clickhouse_chdb_path)
        target = f"chDB {settings.clickhouse_chdb_path}"
        return [
            Check(
                "clickhouse", target, reason is None, "CLICKHOUSE_CHDB_PATH" if reason else "", reason or ""
            )
        ]
    import clickhouse_connect

    target = f"{settings.clickhouse_host}:{settings.clickhouse_port}"
    try:
        client = clickhouse_connect.get_client(
            host=settings.clickhouse_host,
            port=settings.clickhouse_port,
            username=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else "",
            secure=settings.clickhouse_secure,
            connect_timeout=timeout,
            send_receive_timeout=timeout,
        )
        client.command("SELECT 1")
        client.close()
        return [Check("clickhouse", target, True)]
    except Exception as exc:  # noqa: BLE001
        detail = _first_line(exc)
        lowered = detail.lower()
        variable = (
            "CLICKHOUSE_PASSWORD"
            if "authentication" in lowered or "password" in lowered
            else "CLICKHOUSE_HOST"
        )
        if isinstance(exc, socket.timeout) or "port" in lowered:
            variable = "CLICKHOUSE_PORT" if "refused" in lowered else variable
        detail = describe_unreachable("clickhouse", target, exc, variable=variable)
        return [Check("clickhouse", target, False, variable, detail)]


def check_functions(environ: Mapping[str, str], app_module: str, app_dir: Path) -> list[Check]:
    from shared.cli.environment import export
    from shared.devhost.functions import discover, import_app

    try:
        export(environ)
        app = import_app(app_module, app_dir)
        functions = discover(app, environ)
    except ConfigError as exc:
        return [Check("functions", app_module, False, k, v) for k, v in exc.problems.items()]
    except ModuleNotFoundError as exc:
        if exc.name != app_module:
            return [Check("functions", app_module, False, "", _first_line(exc))]
        return [
            Check(
                "functions",
                app_module,
                False,
                "--app-dir",
                f"no {app_module}.py in {app_dir.resolve()}: run from the app's folder or pass --app-dir",
            )
        ]
    except Exception as exc:  # noqa: BLE001 - an app that cannot be indexed is a reported problem
        return [Check("functions", app_module, False, "", _first_line(exc))]
    return [Check("functions", f"{app_module}: {len(functions)} function(s)", True)]


def unconfigured(environ: Mapping[str, str], settings: Settings) -> list[Check]:
    """Warnings for the parts that run on defaults only. A part is configured when one of its variables is
    set (in the environment, an env file or local.settings.json); a default alone configures nothing."""
    warnings: list[Check] = []
    if not settings.mappings:
        warnings.append(
            Check(
                "settings",
                "Event Hubs",
                False,
                "EVENTHUBNAME_1",
                "not set: no Event Hubs mapping, so no Event Hubs function is registered; set it with "
                "EVENTHUBNAME_1_CONSUMER_GROUP, MOTHERDUCK_1_DATABASE, MOTHERDUCK_1_SCHEMA and MOTHERDUCK_1_TABLE "
                "(streamduck init writes them)",
                warning=True,
            )
        )
    for variable, part, what in (
        ("KAFKA_BROKERS", "Kafka", f"the engagement functions use the default {settings.kafka_brokers}"),
        ("REDIS_URL", "Redis", "the leaderboard uses the default local Redis"),
    ):
        if not environ.get(variable):
            warnings.append(Check("settings", part, False, variable, f"not set: {what}", warning=True))
    return warnings


def problem_line(c: Check) -> str:
    """A failed check as one line: the plain sentence of a store, else the variable and what is wrong."""
    if c.detail.startswith("cannot "):
        return c.detail
    named = ""
    if c.variable and (c.check == "settings" or c.variable not in c.detail):
        named = c.variable + (" " if c.detail.startswith("not set") else ": ")
    where = "" if c.check == "settings" else f"{c.check} {c.target}: "
    return f"{where}{named}{c.detail}"


def nothing_configured(checks: list[Check]) -> bool:
    """True when no mapping, no Kafka and no Redis is configured: every part would run on defaults."""
    return sum(1 for c in checks if c.check == "settings" and c.warning) == 3


def validate(
    environ: Mapping[str, str],
    *,
    timeout: float = 5.0,
    offline: bool = False,
    app_module: str = "function_app",
    app_dir: Path | None = None,
) -> list[Check]:
    """Every check; settings problems first. Connections are skipped when the settings are invalid."""
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        return [Check("settings", name, False, name, reason) for name, reason in sorted(exc.problems.items())]
    checks = [
        Check("settings", f"{len(settings.mappings)} mapping(s)", True),
        *unconfigured(environ, settings),
    ]
    if offline:
        return checks
    jobs: list[Callable[[], list[Check]]] = [
        lambda: check_duckdb(settings, timeout),
        lambda: check_storage(environ, settings, timeout),
        lambda: check_eventhubs(environ, settings, timeout),
        lambda: check_kafka(settings, timeout),
        lambda: check_redis(settings, timeout),
        lambda: check_clickhouse(settings, timeout),
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for result in pool.map(lambda job: job(), jobs):
            checks.extend(result)
    checks.extend(check_functions(environ, app_module, app_dir or Path.cwd()))
    return checks
