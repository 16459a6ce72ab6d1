"""Root test configuration: real local services, and a suite that never skips.

Tests that need a service take one of the session fixtures below. Each reads its ``STREAMDUCK_TEST_*``
variable (``bash scripts/services.sh start`` writes them to ``.services/env``; ``make test`` sources that
file) and checks the service answers. A missing or unreachable service FAILS the test, it is never skipped:
a green run means every service-backed test really ran.

The session also fails when any test was skipped or xfailed (see :func:`pytest_sessionfinish`).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import uuid
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES_ENV_FILE = ROOT / ".services" / "env"
START_HINT = "run `bash scripts/services.sh start` (or `make test`)"

REDIS_URL_VAR = "STREAMDUCK_TEST_REDIS_URL"
KAFKA_BROKERS_VAR = "STREAMDUCK_TEST_KAFKA_BROKERS"
AZURITE_CONNECTION_STRING_VAR = "STREAMDUCK_TEST_AZURITE_CONNECTION_STRING"
PG_DSN_VAR = "STREAMDUCK_TEST_PG_DSN"

_EXPORT_LINE = re.compile(r"^export\s+(STREAMDUCK_TEST_[A-Z0-9_]+)=(.*)$")


def _services_env_file() -> dict[str, str]:
    """The variables from ``.services/env``, for a pytest run that did not source it."""
    try:
        text = SERVICES_ENV_FILE.read_text(encoding="utf-8")
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _EXPORT_LINE.match(line.strip())
        if match:
            parts = shlex.split(match.group(2))
            values[match.group(1)] = parts[0] if parts else ""
    return values


def _service_setting(var: str, service: str) -> str:
    """The variable's value from the environment, else from ``.services/env``; fails when unset."""
    value = os.environ.get(var, "").strip() or _services_env_file().get(var, "").strip()
    if not value:
        pytest.fail(f"{service} not available: {var} is not set; {START_HINT}", pytrace=False)
    return value


def _unreachable(service: str, where: str, error: Exception | str) -> NoReturn:
    """Fail (outside any ``except`` block, so the report shows one clear message)."""
    reason = f"{type(error).__name__}: {error}" if isinstance(error, Exception) else error
    pytest.fail(f"{service} not available at {where}: {reason}; {START_HINT}", pytrace=False)


# --------------------------------------------------------------------------------------- service fixtures


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:PORT/0`` of a Redis server that answered PING."""
    import redis

    url = _service_setting(REDIS_URL_VAR, "Redis")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    error: Exception | None = None
    try:
        answered = client.ping() is True
    except (redis.RedisError, OSError) as exc:
        answered, error = False, exc
    finally:
        client.close()
    if not answered:
        _unreachable("Redis", url, error or "PING was not answered")
    return url


@pytest.fixture(scope="session")
def kafka_brokers() -> str:
    """Bootstrap servers (``host:port``) of a Kafka broker that returned cluster metadata."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    brokers = _service_setting(KAFKA_BROKERS_VAR, "Kafka")
    admin = AdminClient(
        {"bootstrap.servers": brokers, "socket.connection.setup.timeout.ms": 3000},
        logger=logging.getLogger("streamduck.tests.kafka"),  # client logs go to pytest's log capture
    )
    error: Exception | str | None = None
    try:
        if not admin.list_topics(timeout=5).brokers:
            error = "no broker in its metadata"
    except KafkaException as exc:
        error = exc
    if error is not None:
        _unreachable("Kafka", brokers, error)
    return brokers


@pytest.fixture(scope="session")
def azurite_connection_string() -> str:
    """Explicit ``devstoreaccount1`` connection string of an Azurite that answered a Blob service call."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    conn = _service_setting(AZURITE_CONNECTION_STRING_VAR, "Azurite")
    client = BlobServiceClient.from_connection_string(
        conn, connection_timeout=3, read_timeout=10, retry_total=0
    )
    error: Exception | None = None
    try:
        client.get_service_properties()
    except AzureError as exc:
        error = exc
    finally:
        client.close()
    if error is not None:
        _unreachable("Azurite", client.url, error)
    return conn


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """``postgresql://app:app@127.0.0.1:PORT/appdb``: PostgreSQL 15 with ``wal_level=logical``."""
    import psycopg

    dsn = _service_setting(PG_DSN_VAR, "PostgreSQL")
    error: Exception | None = None
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        error = exc
    if error is not None:
        _unreachable("PostgreSQL", dsn, error)
    return dsn


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one embedded chDB engine of this test process (chDB allows one per process)."""
    from tests.chdb import process_chdb_path

    return process_chdb_path(tmp_path_factory)


@pytest.fixture
def unique_name() -> str:
    """A fresh lowercase suffix for topics, tables, containers, keys: a letter then 11 hex digits.

    Only ``[a-z0-9]``, so it fits Kafka topics, SQL identifiers, replication slots and Azure container
    names alike (join it with ``_`` or ``-`` as the target allows).
    """
    return "u" + uuid.uuid4().hex[:11]


# ------------------------------------------------------------------------------------ unit and integration

SERVICE_FIXTURES = frozenset(
    {"redis_url", "kafka_brokers", "azurite_connection_string", "pg_dsn", "connect_url"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test whose fixture closure holds a service fixture, ``unit`` the rest.

    ``make test-unit`` runs ``-m "not integration"`` with no service started, in under a minute. Two kinds of
    test need no service fixture and still stay out of that half, each marked in its file with the reason:
    a test that starts a service of its own (an explicit ``integration`` mark) and a ``slow`` one (waits out
    timeouts, runs a benchmark, a property search or a scanner), which counts as ``integration`` here.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        integration = item.get_closest_marker("integration") is not None
        if not integration and (names & SERVICE_FIXTURES or item.get_closest_marker("slow") is not None):
            item.add_marker(pytest.mark.integration)
            integration = True
        if not integration:
            item.add_marker(pytest.mark.unit)


# ------------------------------------------------------------------------------------ no skips, no xfails


class _NoSkipGuard:
    """Fails the session when any test (or module) was skipped, xfailed or xpassed under an xfail mark."""

    def __init__(self) -> None:
        self.not_run: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self.not_run.append(f"{report.nodeid} (skipped at collection)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        wasxfail = hasattr(report, "wasxfail")
        if report.skipped:
            self.not_run.append(f"{report.nodeid} ({'xfailed' if wasxfail else 'skipped'})")
        elif report.when == "call" and report.passed and wasxfail:
            self.not_run.append(f"{report.nodeid} (xpassed under an xfail mark)")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.not_run and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.not_run:
            return
        terminalreporter.write_sep("=", "session FAILED: tests were skipped or xfailed", red=True, bold=True)
        terminalreporter.write_line(
            "This suite never skips: a test whose service is missing must fail. Skipped or xfailed:"
        )
        for item in self.not_run:
            terminalreporter.write_line(f"  {item}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_NoSkipGuard(), "streamduck-no-skip-guard")
