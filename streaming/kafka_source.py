"""A Kafka source for Spark Structured Streaming, written as a PySpark Python data source.

There is no Maven here, so no ``spark-sql-kafka`` jar: this module is the ``kafka`` source instead,
built on confluent-kafka (librdkafka 2.16) and PySpark 4.3's ``DataSourceStreamReader``.

Design, and why:

* **Offsets live in Spark's checkpoint**, as ``{"cluster": id, "offsets": {"<partition>": next}}``. The
  reader ``assign()``\\ s and seeks, it never joins a consumer group (Tansu stalls JoinGroup for half the
  session timeout, and a group's committed offsets would be a second, disagreeing source of truth).
* **End offsets come from** :class:`core.kafka.offsets.EndOffsetProbe`, which confirms each partition's
  end by reading its tail: Tansu's high watermark undercounts whenever a record batch holds several
  records, and trusting it lost ~1.3 % of events in a probe.
* **Admission control**: ``latestOffset(start, limit)`` honours ``ReadMaxRows`` (option
  ``maxOffsetsPerTrigger``) and the reader implements ``SupportsTriggerAvailableNow``, so
  ``trigger(availableNow=True)`` still reads in bounded micro-batches up to a fixed target.
* **Python does as little as possible**: ``read()`` yields Arrow record batches of the raw message
  (partition, offset, key, value bytes, timestamp); JSON is parsed by Spark (``from_json``), because
  parsing in Python caps the stream near 18k events/s on two cores.
* **Legacy v0 events** (the original pipeline's producer: no version, ``timestamp``, bare ``NaN``) are the
  exception, with option ``acceptV0``: the v0 compatibility mapping (:mod:`core.contracts.legacy_v0`) turns
  each into a v1-shaped event, handed over as ``legacy_event`` beside the raw bytes (null for every other
  message), so Spark reads it like ours. A message starting as our producer writes them
  (``{"event_id":``) is never v0 and is not looked at: that vectorized prefix check costs well under 1 %
  of building the Arrow batch.
* **Data loss is loud**: a topic that vanished, fewer partitions, an end offset behind the checkpoint or
  a new cluster id (an embedded broker restarts empty with a fresh id) raise :class:`BrokerDataLossError`
  naming the topic, partition, checkpoint offset and broker end offset, instead of skipping silently.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import BinaryType, IntegerType, LongType, StructField, StructType, TimestampType

from core.contracts import legacy_v0
from core.kafka.offsets import EndOffsetProbe

SOURCE_NAME = "netflix_kafka"
LEGACY_COLUMN = "legacy_event"
SCHEMA = StructType(
    [
        StructField("partition", IntegerType(), False),
        StructField("offset", LongType(), False),
        StructField("key", BinaryType(), True),
        StructField("value", BinaryType(), True),
        StructField("timestamp", TimestampType(), True),
        StructField(LEGACY_COLUMN, BinaryType(), True),  # a v0 message mapped to our encoding, else null
    ]
)
#: How our producer's messages start (``orjson``, schema order): such a message is never a legacy v0 event.
VERSIONED_PREFIX = b'{"event_id":'

#: Options with this prefix are handed to librdkafka without it (``kafka.bootstrap.servers`` …). Spark
#: redacts option values whose key matches ``password|secret|token`` in plans and logs.
CLIENT_PREFIX = "kafka."
ARROW_BATCH_ROWS = 65_536
MIN_TASK_ROWS = 10_000  # smallest offset range a batch is cut into for parallelism (see partitions())
PREFETCH_MESSAGES = 50_000  # per consumer: ~25 MB of events; librdkafka default 100,000
PREFETCH_KBYTES = 16_384


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class BrokerDataLossError(RuntimeError):
    """The broker no longer has data the checkpoint says exists (restart of an in-memory broker, deleted
    topic, truncated partition). Never skipped: an operator decides whether to reset the checkpoint."""


@dataclass(frozen=True)
class KafkaRange(InputPartition):
    """Offsets ``[start, end)`` of one partition: one Spark task."""

    topic: str
    partition: int
    start: int
    end: int


def parse_options(options: Mapping[str, str]) -> dict[str, Any]:
    """Normalise the (case-insensitive) source options; raises on the ones that are wrong."""
    topic = options.get("topic") or options.get("subscribe")
    if not topic:
        raise ValueError(f"{SOURCE_NAME}: option 'topic' is required")
    client = {
        key[len(CLIENT_PREFIX) :]: value for key, value in options.items() if key.startswith(CLIENT_PREFIX)
    }
    if "bootstrap.servers" not in client:
        raise ValueError(f"{SOURCE_NAME}: option 'kafka.bootstrap.servers' is required")
    starting = options.get("startingoffsets", "earliest")
    if starting not in ("earliest", "latest"):
        raise ValueError(f"{SOURCE_NAME}: startingOffsets must be 'earliest' or 'latest', not {starting!r}")
    return {
        "topic": topic,
        "client": client,
        "starting": starting,
        "max_per_trigger": int(options.get("maxoffsetspertrigger", "0") or 0),
        "read_timeout_s": float(options.get("readtimeoutseconds", "60")),
        "split_rows": int(options.get("maxrowspertask", "0") or 0),
        "min_tasks": int(options.get("minpartitions", "0") or 0),
        "fail_on_cluster_change": options.get("failonclusterchange", "true").lower() == "true",
        "accept_v0": options.get("acceptv0", "false").lower() == "true",
    }


def arrow_schema() -> pa.Schema:
    """The Arrow schema Spark expects from ``read()``, derived the way PySpark derives it."""
    return to_arrow_schema(SCHEMA, timezone="UTC")


def split_limit(start: dict[int, int], end: dict[int, int], max_rows: int) -> dict[int, int]:
    """Cap ``end`` so at most ``max_rows`` offsets are admitted, shared in proportion to each partition's
    backlog (like Spark's own Kafka source), and never leaving a non-empty backlog with no progress."""
    backlog = {p: max(end[p] - start.get(p, 0), 0) for p in end}
    total = sum(backlog.values())
    if total <= max_rows:
        return dict(end)
    shares = {p: (backlog[p] * max_rows) // total for p in backlog}
    leftover = max_rows - sum(shares.values())
    for p in sorted(backlog, key=lambda q: backlog[q] - shares[q], reverse=True):
        if leftover <= 0:
            break
        if shares[p] < backlog[p]:
            shares[p] += 1
            leftover -= 1
    return {p: start.get(p, 0) + shares[p] for p in end}


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Micro-batch reader: plans offset ranges in the driver, reads them in Spark's Python workers."""

    def __init__(self, options: Mapping[str, str]) -> None:
        opts = parse_options(options)
        self.topic: str = opts["topic"]
        self.client: dict[str, str] = opts["client"]
        self.starting: str = opts["starting"]
        self.max_per_trigger: int = opts["max_per_trigger"]
        self.read_timeout_s: float = opts["read_timeout_s"]
        self.split_rows: int = opts["split_rows"]
        self.min_tasks: int = opts["min_tasks"]
        self.fail_on_cluster_change: bool = opts["fail_on_cluster_change"]
        self.accept_v0: bool = opts["accept_v0"]
        self._target: dict[int, int] | None = None  # availableNow: never read past this
        self._latest: dict[str, Any] | None = None
        self._probe: Any = None  # broker clients are created lazily: the reader is pickled to executors
        self._admin: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_probe": None, "_admin": None}

    # -- broker view ----------------------------------------------------------------------------------
    def _end_offsets(self) -> tuple[str, dict[int, int]]:
        if self._probe is None:
            self._probe = EndOffsetProbe(self.client)
            self._admin = AdminClient({**self.client, "log_level": 0})
        try:
            cluster = str(self._admin.list_topics(self.topic, timeout=10).cluster_id)
            ends = self._probe.end_offsets(self.topic)
        except KafkaException as exc:
            raise BrokerDataLossError(
                f"topic {self.topic!r} is not readable on {self.client['bootstrap.servers']}: {exc}. "
                "If the broker was restarted (the embedded broker keeps everything in memory), its data is "
                "gone: recreate the topic and reset this query's checkpoint deliberately."
            ) from exc
        return cluster, ends

    def _check_against(self, start: dict[str, Any], cluster: str, ends: dict[int, int]) -> None:
        """Raise if the broker forgot offsets the checkpoint has already processed."""
        checkpoint = {int(p): int(o) for p, o in start["offsets"].items()}
        problems = []
        if self.fail_on_cluster_change and start.get("cluster") and start["cluster"] != cluster:
            problems.append(
                f"cluster id changed from {start['cluster']!r} to {cluster!r} (broker restarted or replaced)"
            )
        for partition, offset in sorted(checkpoint.items()):
            if partition not in ends:
                problems.append(f"partition {partition} is missing (checkpoint offset {offset})")
            elif ends[partition] < offset:
                problems.append(
                    f"partition {partition}: checkpoint offset {offset} > broker end offset "
                    f"{ends[partition]} "
                    "(offsets went backwards)"
                )
        if problems:
            raise BrokerDataLossError(
                f"Kafka topic {self.topic!r} on {self.client['bootstrap.servers']} lost data this query "
                "already "
                f"consumed: {'; '.join(problems)}. Refusing to continue silently. Either replay the events "
                "into a fresh topic and delete this query's checkpoint, or restore the broker."
            )

    # -- offsets --------------------------------------------------------------------------------------
    def initialOffset(self) -> dict[str, Any]:
        cluster, ends = self._end_offsets()
        if self.starting == "latest":
            offsets = ends
        else:
            offsets = {p: low for p, (low, _high) in self._probe.watermarks(self.topic, sorted(ends)).items()}
        return {"cluster": cluster, "offsets": {str(p): int(o) for p, o in sorted(offsets.items())}}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_per_trigger) if self.max_per_trigger > 0 else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self._end_offsets()[1]

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        cluster, ends = self._end_offsets()
        self._check_against(start, cluster, ends)
        begin = {int(p): int(o) for p, o in start["offsets"].items()}
        # A partition added since the query started is read from its beginning.
        begin.update({p: 0 for p in ends if p not in begin})
        self._latest = {"cluster": cluster, "offsets": {str(p): o for p, o in sorted(ends.items())}}
        if self._target is not None:
            ends = {p: min(o, self._target.get(p, begin[p])) for p, o in ends.items()}
        ends = {p: max(o, begin[p]) for p, o in ends.items()}
        if isinstance(limit, ReadMaxRows):
            ends = split_limit(begin, ends, limit.max_rows)
        return {"cluster": cluster, "offsets": {str(p): int(o) for p, o in sorted(ends.items())}}

    def reportLatestOffset(self) -> dict[str, Any] | None:
        return self._latest

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> list[KafkaRange]:
        begin = {int(p): int(o) for p, o in start["offsets"].items()}
        spans = {int(p): (begin.get(int(p), 0), int(stop)) for p, stop in end["offsets"].items()}
        # Like spark-sql-kafka's minPartitions: 3 Kafka partitions on 2 cores leave a core idle for a
        # third of every batch, so a batch is cut into at least ``min_tasks`` offset ranges of equal size,
        # but not into ranges under MIN_TASK_ROWS messages, whose task costs more to start than it saves.
        total = sum(max(stop - first, 0) for first, stop in spans.values())
        even = max(_ceil_div(total, self.min_tasks), MIN_TASK_ROWS) if self.min_tasks > 0 and total else 0
        ranges = []
        for partition, (first, stop) in sorted(spans.items()):
            span = max(stop - first, 1)
            longest = min(x for x in (self.split_rows, even, span) if x > 0)
            step = _ceil_div(span, _ceil_div(span, longest))  # equal pieces: 33k, ≤ 25k each → two of 16.5k
            for lo in range(first, stop, step):
                ranges.append(KafkaRange(self.topic, partition, lo, min(lo + step, stop)))
        return ranges

    def commit(self, end: dict[str, Any]) -> None:
        """Nothing to do: the checkpoint is the only record of progress."""

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    # -- executors ------------------------------------------------------------------------------------
    def read(self, partition: KafkaRange) -> Iterator[pa.RecordBatch]:  # type: ignore[override]
        yield from read_range(self.client, partition, self.read_timeout_s, accept_v0=self.accept_v0)


def read_range(
    client: dict[str, str],
    rng: KafkaRange,
    timeout_s: float = 60.0,
    batch_rows: int = ARROW_BATCH_ROWS,
    accept_v0: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Read exactly the offsets ``[rng.start, rng.end)`` of one partition as Arrow record batches
    (``legacy_event`` filled by :func:`legacy_events` when ``accept_v0``, else null).

    Asks librdkafka for at most the number of records still missing, because ``consume(n, timeout)``
    otherwise sits out the whole timeout at a partition's tail. Finishes when the next offset reaches the
    end, or when the consumer position passes it (offset gaps: compaction, transaction markers).
    """
    schema = arrow_schema()
    if rng.end <= rng.start:
        return
    consumer = Consumer(
        {
            **client,
            "group.id": "netflix-spark-source",  # required by librdkafka; never joined (assign only)
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            # librdkafka keeps 100,000 messages per partition pre-fetched by default, far past this
            # range's end when a batch reads a slice of a backlog: fetched, decompressed and dropped.
            "queued.min.messages": max(1, min(rng.end - rng.start, PREFETCH_MESSAGES)),
            "queued.max.messages.kbytes": PREFETCH_KBYTES,
            "log_level": 0,
        }
    )
    try:
        tp = TopicPartition(rng.topic, rng.partition, rng.start)
        consumer.assign([tp])
        columns: tuple[list[Any], ...] = ([], [], [], [], [])
        next_offset = rng.start
        idle_since = time.monotonic()
        while next_offset < rng.end:
            messages = consumer.consume(num_messages=min(10_000, rng.end - next_offset), timeout=0.5)
            progressed = False
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                offset = message.offset()
                if offset < next_offset:
                    continue
                if offset >= rng.end:
                    next_offset = rng.end
                    break
                columns[0].append(rng.partition)
                columns[1].append(offset)
                columns[2].append(message.key())
                columns[3].append(message.value())
                kind, millis = message.timestamp()
                columns[4].append(millis * 1000 if kind != TIMESTAMP_NOT_AVAILABLE else None)
                next_offset = offset + 1
                progressed = True
            if len(columns[0]) >= batch_rows:
                yield _to_batch(columns, schema, accept_v0)
                columns = ([], [], [], [], [])
            if progressed:
                idle_since = time.monotonic()
                continue
            if next_offset < rng.end and not messages:
                position = consumer.position([TopicPartition(rng.topic, rng.partition)])[0].offset
                if position >= rng.end:
                    break
                if time.monotonic() - idle_since > timeout_s:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(rng.topic, rng.partition), timeout=5
                    )
                    raise BrokerDataLossError(
                        f"topic {rng.topic!r} partition {rng.partition}: this batch must read offsets "
                        f"[{rng.start}, {rng.end}) but the broker returned nothing at offset {next_offset} "
                        "for "
                        f"{timeout_s:.0f} s (broker watermarks now: low {low}, high {high}). The broker lost "
                        "data the checkpoint references (restart of an in-memory broker?)."
                    )
        if columns[0]:
            yield _to_batch(columns, schema, accept_v0)
    finally:
        consumer.close()


def _to_batch(columns: tuple[list[Any], ...], schema: pa.Schema, accept_v0: bool) -> pa.RecordBatch:
    types = schema.types[: len(columns)]  # the message's columns; legacy_event is derived below
    arrays = [pa.array(values, type=kind) for values, kind in zip(columns, types, strict=True)]
    legacy = legacy_events(arrays[3]) if accept_v0 else pa.nulls(len(arrays[3]), pa.binary())
    return pa.RecordBatch.from_arrays([*arrays, legacy], schema=schema)


def legacy_events(values: pa.Array) -> pa.Array:
    """Each message's legacy v0 event mapped to our encoding (:func:`core.contracts.legacy_v0.mapped_value`),
    null for every other message; messages that start as ours are not parsed."""
    ours = pc.fill_null(pc.starts_with(values, pattern=VERSIONED_PREFIX), True)
    others = np.flatnonzero(~np.asarray(ours.to_numpy(zero_copy_only=False), dtype=bool))
    if len(others) == 0:
        return pa.nulls(len(values), pa.binary())
    mapped: list[bytes | None] = [None] * len(values)
    for index, value in zip(others.tolist(), values.take(pa.array(others)).to_pylist(), strict=True):
        mapped[index] = legacy_v0.mapped_value(value)
    return pa.array(mapped, pa.binary())


class KafkaDataSource(DataSource):
    """``spark.readStream.format("netflix_kafka").option("topic", …)``, plus ``kafka.*`` client options."""

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> StructType:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(self.options)


def register(spark: Any) -> None:
    """Make ``format("netflix_kafka")`` available in this SparkSession."""
    spark.dataSource.register(KafkaDataSource)


def source_options(
    client_conf: Mapping[str, str],
    topic: str,
    max_per_trigger: int = 0,
    starting: str = "earliest",
    **extra: Any,
) -> dict[str, str]:
    """Reader options from a librdkafka config (the SASL password stays in a ``*password*`` key)."""
    options = {f"{CLIENT_PREFIX}{key}": str(value) for key, value in client_conf.items()}
    options.update(topic=topic, startingOffsets=starting, maxOffsetsPerTrigger=str(max_per_trigger))
    options.update({key: str(value) for key, value in extra.items()})
    return options
