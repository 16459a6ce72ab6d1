"""One typed settings object for the whole app, validated at start-up.

Every environment variable StreamDuck reads is declared here (fixed fields on :class:`Settings`, numbered
mapping variables in :data:`MAPPING_VARIABLES`), so the infrastructure code and the documentation can be
checked against this module. Problems are collected and reported together, each naming the variable and
showing an example value.

Mappings keep the numbered variables of the earlier StreamDuck CLI::

    EVENTHUBNAME_1=telemetry
    EVENTHUBNAME_1_CONSUMER_GROUP=$Default
    MOTHERDUCK_1_DATABASE=analytics
    MOTHERDUCK_1_SCHEMA=raw
    MOTHERDUCK_1_TABLE=telemetry_events
    MOTHERDUCK_1_BATCH=1000          # optional
    MOTHERDUCK_1_FORMAT=json         # optional: json | text | binary
    MOTHERDUCK_1_JSON_LENIENT=false  # optional: json keeps NaN, Infinity, trailing commas
    MOTHERDUCK_1_RETENTION_DAYS=30   # optional
    MOTHERDUCK_1_TOKEN=...           # optional per-mapping token (else MOTHERDUCK_TOKEN)
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigError
from shared.sqlident import IDENTIFIER_RULE, is_identifier


class BodyFormat(StrEnum):
    """How an Event Hubs body is stored: validated JSON, UTF-8 text, or raw bytes."""

    JSON = "json"
    TEXT = "text"
    BINARY = "binary"


_HUB_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$")
_CONSUMER_GROUP_RE = re.compile(r"^(?:\$Default|[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?)$")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$")
_TIMESPAN_RE = re.compile(r"^\d{2}:[0-5]\d:[0-5]\d$")
_NCRONTAB_FIELD_RE = re.compile(r"^[\d*/,\-A-Za-z]+$")

# Numbered mapping variables: name template -> (required, example).
MAPPING_VARIABLES: dict[str, tuple[bool, str]] = {
    "EVENTHUBNAME_{n}": (True, "telemetry"),
    "EVENTHUBNAME_{n}_CONSUMER_GROUP": (True, "$Default"),
    "MOTHERDUCK_{n}_DATABASE": (True, "analytics"),
    "MOTHERDUCK_{n}_SCHEMA": (True, "raw"),
    "MOTHERDUCK_{n}_TABLE": (True, "telemetry_events"),
    "MOTHERDUCK_{n}_BATCH": (False, "1000"),
    "MOTHERDUCK_{n}_FORMAT": (False, "json"),
    "MOTHERDUCK_{n}_JSON_LENIENT": (False, "false"),
    "MOTHERDUCK_{n}_RETENTION_DAYS": (False, "30"),
    "MOTHERDUCK_{n}_TOKEN": (False, "<MotherDuck access token>"),
}
_MAPPING_KEY_RE = re.compile(r"^(EVENTHUBNAME|MOTHERDUCK)_(\d+)(?:_([A-Z_]+))?$")


class EventHubMapping(BaseModel):
    """One Event Hub -> MotherDuck table mapping (``EVENTHUBNAME_N`` -> ``MOTHERDUCK_N_*``)."""

    model_config = ConfigDict(frozen=True)

    index: int
    event_hub: str
    consumer_group: str
    database: str
    schema_name: str
    table: str
    batch: int = 1000
    body_format: BodyFormat = BodyFormat.JSON
    json_lenient: bool = False  # json: also keep what DuckDB's parser accepts beyond RFC 8259 (NaN, ...)
    retention_days: int | None = None
    token: SecretStr | None = None

    @property
    def function_name(self) -> str:
        """Stable, unique name of the Event Hub-triggered function for this mapping."""
        return f"eventhub_to_motherduck_{self.index}"

    @property
    def hub_setting(self) -> str:
        """App setting holding the hub name (used as a ``%binding expression%``)."""
        return f"EVENTHUBNAME_{self.index}"

    @property
    def consumer_group_setting(self) -> str:
        return f"EVENTHUBNAME_{self.index}_CONSUMER_GROUP"

    @property
    def target(self) -> str:
        return f"{self.database}.{self.schema_name}.{self.table}"


class KafkaProtocol(StrEnum):
    NOTSET = "NOTSET"
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASLPLAINTEXT = "SASLPLAINTEXT"
    SASLSSL = "SASLSSL"


class KafkaAuthMode(StrEnum):
    NOTSET = "NOTSET"
    PLAIN = "PLAIN"
    SCRAMSHA256 = "SCRAMSHA256"
    SCRAMSHA512 = "SCRAMSHA512"


def _env(*names: str) -> Any:
    return AliasChoices(*names)


def leaderboard_max_window_minutes(bucket_ttl_seconds: int) -> int:
    """The longest leaderboard window (minutes) that minute buckets kept ``bucket_ttl_seconds`` can serve.

    A window of ``W`` minutes read during minute ``m`` needs the bucket of minute ``m - W``, whose last write
    happened no earlier than the start of that minute; it must still exist at the end of minute ``m``:
    ``(W + 1) * 60 <= ttl``, so ``W <= (ttl - 60) // 60``.
    """
    return (bucket_ttl_seconds - 60) // 60


def leaderboard_min_bucket_ttl_seconds(window_minutes: int) -> int:
    """The shortest ``LEADERBOARD_BUCKET_TTL_SECONDS`` that serves a window of ``window_minutes``."""
    return (window_minutes + 1) * 60


class Settings(BaseSettings):
    """Every fixed setting. Built by :func:`load_settings`, never from ambient state behind its back."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    # --- Event Hubs -> MotherDuck -----------------------------------------------------------------
    eventhub_namespace: str | None = Field(
        None,
        validation_alias=_env("EVENTHUB_NAMESPACE"),
        description="Event Hubs namespace host (any cloud or the emulator); used by the dev host and simulator.",
        examples=["my-namespace.servicebus.windows.net"],
    )
    eventhub_connection_string: SecretStr | None = Field(
        None,
        validation_alias=_env("EVENTHUB_CONNECTION_STRING"),
        description="Connection string for the dev host and simulator (emulator or SAS). Entra ID when unset.",
        examples=[
            "Endpoint=sb://localhost;SharedAccessKeyName=...;SharedAccessKey=...;UseDevelopmentEmulator=true;"
        ],
    )
    motherduck_token: SecretStr | None = Field(
        None,
        validation_alias=_env("MOTHERDUCK_TOKEN", "motherduck_token"),
        description="MotherDuck token. When unset, each database is a local DuckDB file under STREAMDUCK_DATA_DIR.",
        examples=["<token from app.motherduck.com>"],
    )
    data_dir: Path = Field(
        Path(".streamduck/data"),
        validation_alias=_env("STREAMDUCK_DATA_DIR"),
        description="Folder for local DuckDB files (embedded default, no MotherDuck token).",
        examples=[".streamduck/data"],
    )
    max_event_bytes: int = Field(
        1_048_576,
        gt=0,
        validation_alias=_env("STREAMDUCK_MAX_EVENT_BYTES"),
        description="Events with a larger body are parked in the dead-letter table.",
        examples=["1048576"],
    )
    retry_max_count: int = Field(
        -1,
        ge=-1,
        validation_alias=_env("STREAMDUCK_RETRY_MAX_COUNT"),
        description="Retries of a failing batch before the host moves on; -1 retries forever (no loss).",
        examples=["-1"],
    )
    retry_min_interval: str = Field(
        "00:00:01",
        validation_alias=_env("STREAMDUCK_RETRY_MIN_INTERVAL"),
        description="First back-off delay of the exponential retry policy (hh:mm:ss).",
        examples=["00:00:01"],
    )
    retry_max_interval: str = Field(
        "00:05:00",
        validation_alias=_env("STREAMDUCK_RETRY_MAX_INTERVAL"),
        description="Longest back-off delay of the exponential retry policy (hh:mm:ss).",
        examples=["00:05:00"],
    )
    compaction_schedule: str = Field(
        "0 30 3 * * *",
        validation_alias=_env("STREAMDUCK_COMPACTION_SCHEDULE"),
        description="Six-field NCRONTAB schedule of the DuckDB/MotherDuck compaction timer.",
        examples=["0 30 3 * * *"],
    )
    compaction_budget_seconds: float = Field(
        240.0,
        gt=0,
        validation_alias=_env("STREAMDUCK_COMPACTION_BUDGET_SECONDS"),
        description="Compaction stops starting new tables after this many seconds.",
        examples=["240"],
    )

    # --- Kafka engagement pipeline ----------------------------------------------------------------
    kafka_brokers: str = Field(
        "127.0.0.1:9092",
        validation_alias=_env("KAFKA_BROKERS"),
        description="Kafka bootstrap servers.",
        examples=["my-namespace.servicebus.windows.net:9093"],
    )
    kafka_protocol: KafkaProtocol = Field(
        KafkaProtocol.PLAINTEXT,
        validation_alias=_env("KAFKA_PROTOCOL"),
        description="Kafka security protocol (Functions Kafka extension names).",
        examples=["SASLSSL"],
    )
    kafka_auth_mode: KafkaAuthMode = Field(
        KafkaAuthMode.NOTSET,
        validation_alias=_env("KAFKA_AUTH_MODE"),
        description="Kafka SASL mechanism.",
        examples=["PLAIN"],
    )
    kafka_username: str | None = Field(
        None,
        validation_alias=_env("KAFKA_USERNAME"),
        description="Kafka SASL user name ($ConnectionString for the Event Hubs Kafka endpoint).",
        examples=["$ConnectionString"],
    )
    kafka_password: SecretStr | None = Field(
        None,
        validation_alias=_env("KAFKA_PASSWORD"),
        description="Kafka SASL password (Key Vault reference in Azure).",
        examples=["@Microsoft.KeyVault(SecretUri=...)"],
    )
    kafka_consumer_group: str = Field(
        "streamduck-engagement",
        validation_alias=_env("KAFKA_CONSUMER_GROUP"),
        description="Consumer group of the Kafka-triggered functions (stable: restarts resume, never re-count).",
        examples=["streamduck-engagement"],
    )
    topic_content: str = Field(
        "content.flat",
        validation_alias=_env("TOPIC_CONTENT"),
        description="Debezium-flattened CDC topic of the content table.",
        examples=["content.flat"],
    )
    topic_engage: str = Field(
        "engagement_events.flat",
        validation_alias=_env("TOPIC_ENGAGE"),
        description="Debezium-flattened CDC topic of the engagement_events table.",
        examples=["engagement_events.flat"],
    )
    topic_out: str = Field(
        "engagement_enriched",
        validation_alias=_env("TOPIC_OUT"),
        description="Topic the enriched engagement events are published to.",
        examples=["engagement_enriched"],
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        validation_alias=_env("REDIS_URL"),
        description="Redis for the content store, leaderboard and watermarks.",
        examples=["rediss://my-cache.redis.cache.windows.net:6380/0"],
    )
    redis_entra_auth: bool = Field(
        False,
        validation_alias=_env("REDIS_ENTRA_AUTH"),
        description="Sign in to Redis with an Entra ID token if REDIS_URL has no password (on if AZURE_CLIENT_ID is set).",
        examples=["true"],
    )
    clickhouse_host: str | None = Field(
        None,
        validation_alias=_env("CLICKHOUSE_HOST"),
        description="ClickHouse server host (HTTP). When unset, embedded chDB under CLICKHOUSE_CHDB_PATH is used.",
        examples=["abc123.eastus.azure.clickhouse.cloud"],
    )
    clickhouse_port: int = Field(
        8443,
        gt=0,
        lt=65536,
        validation_alias=_env("CLICKHOUSE_PORT"),
        description="ClickHouse HTTP(S) port.",
        examples=["8443"],
    )
    clickhouse_user: str = Field(
        "default",
        validation_alias=_env("CLICKHOUSE_USER"),
        description="ClickHouse user.",
        examples=["default"],
    )
    clickhouse_password: SecretStr | None = Field(
        None,
        validation_alias=_env("CLICKHOUSE_PASSWORD"),
        description="ClickHouse password (Key Vault reference in Azure).",
        examples=["@Microsoft.KeyVault(SecretUri=...)"],
    )
    clickhouse_database: str = Field(
        "analytics",
        validation_alias=_env("CLICKHOUSE_DATABASE"),
        description="ClickHouse database for the engagement warehouse.",
        examples=["analytics"],
    )
    clickhouse_secure: bool = Field(
        True,
        validation_alias=_env("CLICKHOUSE_SECURE"),
        description="Use TLS for the ClickHouse connection.",
        examples=["true"],
    )
    clickhouse_chdb_path: Path = Field(
        Path(".streamduck/chdb"),
        validation_alias=_env("CLICKHOUSE_CHDB_PATH"),
        description="Folder of the embedded chDB engine (used when CLICKHOUSE_HOST is unset).",
        examples=[".streamduck/chdb"],
    )
    clickhouse_optimize_days: int = Field(
        2,
        ge=0,
        le=31,
        validation_alias=_env("CLICKHOUSE_OPTIMIZE_DAYS"),
        description="Upkeep runs OPTIMIZE ... FINAL on this many most recent daily partitions (0 disables).",
        examples=["2"],
    )
    clickhouse_upkeep_schedule: str = Field(
        "0 */10 * * * *",
        validation_alias=_env("CLICKHOUSE_UPKEEP_SCHEDULE"),
        description="Six-field NCRONTAB schedule of the ClickHouse upkeep and unknown-content sweep timer.",
        examples=["0 */10 * * * *"],
    )
    engagement_dead_letter_table: str = Field(
        "engagement_dead_letters",
        validation_alias=_env("ENGAGEMENT_DEAD_LETTER_TABLE"),
        description="ClickHouse table (in CLICKHOUSE_DATABASE) that parks bad CDC records with their reason.",
        examples=["engagement_dead_letters"],
    )
    engagement_sweep_lookback_hours: int = Field(
        48,
        gt=0,
        le=24 * 366,
        validation_alias=_env("ENGAGEMENT_SWEEP_LOOKBACK_HOURS"),
        description="The sweep re-enriches unknown-content events whose event time is at most this old.",
        examples=["48"],
    )
    engagement_sweep_limit: int = Field(
        50_000,
        gt=0,
        validation_alias=_env("ENGAGEMENT_SWEEP_LIMIT"),
        description="Most unknown-content events one sweep run re-enriches.",
        examples=["50000"],
    )
    content_cache_ttl_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        validation_alias=_env("CONTENT_CACHE_TTL_SECONDS"),
        description="Lifetime of the in-process content cache in front of Redis (0 disables it).",
        examples=["5"],
    )
    redis_key_prefix: str = Field(
        "",
        max_length=64,
        validation_alias=_env("REDIS_KEY_PREFIX"),
        description="Prefix of every Redis key of the engagement pipeline (empty keeps the earlier names).",
        examples=["staging:"],
    )
    leaderboard_windows: tuple[int, ...] = Field(
        (5, 10, 30, 60),
        validation_alias=_env("LEADERBOARD_WINDOWS"),
        description="Rolling leaderboard windows in minutes that the timer precomputes (comma-separated).",
        examples=["5,10,30,60"],
    )
    leaderboard_bucket_ttl_seconds: int = Field(
        7200,
        gt=0,
        validation_alias=_env("LEADERBOARD_BUCKET_TTL_SECONDS"),
        description="TTL of a minute bucket; at least (longest window + 1) * 60 seconds.",
        examples=["7200"],
    )
    leaderboard_schedule: str = Field(
        "1 * * * * *",
        validation_alias=_env("LEADERBOARD_SCHEDULE"),
        description="Six-field NCRONTAB schedule of the timer that precomputes the rolling windows.",
        examples=["1 * * * * *"],
    )

    mappings: tuple[EventHubMapping, ...] = Field(default=(), exclude=True)

    # Variable names every fixed field is read from (first alias), for docs and drift checks.
    fixed_variables: ClassVar[tuple[str, ...]]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() passes the environment explicitly, so tests and --env-file stay hermetic.
        return (init_settings,)

    @field_validator("eventhub_namespace")
    @classmethod
    def _namespace_host(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        host = value.strip().removeprefix("sb://").removeprefix("amqps://").rstrip("/")
        if not _HOST_RE.fullmatch(host):
            raise ValueError("must be a host name, optionally with a port")
        return host

    @field_validator("retry_min_interval", "retry_max_interval")
    @classmethod
    def _timespan(cls, value: str) -> str:
        if not _TIMESPAN_RE.fullmatch(value):
            raise ValueError("must be a time span hh:mm:ss")
        return value

    @field_validator("compaction_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 6 or not all(_NCRONTAB_FIELD_RE.fullmatch(f) for f in fields):
            raise ValueError("must be a six-field NCRONTAB expression (second minute hour day month weekday)")
        return value

    @field_validator("clickhouse_database")
    @classmethod
    def _ch_database(cls, value: str) -> str:
        if not is_identifier(value):
            raise ValueError(f"must be an identifier: {IDENTIFIER_RULE}")
        return value

    @field_validator("engagement_dead_letter_table")
    @classmethod
    def _engagement_identifier(cls, value: str) -> str:
        if not is_identifier(value):
            raise ValueError(f"must be an identifier: {IDENTIFIER_RULE}")
        return value

    @field_validator("leaderboard_schedule", "clickhouse_upkeep_schedule")
    @classmethod
    def _engagement_schedule(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 6 or not all(_NCRONTAB_FIELD_RE.fullmatch(f) for f in fields):
            raise ValueError("must be a six-field NCRONTAB expression (second minute hour day month weekday)")
        return value

    @field_validator("leaderboard_windows", mode="before")
    @classmethod
    def _windows(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts or not all(p.isdigit() for p in parts):
                raise ValueError("must be comma-separated whole minutes")
            value = tuple(int(p) for p in parts)
        if isinstance(value, tuple | list):
            if not value or not all(isinstance(w, int) and 1 <= w <= 1440 for w in value):
                raise ValueError("every window must be 1..1440 minutes")
            return tuple(sorted(set(value)))
        return value

    @field_validator("leaderboard_bucket_ttl_seconds")
    @classmethod
    def _bucket_ttl_covers_windows(cls, value: int, info: ValidationInfo) -> int:
        windows = info.data.get("leaderboard_windows") or (60,)
        longest = max(windows)
        if longest > leaderboard_max_window_minutes(value):
            raise ValueError(
                f"{value} s keeps minute buckets long enough for windows of at most "
                f"{leaderboard_max_window_minutes(value)} minutes, but LEADERBOARD_WINDOWS has {longest}; "
                f"set LEADERBOARD_BUCKET_TTL_SECONDS={leaderboard_min_bucket_ttl_seconds(longest)} or more, "
                "or shorten the window"
            )
        return value

    @property
    def uses_motherduck(self) -> bool:
        return self.motherduck_token is not None

    def token_for(self, mapping: EventHubMapping) -> SecretStr | None:
        return mapping.token or self.motherduck_token


def _first_alias(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    first = alias.choices[0] if isinstance(alias, AliasChoices) else None
    if not isinstance(first, str):
        raise TypeError(f"Settings.{field_name} needs a validation_alias naming its environment variable")
    return first


Settings.fixed_variables = tuple(
    _first_alias(name) for name, f in Settings.model_fields.items() if f.validation_alias is not None
)


def _aliases(field_name: str) -> tuple[str, ...]:
    """Every variable name ``Settings.<field_name>`` is read from."""
    alias = Settings.model_fields[field_name].validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else []
    return tuple(c for c in choices if isinstance(c, str))


_ALL_ALIASES: frozenset[str] = frozenset(
    choice
    for f in Settings.model_fields.values()
    if isinstance(f.validation_alias, AliasChoices)
    for choice in f.validation_alias.choices
    if isinstance(choice, str)
)


def _example_for(variable: str) -> str:
    for name, f in Settings.model_fields.items():
        if isinstance(f.validation_alias, AliasChoices) and variable in f.validation_alias.choices:
            del name
            return str((f.examples or [""])[0])
    return ""


def _parse_mappings(env: Mapping[str, str], problems: dict[str, str]) -> tuple[EventHubMapping, ...]:
    numbered: dict[int, dict[str, str]] = {}
    for key, value in env.items():
        match = _MAPPING_KEY_RE.fullmatch(key)
        if not match:
            continue
        prefix, number, suffix = match.groups()
        template = f"{prefix}_{{n}}" + (f"_{suffix}" if suffix else "")
        if template not in MAPPING_VARIABLES:
            known = ", ".join(t.replace("{n}", number) for t in MAPPING_VARIABLES)
            problems[key] = f"unknown mapping variable; known ones are {known}"
            continue
        numbered.setdefault(int(number), {})[template] = value.strip()

    mappings: list[EventHubMapping] = []
    for n in sorted(numbered):
        values = numbered[n]
        ok = True
        for template, (required, example) in MAPPING_VARIABLES.items():
            name = template.replace("{n}", str(n))
            if required and not values.get(template):
                problems[name] = f"missing: mapping {n} is incomplete (set it, for example {name}={example})"
                ok = False
        if not ok:
            continue
        hub = values["EVENTHUBNAME_{n}"]
        group = values["EVENTHUBNAME_{n}_CONSUMER_GROUP"]
        if not _HUB_NAME_RE.fullmatch(hub):
            problems[f"EVENTHUBNAME_{n}"] = (
                f"{hub!r} is not a valid Event Hub name (letters, digits, '.', '-', '_'; "
                "starts and ends with a letter or digit), for example telemetry"
            )
            ok = False
        if not _CONSUMER_GROUP_RE.fullmatch(group):
            problems[f"EVENTHUBNAME_{n}_CONSUMER_GROUP"] = (
                f"{group!r} is not a valid consumer group, for example $Default"
            )
            ok = False
        for part, example in (("DATABASE", "analytics"), ("SCHEMA", "raw"), ("TABLE", "telemetry_events")):
            value = values[f"MOTHERDUCK_{{n}}_{part}"]
            if not is_identifier(value) or value.lower().startswith("_streamduck"):
                problems[f"MOTHERDUCK_{n}_{part}"] = (
                    f"{value!r} is not a valid identifier: use {IDENTIFIER_RULE} "
                    f"(not starting with _streamduck), for example {example}"
                )
                ok = False
        batch = _int_in_range(values, n, "BATCH", 1000, 1, 1_000_000, problems)
        retention = _int_in_range(values, n, "RETENTION_DAYS", None, 1, 36_500, problems)
        fmt_raw = values.get("MOTHERDUCK_{n}_FORMAT", "json").lower() or "json"
        if fmt_raw not in {f.value for f in BodyFormat}:
            problems[f"MOTHERDUCK_{n}_FORMAT"] = (
                f"{fmt_raw!r} is not one of json, text, binary, for example json"
            )
            ok = False
        lenient_raw = values.get("MOTHERDUCK_{n}_JSON_LENIENT", "").lower()
        if lenient_raw not in {"", "true", "false", "1", "0"}:
            problems[f"MOTHERDUCK_{n}_JSON_LENIENT"] = (
                f"{lenient_raw!r} is not true or false, for example false"
            )
            ok = False
        if not ok or batch is None:
            continue
        token = values.get("MOTHERDUCK_{n}_TOKEN")
        mappings.append(
            EventHubMapping(
                index=n,
                event_hub=hub,
                consumer_group=group,
                database=values["MOTHERDUCK_{n}_DATABASE"],
                schema_name=values["MOTHERDUCK_{n}_SCHEMA"],
                table=values["MOTHERDUCK_{n}_TABLE"],
                batch=batch,
                body_format=BodyFormat(fmt_raw),
                json_lenient=lenient_raw in {"true", "1"},
                retention_days=retention,
                token=SecretStr(token) if token else None,
            )
        )

    seen: dict[tuple[str, str, str], int] = {}
    for m in mappings:
        target_key = (m.event_hub, m.consumer_group, m.target.lower())
        if target_key in seen:
            problems[f"EVENTHUBNAME_{m.index}"] = (
                f"mapping {m.index} repeats mapping {seen[target_key]} (same hub, consumer group and table); "
                "remove one or give it another table"
            )
        seen[target_key] = m.index
    return tuple(mappings)


def _int_in_range(
    values: Mapping[str, str],
    n: int,
    part: str,
    default: int | None,
    low: int,
    high: int,
    problems: dict[str, str],
) -> int | None:
    raw = values.get(f"MOTHERDUCK_{{n}}_{part}", "")
    if raw == "":
        return default
    name = f"MOTHERDUCK_{n}_{part}"
    try:
        value = int(raw)
    except ValueError:
        problems[name] = (
            f"{raw!r} is not an integer, for example {MAPPING_VARIABLES['MOTHERDUCK_{n}_' + part][1]}"
        )
        return default
    if not low <= value <= high:
        problems[name] = f"{value} is out of range {low}..{high}"
        return default
    return value


# App Service replaces an app setting of this form with the secret's value; when it cannot (no access, wrong
# vault, secret or version), the app receives the reference text itself.
# https://learn.microsoft.com/azure/app-service/app-service-key-vault-references
_KEY_VAULT_REFERENCE_RE = re.compile(r"^\s*@Microsoft\.KeyVault\(", re.IGNORECASE)
KEY_VAULT_REFERENCES_DOC = "https://learn.microsoft.com/azure/app-service/app-service-key-vault-references"

# Set by App Service on every instance of an app running in Azure (never locally).
# https://learn.microsoft.com/azure/app-service/reference-app-settings
AZURE_INSTANCE_VARIABLE = "WEBSITE_INSTANCE_ID"
RUN_FROM_PACKAGE_DOC = (
    "https://learn.microsoft.com/azure/azure-functions/run-functions-from-deployment-package"
)


def _reads(variable: str) -> bool:
    """Whether StreamDuck reads ``variable`` (a fixed setting or a known numbered mapping variable)."""
    if variable in _ALL_ALIASES:
        return True
    match = _MAPPING_KEY_RE.fullmatch(variable)
    if match is None:
        return False
    prefix, _, suffix = match.groups()
    return f"{prefix}_{{n}}" + (f"_{suffix}" if suffix else "") in MAPPING_VARIABLES


def _unresolved_key_vault_references(env: Mapping[str, str]) -> dict[str, str]:
    """Every setting StreamDuck reads whose value is still a ``@Microsoft.KeyVault(...)`` reference."""
    return {
        name: (
            f"still the Key Vault reference {value.strip()!r}: App Service could not resolve it, so the app "
            "would use that text as the value. Grant the app's identity the Key Vault Secrets User role on "
            "the vault, or correct the vault and secret name (or the secret URI), for example "
            f"{name}=@Microsoft.KeyVault(VaultName=my-vault;SecretName=my-secret); see "
            f"{KEY_VAULT_REFERENCES_DOC}"
        )
        for name, value in env.items()
        if _reads(name) and _KEY_VAULT_REFERENCE_RE.match(value)
    }


def _chdb_problem(clickhouse_host: str | None) -> str | None:
    """Without ``CLICKHOUSE_HOST`` the engagement functions use embedded chDB, which only local installs have."""
    if clickhouse_host or importlib.util.find_spec("chdb") is not None:
        return None
    example = _example_for("CLICKHOUSE_HOST")
    return (
        "missing: without it the engagement functions use embedded ClickHouse (chDB), which is not installed "
        "(the deployed app has no chDB). Set the ClickHouse server, for example "
        f"CLICKHOUSE_HOST={example}, or for local runs install chDB with pip install 'streamduck[local]'"
    )


def _local_files_in_azure_problem(
    env: Mapping[str, str], mappings: tuple[EventHubMapping, ...]
) -> str | None:
    """In Azure every mapping needs a MotherDuck token: local DuckDB files would go under the read-only mount."""
    if not env.get(AZURE_INSTANCE_VARIABLE, "").strip():
        return None
    if any(env.get(name, "").strip() for name in _aliases("motherduck_token")):
        return None
    without = [m for m in mappings if m.token is None]
    if not without:
        return None
    numbers = ", ".join(str(m.index) for m in without)
    return (
        f"missing: the app runs in Azure ({AZURE_INSTANCE_VARIABLE} is set) and Event Hubs mapping(s) {numbers} "
        "have no MotherDuck token, so they would write local DuckDB files, and the app's files are a "
        f"read-only package mount there ({RUN_FROM_PACKAGE_DOC}). Set MotherDuck's token, for example "
        "MOTHERDUCK_TOKEN=@Microsoft.KeyVault(VaultName=my-vault;SecretName=motherduck-token), or "
        "MOTHERDUCK_N_TOKEN for one mapping"
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings from ``environ`` (default: the process environment).

    Raises :class:`~shared.errors.ConfigError` listing every problem, each with the variable to fix. Beside
    each value's own rules it checks what only Azure gets wrong: a Key Vault reference App Service could not
    resolve, local DuckDB files while running in Azure, and embedded ClickHouse where chDB is not installed.
    """
    env = dict(os.environ if environ is None else environ)
    problems: dict[str, str] = {}
    unresolved = _unresolved_key_vault_references(env)
    mappings = _parse_mappings(env, problems)
    # An unresolved reference is reported as such, not as whatever its text breaks further on.
    fixed = {k: v for k, v in env.items() if k in _ALL_ALIASES and v != "" and k not in unresolved}
    if (chdb := _chdb_problem(fixed.get("CLICKHOUSE_HOST"))) is not None:
        problems["CLICKHOUSE_HOST"] = chdb
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(fixed)
    except ValidationError as exc:
        for err in exc.errors():
            variable = str(err["loc"][0]) if err["loc"] else "?"
            if variable in Settings.model_fields:  # a defaulted field is reported by name, not by variable
                variable = _first_alias(variable)
            example = _example_for(variable)
            suggested = f"{variable}=" in err["msg"]  # the message already says what to set
            hint = f", for example {variable}={example}" if example and not suggested else ""
            problems[variable] = f"{err['msg']}{hint}"
    if (local := _local_files_in_azure_problem(env, mappings)) is not None:
        problems.setdefault("MOTHERDUCK_TOKEN", local)
    problems.update(unresolved)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings.model_copy(update={"mappings": mappings})
