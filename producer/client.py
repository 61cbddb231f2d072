"""The producer instance behind the send loop, and a new one when the cluster no longer knows it.

librdkafka's idempotent producer is bound to the cluster that gave it its producer id. When a new cluster
answers at the bootstrap address (the embedded broker restarted empty by its supervisor, a cluster rebuilt
under the same name), that producer either stalls (measured here: after a restart of the embedded broker
every message stayed unacknowledged until the flush gave up) or fails fatally (``UNKNOWN_PRODUCER_ID ...
unable to retry without risking duplication``), after which it accepts nothing. librdkafka's remedy for
both is a new producer instance. :class:`RenewingProducer` makes one, on a fatal error or when a new cluster
id is seen. The messages the old instance held are purged, so their delivery reports count them as failed:
they were bound for a cluster that no longer holds anything, and the report says so.

The producer never creates a topic by asking for it (``allow.auto.create.topics`` off, set by
``producer.publish.producer_config``): a broker would create it with its own default partition count.
When the topic is missing instead (``produce`` refused with "Unknown topic", or deliveries refused with
``UNKNOWN_TOPIC_OR_PART``: the cluster restarted empty, or someone deleted the topic), the client creates
it with its declared partitions through ``on_new_cluster`` and carries on.
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
# The topic is gone: librdkafka's refusals ("Local: Unknown topic" from produce, UNKNOWN_TOPIC_OR_PART per
# delivery). It is created again at most once per TOPIC_RESTORE_S; in between the producer waits for its
# metadata to show the topic (librdkafka refreshes an unknown topic's metadata every 100 ms to 1 s).
MISSING_TOPIC = frozenset({KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART})
TOPIC_RESTORE_S = 1.0
TOPIC_WAIT_S = 0.1


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
        self._topic_missing: str | None = None  # why, as a delivery report said it
        self._restored_at: float | None = None

    def poll(self, now: float) -> None:
        """Serve delivery reports; every CLUSTER_CHECK_S, renew if another cluster answers and restore the
        topic if it is gone."""
        try:
            self.producer.poll(0)
        except KafkaException as error:
            self.recover(error)
        if now - self._checked_at >= CLUSTER_CHECK_S:
            self._checked_at = now
            current, missing = self._metadata()
            if not self._renew_for_new_cluster(current) and missing:
                self._topic_missing = self._topic_missing or "absent from the cluster's metadata"
            self.cluster_id = current or self.cluster_id
        if self._topic_missing is not None:
            self.restore_topic(self._topic_missing)

    def recover(self, error: KafkaException) -> None:
        """After a refused call: restore a missing topic; renew on a fatal error (once per
        REPEATED_FATAL_S); re-raise the rest."""
        now = time.monotonic()
        kafka_error = error.args[0] if error.args else None
        if isinstance(kafka_error, KafkaError) and kafka_error.code() in MISSING_TOPIC:
            self.restore_topic(kafka_error.str())
            return
        if not (isinstance(kafka_error, KafkaError) and kafka_error.fatal()):
            raise error
        if self._fatal_at is not None and now - self._fatal_at < REPEATED_FATAL_S:
            raise error
        self._fatal_at = now
        self._renew(f"the producer failed for good ({kafka_error.str()})")
        self.cluster_id = self._cluster_id()

    def delivery_failed(self, error: KafkaError) -> None:
        """A delivery report's error (called from librdkafka's callback, so it only takes note): a missing
        topic is restored at the next :meth:`poll`."""
        if error.code() in MISSING_TOPIC:
            self._topic_missing = error.str()

    def restore_topic(self, why: str) -> None:
        """The topic is missing: create the declared topics and produce on with a new producer instance.

        A new instance, as for a new cluster: the old one's idempotence state (a sequence number per
        partition) belongs to the topic that is gone, and the partitions created now start from none. At
        most once per TOPIC_RESTORE_S; a call in between waits TOPIC_WAIT_S for librdkafka to see the
        topic, so a caller retrying ``produce`` does not spin. An unreachable broker is tried again later.
        """
        now = time.monotonic()
        if self._restored_at is not None and now - self._restored_at < TOPIC_RESTORE_S:
            self.producer.poll(TOPIC_WAIT_S)
            return
        self._restored_at = now
        try:
            if not self._renew_for_new_cluster(self._cluster_id()):
                self._renew(f"topic {self.topic} is missing ({why})")
        except KafkaException as error:
            log.warning("topic %s is missing (%s) and cannot be created yet: %s", self.topic, why, error)

    def flush(self, timeout_s: float) -> int:
        """Messages still unacknowledged after ``timeout_s``."""
        try:
            return self.producer.flush(timeout_s)
        except KafkaException as error:
            self.recover(error)
            return self.producer.flush(timeout_s)

    def _renew_for_new_cluster(self, current: str | None) -> bool:
        """Renew when ``current`` (a cluster id just read) is not the cluster this producer was made for."""
        if current is None or self.cluster_id is None or current == self.cluster_id:
            return False
        self._renew(f"a new cluster ({current}, was {self.cluster_id}) answers at the bootstrap address")
        self.cluster_id = current
        return True

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
        # A missing topic noted until now (the old instance's last reports among them) was that instance's:
        # the new one starts with the topics just created.
        self._topic_missing = None

    def _cluster_id(self) -> str | None:
        return self._metadata()[0]

    def _metadata(self) -> tuple[str | None, bool]:
        """The cluster id answering now (None: unreachable) and whether the topic is missing there."""
        try:
            metadata = self.producer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
        except KafkaException:
            return None, False  # unreachable now: checked again later
        topic = metadata.topics.get(self.topic)
        error = topic.error if topic is not None else None
        return metadata.cluster_id, topic is None or (error is not None and error.code() in MISSING_TOPIC)
