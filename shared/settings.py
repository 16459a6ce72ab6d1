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
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigError
from shared.ncrontab import Schedule
from shared.sqlident import IDENTIFIER_RULE, is_identifier
from shared.timespan import parse_timespan


class BodyFormat(StrEnum):
    """How an Event Hubs body is stored: validated JSON, UTF-8 text, or raw bytes."""

    JSON = "json"
    TEXT = "text"
    BINARY = "binary"


_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$")
_MAPPING_KEY_RE = re.compile(r"^(EVENTHUBNAME|MOTHERDUCK)_(\d+)(?:_([A-Z_]+))?$")
# A schedule must fire at least once in the five years after this instant (``0 0 0 30 2 *`` never does).
_SCHEDULE_CHECKED_FROM = datetime(2000, 1, 1, tzinfo=UTC)


# --- value types: each carries its own rule, so every field of that kind is checked the same way ----------
def _identifier(value: str) -> str:
    if not is_identifier(value):
        raise ValueError(f"{value!r} is not a valid identifier: use {IDENTIFIER_RULE}")
    return value


def _not_reserved(value: str) -> str:
    if value.lower().startswith("_streamduck"):
        raise ValueError(
            f"{value!r} is reserved for StreamDuck's own tables: use a name not starting with _streamduck"
        )
    return value


def _time_span(value: str) -> str:
    parse_timespan(value)  # ValueError names the expected form
    return value


def _lowercase(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _schedule(value: str) -> str:
    Schedule(value).next_after(_SCHEDULE_CHECKED_FROM)  # ValueError names the wrong field
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
"""An SQL identifier (see :mod:`shared.sqlident`)."""
TableIdentifier = Annotated[Identifier, AfterValidator(_not_reserved)]
"""An SQL identifier of the user's, not one of StreamDuck's own ``_streamduck*`` tables."""
TimeSpan = Annotated[str, AfterValidator(_time_span)]
"""A time span as the Functions host reads it (``hh:mm:ss``, see :mod:`shared.timespan`)."""
NcrontabSchedule = Annotated[str, AfterValidator(_schedule)]
"""A six-field NCRONTAB expression the dev host's timers (and Azure's) can run."""


class EventHubMapping(BaseModel):
    """One Event Hub -> MotherDuck table mapping (``EVENTHUBNAME_N`` -> ``MOTHERDUCK_N_*``).

    Each field is read from its numbered variable (the ``validation_alias``, ``{n}`` the mapping's number);
    the example is the one the error messages show.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    index: int
    event_hub: str = Field(
        validation_alias="EVENTHUBNAME_{n}",
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$",
        description="Event Hub name (letters, digits, '.', '-', '_'; starts and ends with a letter or digit)",
        examples=["telemetry"],
    )
    consumer_group: str = Field(
        validation_alias="EVENTHUBNAME_{n}_CONSUMER_GROUP",
        pattern=r"^(?:\$Default|[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?)$",
        description="consumer group",
        examples=["$Default"],
    )
    database: TableIdentifier = Field(validation_alias="MOTHERDUCK_{n}_DATABASE", examples=["analytics"])
    schema_name: TableIdentifier = Field(validation_alias="MOTHERDUCK_{n}_SCHEMA", examples=["raw"])
    table: TableIdentifier = Field(validation_alias="MOTHERDUCK_{n}_TABLE", examples=["telemetry_events"])
    batch: int = Field(1000, ge=1, le=1_000_000, validation_alias="MOTHERDUCK_{n}_BATCH", examples=["1000"])
    body_format: Annotated[BodyFormat, BeforeValidator(_lowercase)] = Field(
        BodyFormat.JSON, validation_alias="MOTHERDUCK_{n}_FORMAT", examples=["json"]
    )
    # json: also keep what DuckDB's parser accepts beyond RFC 8259 (NaN, Infinity, trailing commas)
    json_lenient: bool = Field(False, validation_alias="MOTHERDUCK_{n}_JSON_LENIENT", examples=["false"])
    retention_days: int | None = Field(
        None, ge=1, le=36_500, validation_alias="MOTHERDUCK_{n}_RETENTION_DAYS", examples=["30"]
    )
    token: SecretStr | None = Field(
        None, validation_alias="MOTHERDUCK_{n}_TOKEN", examples=["<MotherDuck access token>"]
    )

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


# Numbered mapping variables: name template -> (required, example), read off EventHubMapping's fields.
MAPPING_VARIABLES: dict[str, tuple[bool, str]] = {
    f.validation_alias: (f.is_required(), str((f.examples or [""])[0]))
    for f in EventHubMapping.model_fields.values()
    if isinstance(f.validation_alias, str)
}


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
    retry_min_interval: TimeSpan = Field(
        "00:00:01",
        validation_alias=_env("STREAMDUCK_RETRY_MIN_INTERVAL"),
        description="First back-off delay of the exponential retry policy (hh:mm:ss).",
        examples=["00:00:01"],
    )
    retry_max_interval: TimeSpan = Field(
        "00:05:00",
        validation_alias=_env("STREAMDUCK_RETRY_MAX_INTERVAL"),
        description="Longest back-off delay of the exponential retry policy (hh:mm:ss).",
        examples=["00:05:00"],
    )
    compaction_schedule: NcrontabSchedule = Field(
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
    clickhouse_database: Identifier = Field(
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
    clickhouse_upkeep_schedule: NcrontabSchedule = Field(
        "0 */10 * * * *",
        validation_alias=_env("CLICKHOUSE_UPKEEP_SCHEDULE"),
        description="Six-field NCRONTAB schedule of the ClickHouse upkeep and unknown-content sweep timer.",
        examples=["0 */10 * * * *"],
    )
    engagement_dead_letter_table: Identifier = Field(
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
    leaderboard_schedule: NcrontabSchedule = Field(
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


def _aliases(field_name: str) -> tuple[str, ...]:
    """Every variable ``Settings.<field_name>`` is read from; messages name the first."""
    alias = Settings.model_fields[field_name].validation_alias
    choices = tuple(
        c for c in (alias.choices if isinstance(alias, AliasChoices) else []) if isinstance(c, str)
    )
    if not choices:
        raise TypeError(f"Settings.{field_name} needs a validation_alias naming its environment variable")
    return choices


_READ_FROM = [name for name, f in Settings.model_fields.items() if f.validation_alias is not None]
Settings.fixed_variables = tuple(_aliases(name)[0] for name in _READ_FROM)
# Every fixed variable (each alias) -> the example value its messages show.
_EXAMPLES: dict[str, str] = {
    variable: str((Settings.model_fields[name].examples or [""])[0])
    for name in _READ_FROM
    for variable in _aliases(name)
}


def _reason(err: ErrorDetails) -> str:
    """Pydantic's message, or a validator's own without pydantic's ``Value error,`` in front."""
    if err["type"] == "value_error" and "ctx" in err:
        return str(err["ctx"]["error"])
    return err["msg"]


def _fixed_problem(err: ErrorDetails) -> tuple[str, str]:
    """(variable, message with an example value) for one error of :class:`Settings`."""
    variable = str(err["loc"][0]) if err["loc"] else "?"
    if variable in Settings.model_fields:  # a defaulted field is reported by name, not by variable
        variable = _aliases(variable)[0]
    reason, example = _reason(err), _EXAMPLES.get(variable, "")
    suggested = f"{variable}=" in reason  # the message already says what to set
    return variable, f"{reason}, for example {variable}={example}" if example and not suggested else reason


def _numbered(variable: str) -> tuple[int, str] | None:
    """(N, name template) of a numbered mapping variable such as ``MOTHERDUCK_2_BATCH``, known or not."""
    match = _MAPPING_KEY_RE.fullmatch(variable)
    if match is None:
        return None
    prefix, number, suffix = match.groups()
    return int(number), f"{prefix}_{{n}}" + (f"_{suffix}" if suffix else "")


def _mapping_problem(err: ErrorDetails, n: int) -> tuple[str, str]:
    """(variable, message with an example value) for one error of mapping ``n``'s :class:`EventHubMapping`."""
    template = str(err["loc"][0])
    variable = template.replace("{n}", str(n))
    field = next(f for f in EventHubMapping.model_fields.values() if f.validation_alias == template)
    example = MAPPING_VARIABLES[template][1]
    value = err["input"]
    match err["type"]:
        case "missing":
            return variable, f"missing: mapping {n} is incomplete (set it, for example {variable}={example})"
        case "string_pattern_mismatch":
            reason = f"{value!r} is not a valid {field.description}"
        case "int_parsing":
            reason = f"{value!r} is not an integer"
        case "bool_parsing":
            reason = f"{value!r} is not true or false"
        case "greater_than_equal" | "less_than_equal":
            bound = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le") if hasattr(m, k)}
            reason = f"{value} is out of range {bound['ge']}..{bound['le']}"
        case "enum" if isinstance(field.annotation, type) and issubclass(field.annotation, Enum):
            reason = f"{value!r} is not one of {', '.join(str(c.value) for c in field.annotation)}"
        case _:
            reason = _reason(err)
    return variable, f"{reason}, for example {example}"


def _group_mappings(env: Mapping[str, str], problems: dict[str, str]) -> dict[int, dict[str, str]]:
    """The numbered variables by N (``{n: {name template: value}}``), set values only; unknown ones are problems."""
    groups: dict[int, dict[str, str]] = {}
    for key, value in env.items():
        if (numbered := _numbered(key)) is None:
            continue
        n, template = numbered
        if template not in MAPPING_VARIABLES:
            known = ", ".join(t.replace("{n}", str(n)) for t in MAPPING_VARIABLES)
            problems[key] = f"unknown mapping variable; known ones are {known}"
            continue
        group = groups.setdefault(n, {})
        if value.strip():  # an empty value is an unset one: missing, or the default
            group[template] = value.strip()
    return groups


def _parse_mappings(
    groups: Mapping[int, Mapping[str, str]], problems: dict[str, str]
) -> tuple[EventHubMapping, ...]:
    """Validate each group as one :class:`EventHubMapping`; a mapping used twice is a problem too."""
    mappings: list[EventHubMapping] = []
    for n, group in sorted(groups.items()):
        try:
            mappings.append(EventHubMapping.model_validate({"index": n, **group}))
        except ValidationError as exc:
            problems.update(_mapping_problem(err, n) for err in exc.errors())

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
    numbered = _numbered(variable)
    return variable in _EXAMPLES or (numbered is not None and numbered[1] in MAPPING_VARIABLES)


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
    example = _EXAMPLES["CLICKHOUSE_HOST"]
    return (
        "missing: without it the engagement functions use embedded ClickHouse (chDB), which is not installed "
        "(the deployed app has no chDB). Set the ClickHouse server, for example "
        f"CLICKHOUSE_HOST={example}, or for local runs install chDB with pip install 'streamduck[local]'"
    )


def _local_files_in_azure_problem(
    env: Mapping[str, str], groups: Mapping[int, Mapping[str, str]]
) -> str | None:
    """In Azure every mapping needs a MotherDuck token: local DuckDB files would go under the read-only mount."""
    if not env.get(AZURE_INSTANCE_VARIABLE, "").strip():
        return None
    if any(env.get(name, "").strip() for name in _aliases("motherduck_token")):
        return None
    without = [n for n, group in sorted(groups.items()) if "MOTHERDUCK_{n}_TOKEN" not in group]
    if not without:
        return None
    numbers = ", ".join(map(str, without))
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
    groups = _group_mappings(env, problems)
    mappings = _parse_mappings(groups, problems)
    # An unresolved reference is reported as such, not as whatever its text breaks further on.
    fixed = {k: v for k, v in env.items() if k in _EXAMPLES and v != "" and k not in unresolved}
    if (chdb := _chdb_problem(fixed.get("CLICKHOUSE_HOST"))) is not None:
        problems["CLICKHOUSE_HOST"] = chdb
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(fixed)
    except ValidationError as exc:
        problems.update(_fixed_problem(err) for err in exc.errors())
    if (local := _local_files_in_azure_problem(env, groups)) is not None:
        problems.setdefault("MOTHERDUCK_TOKEN", local)
    problems.update(unresolved)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings.model_copy(update={"mappings": mappings})
