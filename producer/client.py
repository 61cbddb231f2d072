"""The producer instance behind the send loop, and a new one when the cluster no longer knows it.

librdkafka's idempotent producer is bound to the cluster that gave it its producer id. When a new cluster
answers at the bootstrap address (the embedded broker restarted empty by its supervisor, a cluster rebuilt
under the same name), that producer either stalls (measured here: after a restart of the embedded broker
every message stayed unacknowledged until the flush gave up) or fails fatally (``UNKNOWN_PRODUCER_ID ...
unable to retry without risking duplication``), after which it accepts nothing. librdkafka's remedy for
both is a new producer instance. :class:`RenewingProducer` makes one, on a fatal error or when a new cluster
id is seen. The messages the old instance held are purged, so their delivery reports count them as failed:
they were bound for a cluster that no longer holds anything, and the report says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger(__name__)

CLUSTER_CHECK_S = 5.0
METADATA_TIMEOUT_S = 1.0
# A second fatal error this soon after a renewal is not a lost cluster but a persistent fault: re-raised.
REPEATED_FATAL_S = 30.0


class RenewingProducer:
    """A ``confluent_kafka.Producer`` (``.producer``) that the send loop asks to :meth:`poll`, :meth:`recover`
    from a refused ``produce`` and :meth:`flush`; ``on_new_cluster`` runs before each new instance (it
    creates the topics there, with their declared partitions)."""

    def __init__(self, config: dict[str, Any], topic: str, on_new_cluster: Callable[[], None]) -> None:
        self.config, self.topic, self.on_new_cluster = config, topic, on_new_cluster
        self.producer = Producer(config)
        self.renewals = 0
        self.unreported = 0  # purged messages whose failed delivery report never came: failed all the same
        self.cluster_id = self._cluster_id()
        self._checked_at = time.monotonic()
        self._fatal_at: float | None = None

    def poll(self, now: float) -> None:
        """Serve delivery reports; every CLUSTER_CHECK_S, renew if another cluster answers."""
        try:
            self.producer.poll(0)
        except KafkaException as error:
            self.recover(error)
        if now - self._checked_at < CLUSTER_CHECK_S:
            return
        self._checked_at = now
        current = self._cluster_id()
        if current is not None and self.cluster_id is not None and current != self.cluster_id:
            self._renew(f"a new cluster ({current}, was {self.cluster_id}) answers at the bootstrap address")
        self.cluster_id = current or self.cluster_id

    def recover(self, error: KafkaException) -> None:
        """After a refused call: renew on a fatal error (once per REPEATED_FATAL_S); re-raise the rest."""
        now = time.monotonic()
        kafka_error = error.args[0] if error.args else None
        if not (isinstance(kafka_error, KafkaError) and kafka_error.fatal()):
            raise error
        if self._fatal_at is not None and now - self._fatal_at < REPEATED_FATAL_S:
            raise error
        self._fatal_at = now
        self._renew(f"the producer failed for good ({kafka_error.str()})")
        self.cluster_id = self._cluster_id()

    def flush(self, timeout_s: float) -> int:
        """Messages still unacknowledged after ``timeout_s``."""
        try:
            return self.producer.flush(timeout_s)
        except KafkaException as error:
            self.recover(error)
            return self.producer.flush(timeout_s)

    def _renew(self, why: str) -> None:
        held = len(self.producer)
        try:
            self.producer.purge()  # queued and in flight: each gets a failed delivery report
            self.producer.poll(0)
        except KafkaException:
            pass  # a producer that failed for good may refuse even this
        self.unreported += len(self.producer)
        log.error(
            "%s: its %d unacknowledged message(s) are counted as failed; producing on with a new producer",
            why,
            held,
        )
        self.on_new_cluster()
        self.producer = Producer(self.config)
        self.renewals += 1

    def _cluster_id(self) -> str | None:
        try:
            return self.producer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S).cluster_id
        except KafkaException:
            return None  # unreachable now: checked again later
