"""The librdkafka settings of every Kafka client StreamDuck opens outside the Functions host.

The dev host's consumers and output producers, the simulator, ``streamduck status`` and ``validate-config``
all connect the way the Kafka extension does for ``function_app.py``'s bindings: ``KAFKA_BROKERS``,
``KAFKA_PROTOCOL``, ``KAFKA_AUTH_MODE`` and the SASL user name and password.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.settings import KafkaAuthMode, KafkaProtocol, Settings

# librdkafka's own log lines (connection retries, ...) go here; quiet unless --verbose lowers the level.
client_log = logging.getLogger("streamduck.kafka.client")
client_log.setLevel(logging.CRITICAL)

_PROTOCOLS = {
    KafkaProtocol.PLAINTEXT: "plaintext",
    KafkaProtocol.SSL: "ssl",
    KafkaProtocol.SASLPLAINTEXT: "sasl_plaintext",
    KafkaProtocol.SASLSSL: "sasl_ssl",
}
_MECHANISMS = {
    KafkaAuthMode.PLAIN: "PLAIN",
    KafkaAuthMode.SCRAMSHA256: "SCRAM-SHA-256",
    KafkaAuthMode.SCRAMSHA512: "SCRAM-SHA-512",
}


def client_config(settings: Settings, brokers: str | None = None) -> dict[str, Any]:
    """librdkafka settings for ``settings`` (protocol, SASL) and ``brokers`` (default ``KAFKA_BROKERS``)."""
    conf: dict[str, Any] = {"bootstrap.servers": brokers or settings.kafka_brokers, "logger": client_log}
    protocol = _PROTOCOLS.get(settings.kafka_protocol)
    if protocol:
        conf["security.protocol"] = protocol
    mechanism = _MECHANISMS.get(settings.kafka_auth_mode)
    if mechanism:
        conf["sasl.mechanisms"] = mechanism
        conf["sasl.username"] = settings.kafka_username or ""
        conf["sasl.password"] = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    return conf
