"""What the monitor reads, each source at most once per sample, without touching a writer's file.

* the topic, through one reused consumer (``core.kafka.offsets.EndOffsetProbe``): exact end offsets, the
  newest record's timestamp per partition, and the timestamp of the first record the stream has not
  committed (the stream's committed offsets come from its Spark checkpoint files, read without touching
  the running query: ``core.checkpoint``);
* the stream's ledger and when the marts were built, from the warehouse in use
  (``oncall.warehouse_reader``: files on DuckDB, never ``realtime.duckdb``; tables on BigQuery).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException

from core.bucket import Bucket
from core.checkpoint import read_progress
from core.contracts.speed import checkpoint_key
from core.kafka.cluster import BrokerNotRunning, KafkaCluster
from core.kafka.offsets import EndOffsetProbe
from oncall.warehouse_reader import WarehouseReader, WarehouseUnavailable

PROBE_TIMEOUT_S = 5.0


class TopicUnavailable(RuntimeError):
    """The broker or the topic cannot be read right now (the message says why)."""


@dataclass(frozen=True)
class TopicReading:
    cluster_id: str
    end_offsets: dict[int, int]
    committed: dict[int, int]  # the stream's committed offsets on this cluster ({} if none)
    committed_batch: int | None
    stream_started: bool  # the stream has committed at least one batch on this cluster
    newest_ms: int | None  # newest record's timestamp on the topic
    oldest_unreflected_ms: dict[int, int]  # partition → timestamp of its first uncommitted record

    @property
    def lag(self) -> int:
        return sum(max(end - self.committed.get(p, 0), 0) for p, end in self.end_offsets.items())


class TopicWatch:
    """Reads the topic and the stream's progress through one consumer, reopened when the broker moves."""

    def __init__(self, cluster: KafkaCluster, bucket: Bucket) -> None:
        self.cluster = cluster
        self.bucket = bucket
        self._probe: EndOffsetProbe | None = None
        self._bootstrap: str | None = None

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self._probe, self._bootstrap = None, None

    def _probe_for(self, conf: dict[str, str]) -> EndOffsetProbe:
        if self._probe is None or conf["bootstrap.servers"] != self._bootstrap:
            self.close()
            self._probe, self._bootstrap = EndOffsetProbe(conf), conf["bootstrap.servers"]
        return self._probe

    def read(self) -> TopicReading:
        try:
            return self._read()
        except (BrokerNotRunning, KafkaException, TimeoutError) as exc:
            self.close()  # start from a fresh consumer next time
            raise TopicUnavailable(f"cannot read topic {self.cluster.topic!r}: {exc}") from exc

    def _read(self) -> TopicReading:
        probe = self._probe_for(self.cluster.client_config())
        # Checkpoint first: a batch committing meanwhile can only make the lag look larger, never hide it.
        checkpoint = read_progress(self.bucket, checkpoint_key())
        topic = self.cluster.topic
        ends = probe.end_offsets(topic, timeout_s=PROBE_TIMEOUT_S)
        cluster_id = str(probe.cluster_id)
        same_cluster = checkpoint.cluster_id in (None, cluster_id)
        committed = checkpoint.offsets if same_cluster else {}
        lagging = {p: committed.get(p, 0) for p, end in ends.items() if committed.get(p, 0) < end}
        stamps = probe.timestamps_at(topic, lagging, timeout_s=PROBE_TIMEOUT_S)
        tails = probe.tail_timestamps_ms
        return TopicReading(
            cluster_id=cluster_id,
            end_offsets=ends,
            committed=committed,
            committed_batch=checkpoint.committed_batch if same_cluster else None,
            stream_started=same_cluster and checkpoint.committed_batch is not None,
            newest_ms=max(tails.values()) if tails else None,
            oldest_unreflected_ms={p: ts for p, ts in stamps.items() if ts},
        )


@dataclass
class Readings:
    """One sample's view of the world: each source read lazily, at most once."""

    topic_watch: TopicWatch
    warehouse: WarehouseReader
    now: float = field(default_factory=time.time)
    _read: dict[Any, Any] = field(default_factory=dict)  # what was read, or why it could not be

    def topic(self) -> TopicReading:
        return self._once("topic", self.topic_watch.read)

    def ledger(self, window_s: float) -> list[dict[str, Any]]:
        return self._once(("ledger", window_s), lambda: self.warehouse.ledger(window_s, self.now))

    def marts_published_at(self) -> float | None:
        return self._once("marts", self.warehouse.marts_published_at)

    def _once(self, key: Any, read: Callable[[], Any]) -> Any:
        if key not in self._read:
            try:
                self._read[key] = read()
            except (TopicUnavailable, WarehouseUnavailable) as exc:
                self._read[key] = exc
        value = self._read[key]
        if isinstance(value, TopicUnavailable | WarehouseUnavailable):
            raise value
        return value
