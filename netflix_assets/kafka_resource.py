"""The Dagster face of the event broker: one resource for the embedded Tansu broker and for real Kafka.

Kept apart from :mod:`netflix_assets.broker` (which re-exports it) so that importing the broker helpers
does not import Dagster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import PrivateAttr

from netflix_assets.broker import (
    EmbeddedBroker,
    client_config,
    cluster_id,
    default_topics,
    end_offsets,
    ensure_topics,
    read_state,
    resolve_bootstrap,
)
from netflix_assets.settings import Settings


class KafkaResource(ConfigurableResource):
    """The event broker for assets and sensors: a real cluster, or the embedded Tansu broker.

    With ``bootstrap_servers`` set nothing is started and the same calls go to that cluster (SASL/TLS
    from the security fields). Without it the resource attaches to the broker that
    ``netflix-lambda broker`` runs (found through its state file); with ``manage_embedded`` it starts
    its own broker for the run when none is running and stops it afterwards (tests, one-shot runs: the
    topic dies with the run, since Tansu keeps everything in memory).
    """

    data_dir: str
    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    topic: str = "netflix_watch_events"
    dead_letter_topic: str = "netflix_watch_events_dlq"
    partitions: int = 3
    embedded_broker_port: int = 0
    manage_embedded: bool = False

    _broker: EmbeddedBroker | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> KafkaResource:
        values: dict[str, Any] = {
            "data_dir": str(settings.data_dir),
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "security_protocol": settings.kafka_security_protocol,
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_username": settings.kafka_sasl_username,
            "ssl_ca_location": settings.kafka_ssl_ca_location,
            "topic": settings.kafka_topic,
            "dead_letter_topic": settings.kafka_dead_letter_topic,
            "partitions": settings.kafka_partitions,
            "embedded_broker_port": settings.embedded_broker_port,
        }
        if settings.kafka_sasl_password is not None:
            # Resolved from the environment at run time, so the secret never appears in run config.
            values["sasl_password"] = EnvVar("NETFLIX_KAFKA_SASL_PASSWORD")
        values.update(overrides)
        return cls(**values)

    def settings(self) -> Settings:
        return Settings(
            data_dir=Path(self.data_dir),
            kafka_bootstrap_servers=self.bootstrap_servers,
            kafka_security_protocol=self.security_protocol,  # type: ignore[arg-type]
            kafka_sasl_mechanism=self.sasl_mechanism,
            kafka_sasl_username=self.sasl_username,
            kafka_sasl_password=self.sasl_password,  # type: ignore[arg-type]
            kafka_ssl_ca_location=self.ssl_ca_location,
            kafka_topic=self.topic,
            kafka_dead_letter_topic=self.dead_letter_topic,
            kafka_partitions=self.partitions,
            embedded_broker_port=self.embedded_broker_port,
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        settings = self.settings()
        if self.manage_embedded and settings.embedded_kafka and read_state(settings) is None:
            self._broker = EmbeddedBroker(settings, topics=default_topics(settings)).start()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None

    def bootstrap(self) -> str:
        return resolve_bootstrap(self.settings())

    def client_config(self) -> dict[str, str]:
        return client_config(self.settings())

    def ensure_topics(self) -> dict[str, bool]:
        return ensure_topics(self.client_config(), default_topics(self.settings()))

    def end_offsets(self, topic: str | None = None, timeout_s: float = 30.0) -> dict[int, int]:
        return end_offsets(self.client_config(), topic or self.topic, timeout_s)

    def cluster_id(self) -> str:
        return cluster_id(self.client_config())
