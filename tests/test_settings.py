"""Every setting that can be wrong is refused at indexing with a message naming its variable and an example value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import MAPPING_VARIABLES, Settings, load_settings
from tests.eventhubs.helpers import mapping_env

SCHEDULES = {
    "STREAMDUCK_COMPACTION_SCHEDULE": "0 30 3 * * *",
    "CLICKHOUSE_UPKEEP_SCHEDULE": "0 */10 * * * *",
    "LEADERBOARD_SCHEDULE": "1 * * * * *",
}

# A value each fixed setting refuses. Variables not here take any text (names, paths, secrets, URLs).
BAD_FIXED = {
    "EVENTHUB_NAMESPACE": "bad host/name",
    "STREAMDUCK_MAX_EVENT_BYTES": "0",
    "STREAMDUCK_RETRY_MAX_COUNT": "-5",
    "STREAMDUCK_RETRY_MIN_INTERVAL": "5s",
    "STREAMDUCK_RETRY_MAX_INTERVAL": "5:00",
    "STREAMDUCK_COMPACTION_SCHEDULE": "99 * * * * *",
    "STREAMDUCK_COMPACTION_BUDGET_SECONDS": "soon",
    "KAFKA_PROTOCOL": "TLS",
    "KAFKA_AUTH_MODE": "OAUTH",
    "REDIS_ENTRA_AUTH": "maybe",
    "CLICKHOUSE_PORT": "70000",
    "CLICKHOUSE_DATABASE": "an-alytics",
    "CLICKHOUSE_SECURE": "perhaps",
    "CLICKHOUSE_OPTIMIZE_DAYS": "32",
    "CLICKHOUSE_UPKEEP_SCHEDULE": "* * 25 * * *",
    "ENGAGEMENT_DEAD_LETTER_TABLE": "dead letters",
    "ENGAGEMENT_SWEEP_LOOKBACK_HOURS": "0",
    "ENGAGEMENT_SWEEP_LIMIT": "-1",
    "CONTENT_CACHE_TTL_SECONDS": "3601",
    "REDIS_KEY_PREFIX": "x" * 65,
    "LEADERBOARD_WINDOWS": "5,ten",
    "LEADERBOARD_BUCKET_TTL_SECONDS": "60",
    "LEADERBOARD_SCHEDULE": "0 * * * *",
}
ANY_TEXT = {
    "EVENTHUB_CONNECTION_STRING",
    "MOTHERDUCK_TOKEN",
    "STREAMDUCK_DATA_DIR",
    "KAFKA_BROKERS",
    "KAFKA_USERNAME",
    "KAFKA_PASSWORD",
    "KAFKA_CONSUMER_GROUP",
    "TOPIC_CONTENT",
    "TOPIC_ENGAGE",
    "TOPIC_OUT",
    "REDIS_URL",
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "CLICKHOUSE_CHDB_PATH",
}

# Values each numbered mapping variable refuses (MOTHERDUCK_N_TOKEN takes any text).
BAD_MAPPING = {
    "EVENTHUBNAME_{n}": ["-bad-", "a" * 257],
    "EVENTHUBNAME_{n}_CONSUMER_GROUP": ["a b", "$default"],
    "MOTHERDUCK_{n}_DATABASE": ["1lake", "_streamduck"],
    "MOTHERDUCK_{n}_SCHEMA": ['raw"', "a" * 64],
    "MOTHERDUCK_{n}_TABLE": ["events; DROP TABLE x", "_StreamDuck_watermarks"],
    "MOTHERDUCK_{n}_BATCH": ["lots", "0", "1000001", "1.5"],
    "MOTHERDUCK_{n}_FORMAT": ["xml"],
    "MOTHERDUCK_{n}_JSON_LENIENT": ["maybe", "tru"],
    "MOTHERDUCK_{n}_RETENTION_DAYS": ["-3", "36501", "forever"],
}


def _problems(env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.problems


# ------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("variable", SCHEDULES)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("99 * * * * *", "'99' in the second field is outside 0..59"),
        ("* * 25 * * *", "'25' in the hour field is outside 0..23"),
        ("0 30 3 * *", "'0 30 3 * *' has 5 field(s); a six-field NCRONTAB expression has"),
        ("*/0 * * * * *", "'*/0' in the second field has step 0"),
        ("0 0 0 * MON *", "'MON' in the month field is not a number or a name"),
        ("0 0 0 30 2 *", "'0 0 0 30 2 *' never fires"),
    ],
)
def test_a_schedule_the_timers_cannot_run_fails_at_indexing(
    tmp_path: Path, variable: str, value: str, reason: str
) -> None:
    problems = _problems({**mapping_env(1, tmp_path), variable: value})
    assert set(problems) == {variable}
    assert problems[variable].startswith(reason)
    assert problems[variable].endswith(f", for example {variable}={SCHEDULES[variable]}")


@pytest.mark.parametrize("variable", SCHEDULES)
@pytest.mark.parametrize("value", ["0 0 9 * * MON-FRI", "0 0 0 1 jan,JUL *", "*/30 * * * * *", "0 0 0 * * 7"])
def test_schedules_with_names_steps_and_lists_are_accepted(tmp_path: Path, variable: str, value: str) -> None:
    settings = load_settings({**mapping_env(1, tmp_path), variable: value})
    assert settings.model_dump(by_alias=False)[_field_of(variable)] == value


def test_every_default_is_valid(tmp_path: Path) -> None:
    defaults = {
        variable: _default_text(variable)
        for variable in Settings.fixed_variables
        if Settings.model_fields[_field_of(variable)].default is not None
    }
    assert set(SCHEDULES) <= set(defaults)
    env = mapping_env(1, tmp_path)
    assert load_settings({**defaults, **env}) == load_settings(env)


# ------------------------------------------------------------------- every field's error, walked
def test_the_walk_covers_every_fixed_setting() -> None:
    assert set(BAD_FIXED) | ANY_TEXT == set(Settings.fixed_variables)
    assert not set(BAD_FIXED) & ANY_TEXT


@pytest.mark.parametrize(("variable", "value"), BAD_FIXED.items())
def test_each_fixed_setting_names_its_variable_with_an_example(
    tmp_path: Path, variable: str, value: str
) -> None:
    problems = _problems({**mapping_env(1, tmp_path), variable: value})
    assert set(problems) == {variable}
    assert re.search(rf"\b{variable}=\S", problems[variable]), problems[variable]
    assert not problems[variable].startswith("Value error")


def test_the_walk_covers_every_mapping_variable() -> None:
    assert set(BAD_MAPPING) | {"MOTHERDUCK_{n}_TOKEN"} == set(MAPPING_VARIABLES)


@pytest.mark.parametrize(("template", "value"), [(t, v) for t, values in BAD_MAPPING.items() for v in values])
def test_each_mapping_variable_names_itself_with_an_example(
    tmp_path: Path, template: str, value: str
) -> None:
    variable, example = template.replace("{n}", "2"), MAPPING_VARIABLES[template][1]
    problems = _problems({**mapping_env(1, tmp_path), **mapping_env(2, tmp_path), variable: value})
    assert set(problems) == {variable}
    assert problems[variable].startswith(repr(value) if not value.lstrip("-").isdigit() else value)
    assert problems[variable].endswith(f", for example {example}")


@pytest.mark.parametrize("template", [t for t, (required, _) in MAPPING_VARIABLES.items() if required])
def test_each_missing_mapping_variable_names_itself_with_an_example(tmp_path: Path, template: str) -> None:
    variable, example = template.replace("{n}", "2"), MAPPING_VARIABLES[template][1]
    for unset in (None, "", "  "):
        env = {**mapping_env(1, tmp_path), **mapping_env(2, tmp_path)}
        if unset is None:
            del env[variable]
        else:
            env[variable] = unset
        assert _problems(env) == {
            variable: f"missing: mapping 2 is incomplete (set it, for example {variable}={example})"
        }


def test_a_bad_mapping_is_not_built_but_the_others_still_are_checked(tmp_path: Path) -> None:
    env = {**mapping_env(1, tmp_path), **mapping_env(2, tmp_path), "MOTHERDUCK_1_BATCH": "lots"}
    env["MOTHERDUCK_2_FORMAT"] = "xml"
    assert set(_problems(env)) == {"MOTHERDUCK_1_BATCH", "MOTHERDUCK_2_FORMAT"}


def _field_of(variable: str) -> str:
    return next(
        name
        for name, f in Settings.model_fields.items()
        if variable in getattr(f.validation_alias, "choices", ())
    )


def _default_text(variable: str) -> str:
    default = Settings.model_fields[_field_of(variable)].default
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    if isinstance(default, bool):
        return str(default).lower()
    secret = getattr(default, "get_secret_value", None)
    return str(secret() if secret else default)
