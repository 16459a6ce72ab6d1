"""MotherDuck accepts DuckDB clients inside a version window only: the recorded window, the installed duckdb
and the requirements.txt pin are inside it, and a refusal for the client version names both."""

from __future__ import annotations

import json
import re
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from pydantic import SecretStr

from shared.duck.connection import DuckConnections, motherduck_window, translate_connect_error
from shared.errors import TerminalError, TransientError
from tests.eventhubs.helpers import ROOT

VERSIONS_FILE = ROOT / "shared" / "duck" / "motherduck_versions.json"

# What MotherDuck's extension raised for unsupported clients, as reported (wrapped by DuckDB the way it wraps
# an exception from an extension's init function): too new (dbt-labs/dbt-core#15106, bruin-data/bruin#2106),
# too old (airbytehq/airbyte#55235), and the wording of older extensions (cloudquery/cloudquery#18856).
TOO_NEW = (
    'Invalid Input Error: Initialization function "motherduck_init" from file '
    '"/root/.duckdb/extensions/v1.5.3/linux_amd64/motherduck.duckdb_extension" threw an exception: '
    '"Your DuckDB version (v1.5.3) is not yet supported by MotherDuck. The latest supported version is v1.5.2. '
    'Please downgrade to use MotherDuck."'
)
TOO_OLD = (
    'Invalid Input Error: Initialization function "motherduck_init" from file '
    '"/root/.duckdb/extensions/v0.10.3/linux_amd64_gcc4/motherduck.duckdb_extension" threw an exception: '
    '"\nYour DuckDB version (v0.10.3) is not supported by MotherDuck. Please upgrade DuckDB to v1.2.1"'
)
NO_LONGER = (
    "Invalid Error: Your MotherDuck extension is running on DuckDB v0.9.2 which is no longer supported. "
    "Please upgrade your DuckDB. We recommend DuckDB v1.0.0."
)
# DuckDB 1.5.6's own message when the extension cannot be downloaded (no outbound internet), as seen here.
DOWNLOAD_FAILED = (
    'IO Error: Failed to download extension "motherduck" at URL '
    '"http://extensions.duckdb.org/v1.5.6/linux_amd64/motherduck.duckdb_extension.gz"\n'
    'Extension "motherduck" is an existing extension.\n\nFor more info, visit '
    "https://duckdb.org/docs/stable/extensions/troubleshooting?version=v1.5.6&platform=linux_amd64"
    "&extension=motherduck (ERROR Could not establish connection)"
)


def _window() -> tuple[Version, Version]:
    w = motherduck_window()
    return Version(w.minimum), Version(w.maximum)


def test_the_recorded_window_names_its_sources_and_date() -> None:
    data = json.loads(VERSIONS_FILE.read_text(encoding="utf-8"))
    low, high = _window()
    assert low <= high
    assert date.fromisoformat(data["checked"])
    assert all(url.startswith("https://motherduck.com/docs/") for url in data["sources"])
    regions = data["regions"].values()
    # the window is the widest one of any region: min of the minimums, the maximum every region shares
    assert low == min(Version(r["min"]) for r in regions)
    assert {Version(r["max"]) for r in regions} == {high}


def test_installed_duckdb_is_inside_the_window() -> None:
    low, high = _window()
    assert low <= Version(duckdb.__version__) <= high, f"duckdb {duckdb.__version__} outside {low}..{high}"


def test_requirements_pin_duckdb_inside_the_window() -> None:
    pins = [
        Requirement(line.split("#", 1)[0].strip())
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*duckdb\b", line)
    ]
    (requirement,) = pins
    (spec,) = requirement.specifier  # one exact pin: a range could resolve outside the window
    assert spec.operator == "=="
    low, high = _window()
    assert low <= Version(spec.version) <= high


@pytest.mark.parametrize(
    ("text", "client"), [(TOO_NEW, "v1.5.3"), (TOO_OLD, "v0.10.3"), (NO_LONGER, "v0.9.2")]
)
def test_an_unsupported_client_is_terminal_and_names_installed_version_and_window(
    text: str, client: str
) -> None:
    error = translate_connect_error(duckdb.InvalidInputException(text), location="md:analytics")
    assert isinstance(error, TerminalError)
    message = str(error)
    window = motherduck_window()
    assert f"installed DuckDB {duckdb.__version__}" in message
    assert f"MotherDuck accepts {window.minimum} to {window.maximum}" in message
    assert client in message  # what MotherDuck said, without DuckDB's wrapping
    assert "motherduck_init" not in message


def test_a_failed_extension_download_is_transient_and_names_the_network() -> None:
    error = translate_connect_error(
        duckdb.IOException(DOWNLOAD_FAILED),
        location="md:analytics",
        extension_directory="/srv/duckdb/extensions",
    )
    assert isinstance(error, TransientError)
    message = str(error)
    assert "'motherduck' extension" in message
    assert "Failed to download extension" in message
    assert 'v1.5.6/linux_amd64/motherduck.duckdb_extension.gz"' in message  # the URL intact
    assert "/srv/duckdb/extensions" in message
    assert "NAT gateway" in message


def test_other_errors_are_not_translated_here() -> None:
    assert translate_connect_error(duckdb.IOException("IO Error: disk full"), location="md:a") is None


def test_md_without_the_extension_and_autoinstall_off_fails_quickly_and_clearly(tmp_path: Path) -> None:
    connections = DuckConnections(
        data_dir=tmp_path / "data",
        default_token=SecretStr("not-a-real-token"),
        duckdb_dir=tmp_path / "duckdb",
        autoinstall_extensions=False,
    )
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        connections.cursor("analytics")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith("md:analytics: cannot get the DuckDB 'motherduck' extension")
    assert str(tmp_path / "duckdb" / "extensions") in message
    assert "outbound HTTPS" in message
