"""Settings only Azure resolves: Key Vault references App Service could not resolve, and local DuckDB files
while running in Azure. Both are reported at indexing with every other problem, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import (
    KEY_VAULT_REFERENCES_DOC,
    MAPPING_VARIABLES,
    RUN_FROM_PACKAGE_DOC,
    Settings,
    load_settings,
)
from tests.eventhubs.helpers import index_app, mapping_env

SECRET_URI_REF = "@Microsoft.KeyVault(SecretUri=https://kv-abc.vault.azure.net/secrets/motherduck-token/)"
NAME_REF = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=clickhouse-password)"
IN_AZURE = {"WEBSITE_INSTANCE_ID": "8b3c0a1e5f7d4c2a9e6b1d0f3a5c7e9b"}


def _problems(env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.problems


def _every_variable_the_app_reads() -> list[str]:
    aliases = [
        choice
        for f in Settings.model_fields.values()
        if f.validation_alias is not None
        for choice in getattr(f.validation_alias, "choices", [])
    ]
    return sorted({*aliases, *(t.replace("{n}", "1") for t in MAPPING_VARIABLES)})


def _assert_unresolved_reference(message: str, variable: str, reference: str) -> None:
    assert message.startswith(f"still the Key Vault reference {reference!r}")
    assert "Key Vault Secrets User" in message
    assert "correct the vault and secret name (or the secret URI)" in message
    assert f"for example {variable}=@Microsoft.KeyVault(VaultName=my-vault;SecretName=my-secret)" in message
    assert KEY_VAULT_REFERENCES_DOC in message


# ------------------------------------------------------------------------------ Key Vault references
@pytest.mark.parametrize("variable", _every_variable_the_app_reads())
def test_every_setting_the_app_reads_is_checked_for_an_unresolved_reference(
    tmp_path: Path, variable: str
) -> None:
    env = {**mapping_env(1, tmp_path), variable: SECRET_URI_REF}
    problems = _problems(env)
    # Only this problem: the reference's text is not validated further (no enum, host or identifier error).
    assert set(problems) == {variable}
    _assert_unresolved_reference(problems[variable], variable, SECRET_URI_REF)


@pytest.mark.parametrize(
    ("variable", "reference"),
    [
        ("CLICKHOUSE_PASSWORD", NAME_REF),
        ("KAFKA_PASSWORD", "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=kafka;SecretVersion=0123abcd)"),
        ("MOTHERDUCK_TOKEN", "  @microsoft.keyvault(SecretUri=https://kv-abc.vault.azure.net/secrets/t)"),
        ("REDIS_URL", NAME_REF),
    ],
)
def test_both_reference_forms_are_recognised(tmp_path: Path, variable: str, reference: str) -> None:
    problems = _problems({**mapping_env(1, tmp_path), variable: reference})
    _assert_unresolved_reference(problems[variable], variable, reference.strip())


def test_resolved_secrets_and_settings_the_app_does_not_read_are_fine(tmp_path: Path) -> None:
    env = {
        **mapping_env(1, tmp_path),
        "CLICKHOUSE_PASSWORD": "s3cret@Microsoft.KeyVault(",  # a resolved value may contain anything
        "SOME_OTHER_APP_SETTING": NAME_REF,  # not read by StreamDuck
    }
    settings = load_settings(env)
    assert settings.clickhouse_password is not None
    assert settings.clickhouse_password.get_secret_value() == "s3cret@Microsoft.KeyVault("


# ------------------------------------------------------------------------- local DuckDB files in Azure
def test_in_azure_a_mapping_without_a_motherduck_token_is_an_error(tmp_path: Path) -> None:
    env = {**mapping_env(1, tmp_path), **mapping_env(2, tmp_path), "MOTHERDUCK_2_TOKEN": "t0k", **IN_AZURE}
    problems = _problems(env)
    assert set(problems) == {"MOTHERDUCK_TOKEN"}
    message = problems["MOTHERDUCK_TOKEN"]
    assert message.startswith("missing: the app runs in Azure (WEBSITE_INSTANCE_ID is set)")
    assert "mapping(s) 1 have no MotherDuck token" in message  # mapping 2 has its own token
    assert "read-only package mount" in message and RUN_FROM_PACKAGE_DOC in message
    example = "MOTHERDUCK_TOKEN=@Microsoft.KeyVault(VaultName=my-vault;SecretName=motherduck-token)"
    assert f"for example {example}" in message
    assert "MOTHERDUCK_N_TOKEN" in message


@pytest.mark.parametrize(
    "tokens",
    [
        {"MOTHERDUCK_TOKEN": "t0k"},
        {"motherduck_token": "t0k"},
        {"MOTHERDUCK_1_TOKEN": "t1", "MOTHERDUCK_2_TOKEN": "t2"},
    ],
)
def test_in_azure_a_token_for_every_mapping_is_fine(tmp_path: Path, tokens: dict[str, str]) -> None:
    env = {**mapping_env(1, tmp_path), **mapping_env(2, tmp_path), **tokens, **IN_AZURE}
    settings = load_settings(env)
    assert all(settings.token_for(m) is not None for m in settings.mappings)


def test_local_files_are_fine_outside_azure_and_azure_without_mappings_needs_no_token(tmp_path: Path) -> None:
    assert not load_settings(mapping_env(1, tmp_path)).uses_motherduck
    assert load_settings({"STREAMDUCK_DATA_DIR": str(tmp_path), **IN_AZURE}).mappings == ()


def test_an_unresolved_token_reference_in_azure_is_reported_as_the_reference(tmp_path: Path) -> None:
    problems = _problems({**mapping_env(1, tmp_path), "MOTHERDUCK_TOKEN": SECRET_URI_REF, **IN_AZURE})
    _assert_unresolved_reference(problems["MOTHERDUCK_TOKEN"], "MOTHERDUCK_TOKEN", SECRET_URI_REF)


def test_azure_problems_are_reported_together_with_every_other_problem(tmp_path: Path) -> None:
    env = {
        **mapping_env(1, tmp_path),
        "MOTHERDUCK_1_BATCH": "lots",
        "STREAMDUCK_RETRY_MIN_INTERVAL": "5s",
        "CLICKHOUSE_PASSWORD": NAME_REF,
        **IN_AZURE,
    }
    problems = _problems(env)
    assert set(problems) == {
        "MOTHERDUCK_1_BATCH",
        "STREAMDUCK_RETRY_MIN_INTERVAL",
        "CLICKHOUSE_PASSWORD",
        "MOTHERDUCK_TOKEN",
    }


# --------------------------------------------------------------------------- indexing stops the app
DUMP_NAMES = "import json, function_app\nprint(json.dumps(sorted(f.get_function_name() for f in function_app.app.get_functions())))"


def test_indexing_stops_on_an_unresolved_key_vault_reference(tmp_path: Path) -> None:
    env = {**mapping_env(1, tmp_path), "MOTHERDUCK_TOKEN": "t0k", "KAFKA_PASSWORD": NAME_REF, **IN_AZURE}
    with pytest.raises(AssertionError, match="ConfigError: invalid configuration") as info:
        index_app(env, DUMP_NAMES)
    message = str(info.value)
    assert f"KAFKA_PASSWORD: still the Key Vault reference {NAME_REF!r}" in message
    assert "Key Vault Secrets User" in message and KEY_VAULT_REFERENCES_DOC in message


def test_indexing_stops_in_azure_without_a_motherduck_token(tmp_path: Path) -> None:
    env = {**mapping_env(1, tmp_path), **IN_AZURE}
    with pytest.raises(AssertionError, match="ConfigError: invalid configuration") as info:
        index_app(env, DUMP_NAMES)
    assert "MOTHERDUCK_TOKEN: missing: the app runs in Azure (WEBSITE_INSTANCE_ID is set)" in str(info.value)
    # The same settings with a token index the app.
    assert "eventhub_to_motherduck_1" in index_app({**env, "MOTHERDUCK_TOKEN": "t0k"}, DUMP_NAMES)
