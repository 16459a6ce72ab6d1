"""One definition of the local services' versions: scripts/versions.env.

scripts/services.sh reads it (the Kafka jars it fetches, the PostgreSQL it installs and runs); the image tags
of docker-compose.yml, the Maven pom's default Kafka version, CI's PostgreSQL package and the README name the
same versions. Azurite's version is the one pinned in scripts/azurite/package.json, on both sides as well.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "scripts" / "versions.env"
SERVICES_SCRIPTS = [ROOT / "scripts" / "services.sh", *sorted((ROOT / "scripts" / "services").glob("*.sh"))]
POM = ROOT / "scripts" / "kafka" / "pom.xml"
CONNECT_POM = ROOT / "scripts" / "connect" / "pom.xml"
COMPOSE = ROOT / "docker-compose.yml"
_ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S+)$")


def versions() -> dict[str, str]:
    """The ``NAME=value`` lines of scripts/versions.env (comments and blank lines aside)."""
    found: dict[str, str] = {}
    for line in VERSIONS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        assert match, f"{VERSIONS.name}: not a NAME=value line: {line!r}"
        found[match.group(1)] = match.group(2)
    assert set(found) == {"KAFKA_VERSION", "POSTGRES_VERSION", "DEBEZIUM_VERSION"}, found
    return found


def compose_images() -> dict[str, str]:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    return {name: str(service["image"]) for name, service in services.items()}


def test_services_script_reads_the_versions_file() -> None:
    shell = (
        'source "$1"; printf "%s %s %s" "$KAFKA_VERSION" "$POSTGRES_VERSION" "$DEBEZIUM_VERSION"'  # sourced
    )
    done = subprocess.run(
        ["bash", "-c", shell, "services", str(ROOT / "scripts" / "services.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    expected = versions()
    assert done.stdout == " ".join(
        expected[v] for v in ("KAFKA_VERSION", "POSTGRES_VERSION", "DEBEZIUM_VERSION")
    )


def test_services_scripts_write_no_version_of_their_own() -> None:
    expected = versions()
    pg = re.escape(expected["POSTGRES_VERSION"])
    literal = re.compile(
        rf"{re.escape(expected['KAFKA_VERSION'])}|{re.escape(expected['DEBEZIUM_VERSION'])}|postgresql[-/]{pg}\b|postgres:{pg}\b"
    )
    for script in SERVICES_SCRIPTS:
        text = script.read_text(encoding="utf-8")
        assert not literal.search(text), (
            f"{script.relative_to(ROOT)} names a version: use scripts/versions.env"
        )
    kafka = (ROOT / "scripts" / "services" / "kafka.sh").read_text(encoding="utf-8")
    assert '-Dkafka.version="$KAFKA_VERSION"' in kafka  # mvn fetches the jars of that version


def test_compose_images_match_the_versions() -> None:
    expected = versions()
    images = compose_images()
    assert images["kafka"] == f"apache/kafka:{expected['KAFKA_VERSION']}"
    assert images["kafka-topics"] == images["kafka"]  # creates the topics with the broker's own tools
    assert images["postgres"] == f"postgres:{expected['POSTGRES_VERSION']}"
    # the cdc profile's Kafka Connect image carries the same Debezium as the local worker
    assert images["connect"] == f"quay.io/debezium/connect:{expected['DEBEZIUM_VERSION']}"


def pom_property(pom: Path, name: str) -> str | None:
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom).getroot()  # noqa: S314  (the project's own pom, not outside input)
    found = root.find(f"m:properties/m:{name}", namespace)
    return None if found is None else found.text


def test_maven_pom_defaults_to_the_kafka_version() -> None:
    assert pom_property(POM, "kafka.version") == versions()["KAFKA_VERSION"]


def test_connect_pom_defaults_to_the_broker_and_debezium_versions() -> None:
    expected = versions()
    assert pom_property(CONNECT_POM, "kafka.version") == expected["KAFKA_VERSION"]
    assert pom_property(CONNECT_POM, "debezium.version") == expected["DEBEZIUM_VERSION"]
    connect = (ROOT / "scripts" / "services" / "connect.sh").read_text(encoding="utf-8")
    assert '-Dkafka.version="$KAFKA_VERSION"' in connect
    assert '-Ddebezium.version="$DEBEZIUM_VERSION"' in connect


def test_ci_installs_that_postgres_and_the_readme_names_both() -> None:
    expected = versions()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"postgresql-{expected['POSTGRES_VERSION']}" in ci
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    kafka_minor = ".".join(expected["KAFKA_VERSION"].split(".")[:2])
    assert f"Apache Kafka {kafka_minor}" in readme
    assert f"PostgreSQL {expected['POSTGRES_VERSION']}" in readme


def test_compose_azurite_is_the_pinned_npm_version() -> None:
    package = json.loads((ROOT / "scripts" / "azurite" / "package.json").read_text(encoding="utf-8"))
    pinned = package["dependencies"]["azurite"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"azurite is not pinned to one version: {pinned}"
    assert compose_images()["azurite"] == f"mcr.microsoft.com/azure-storage/azurite:{pinned}"
