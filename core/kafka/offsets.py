"""Exact end offsets of a topic, on a real Kafka cluster and on the embedded Tansu broker alike."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


class EndOffsetProbe:
    """Exact end offsets, reusing one consumer across calls (the stream asks once per trigger).

    ``get_watermark_offsets`` on Tansu returns the base offset of the partition's last record batch + 1,
    which undercounts whenever that batch holds several records. The probe therefore reads the tail: it
    assigns each non-empty partition at ``max(hw - 1, low)`` (on Tansu: the start of the last batch; on
    Kafka: the last record), consumes until librdkafka reports end-of-partition, and returns
    ``max(hw, highest offset seen + 1, eof position)``. A partition is finished only by its own EOF event
    (never by a quiet poll, which missed tails in earlier probes), so on a healthy broker the answer is
    exact on Tansu and on Kafka (where hw - 1 may be a transaction marker: EOF still arrives at hw).

    Reading the tail also yields the newest record's timestamp per partition (``tail_timestamps_ms`` after
    each :meth:`end_offsets`), which the SLO monitor uses to tell a quiet topic from a stale stream.
    """

    def __init__(self, client_conf: dict[str, str]) -> None:
        self._consumer = Consumer(
            {
                **client_conf,
                "group.id": "netflix-end-offset-probe",  # required by librdkafka; never joined (assign only)
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",  # an offset already deleted reads from the oldest record
                "fetch.wait.max.ms": 50,
                "isolation.level": "read_uncommitted",
                "log_level": 0,
            }
        )
        self.tail_timestamps_ms: dict[int, int] = {}
        self.cluster_id: str | None = None  # as the broker reported it at the last end_offsets call

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EndOffsetProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watermarks(
        self, topic: str, partitions: list[int], timeout_s: float = 10.0
    ) -> dict[int, tuple[int, int]]:
        """Raw ``(low, high)`` watermarks as the broker reports them (high is wrong on Tansu)."""
        return {
            p: tuple(self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s))  # type: ignore[misc]
            for p in partitions
        }

    def end_offsets(self, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
        """``{partition: offset of the next record to be written}`` for every partition of ``topic``."""
        self.tail_timestamps_ms = {}
        partitions = self._partitions(topic, timeout_s)
        marks = self.watermarks(topic, partitions, timeout_s)
        ends = {p: max(high, low) for p, (low, high) in marks.items()}
        pending = {p for p, (low, high) in marks.items() if high > low}
        if not pending:
            return ends
        self._consumer.assign([TopicPartition(topic, p, max(marks[p][1] - 1, marks[p][0])) for p in pending])
        deadline = time.monotonic() + timeout_s
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"end offsets of {topic}: partitions {sorted(pending)} did not reach "
                        f"end-of-partition within {timeout_s:.0f} s (broker overloaded or unreachable?)"
                    )
                for message in self._consumer.consume(num_messages=10_000, timeout=0.2):
                    partition = message.partition()
                    error = message.error()
                    if error is None:
                        ends[partition] = max(ends[partition], message.offset() + 1)
                        self._note_tail_timestamp(partition, message.timestamp()[1])
                    elif error.code() == KafkaError._PARTITION_EOF:
                        ends[partition] = max(ends[partition], message.offset())
                        pending.discard(partition)
                    elif error.fatal() or not error.retriable():
                        raise KafkaException(error)
        finally:
            self._consumer.unassign()
        return ends

    def _note_tail_timestamp(self, partition: int, timestamp_ms: int) -> None:
        if timestamp_ms > 0:
            self.tail_timestamps_ms[partition] = max(self.tail_timestamps_ms.get(partition, 0), timestamp_ms)

    def timestamps_at(
        self, topic: str, positions: dict[int, int], timeout_s: float = 10.0
    ) -> dict[int, int | None]:
        """Timestamp (ms) of the first record at or after each ``{partition: offset}``; None at the end.

        One fetch per partition, stopped by its first record or its end-of-partition event: the freshness
        SLI asks for the oldest record a consumer has not processed yet.
        """
        found: dict[int, int | None] = {}
        pending = set(positions)
        if not pending:
            return found
        self._consumer.assign([TopicPartition(topic, p, max(o, 0)) for p, o in positions.items()])
        deadline = time.monotonic() + timeout_s
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"timestamps of {topic} partitions {sorted(pending)} not read in {timeout_s:.0f} s"
                    )
                for message in self._consumer.consume(num_messages=len(pending), timeout=0.2):
                    partition, error = message.partition(), message.error()
                    if partition not in pending:
                        continue
                    if error is None:
                        found[partition] = message.timestamp()[1]
                    elif error.code() == KafkaError._PARTITION_EOF:
                        found[partition] = None
                    elif error.fatal() or not error.retriable():
                        raise KafkaException(error)
                    else:
                        continue
                    pending.discard(partition)
        finally:
            self._consumer.unassign()
        return found

    def _partitions(self, topic: str, timeout_s: float) -> list[int]:
        metadata = self._consumer.list_topics(topic, timeout=timeout_s)
        self.cluster_id = metadata.cluster_id
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise KafkaException(
                KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic!r} does not exist")
            )
        return sorted(info.partitions)


def end_offsets(client_conf: dict[str, str], topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Exact ``{partition: end offset}`` on Tansu and Kafka alike (see :class:`EndOffsetProbe`)."""
    with EndOffsetProbe(client_conf) as probe:
        return probe.end_offsets(topic, timeout_s)
