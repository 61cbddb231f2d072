"""Run the speed layer's Structured Streaming query: Kafka → Bronze/Silver/dead letters/late → warehouse.

One entry point, :func:`run_stream`, used by the Dagster job (``netflix_assets/defs/speed/``), by
``netflix-lambda stream`` and by the benchmark. It starts the query, keeps it alive until asked to stop
(``stop_event``, or the end of the backlog with ``available_now``) and stops it between micro-batches when
it can, so a stop rarely leaves a batch to replay; when it cannot (SIGKILL, a crash), the next start
replays the unfinished batch and the sinks make that replay a no-op or a clean rewrite.

The caller hands over ready objects (a Spark session, the bucket, the warehouse, the Kafka cluster)
and :class:`StreamOptions`; nothing here reads settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession

from core.bucket import Bucket
from core.contracts.speed import QUERY_NAME, checkpoint_key
from core.kafka.admin import ensure_topics
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.spark import require_bucket_filesystem
from core.warehouse import Warehouse, WarehouseLayout
from streaming.broker_reset import (
    BrokerReset,
    ResetRefused,
    is_broker_data_loss,
    prepare_batch_base,
    refusal_hint,
    reset_after_broker_loss,
    reset_allowed,
)
from streaming.kafka_source import SOURCE_NAME, register, source_options
from streaming.micro_batch import BatchMetrics, MicroBatchProcessor
from streaming.realtime_sinks import open_realtime_sink
from streaming.sinks import DeadLetterPublisher
from streaming.worker_restart import (
    MAX_WORKER_RESTARTS,
    RESTART_PAUSE_S,
    WorkerRestart,
    is_worker_start_timeout,
)

log = logging.getLogger("streaming")

GRACEFUL_STOP_TIMEOUT_S = 120.0
# Default Spark tasks per core and micro-batch: measured on 2 cores with 500,000-event batches, 4 tasks per
# batch 52k ev/s, 8 tasks 58k, 16 tasks 48k (docs/benchmarks.md, speed layer).
TASKS_PER_CORE = 4
MAX_RESETS_WITHOUT_PROGRESS = 3  # a broker that keeps losing data is a failure, not a loop


class StreamFailedError(RuntimeError):
    """The streaming query terminated with an error (message names the cause, e.g. broker data loss)."""


@dataclass(frozen=True)
class StreamOptions:
    """How the query runs; the defaults of a deployment come from :meth:`from_settings`."""

    trigger_seconds: float = 10.0
    max_events_per_trigger: int = 500_000  # 0 = no limit
    min_tasks_per_batch: int = 0  # 0 = TASKS_PER_CORE per core of Spark's default parallelism
    retention_hours: float = 48.0
    reset_on_broker_loss: bool = True
    available_now: bool = False  # process the backlog in bounded batches, then stop
    publish_dead_letters: bool = True  # also to the dead-letter topic, not only to Parquet
    accept_v0: bool = True  # read legacy v0 events through core.contracts.legacy_v0 (else dead letters)
    query_name: str = QUERY_NAME

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> StreamOptions:
        """The deployment's options; ``None`` overrides keep the setting."""
        options = cls(
            trigger_seconds=settings.stream_trigger_seconds,
            max_events_per_trigger=settings.stream_max_events_per_trigger,
            min_tasks_per_batch=settings.stream_min_tasks_per_batch,
            retention_hours=settings.stream_retention_hours,
            reset_on_broker_loss=settings.stream_reset_on_broker_loss,
            accept_v0=settings.stream_accept_v0,
        )
        return replace(options, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class StreamSummary:
    batches: int = 0
    skipped: int = 0
    rows_in: int = 0
    valid: int = 0
    dead_letters: int = 0
    late: int = 0
    duplicates: int = 0
    legacy_v0: int = 0
    elapsed_s: float = 0.0
    stopped_by: str = ""
    broker_resets: int = 0  # checkpoint resets after the embedded broker came back empty
    worker_restarts: int = 0  # query restarts after a slow Python worker start (streaming.worker_restart)
    resets: list[BrokerReset] = field(default_factory=list, repr=False)
    last: BatchMetrics | None = field(default=None, repr=False)

    def add(self, metrics: BatchMetrics) -> None:
        self.last = metrics
        if metrics.skipped:
            self.skipped += 1
            return
        self.batches += 1
        self.rows_in += metrics.rows_in
        self.valid += metrics.valid
        self.dead_letters += metrics.dead_letters
        self.late += metrics.late
        self.duplicates += metrics.duplicates
        self.legacy_v0 += metrics.legacy_v0

    def describe(self, query_name: str) -> str:
        resets = (
            f"; {self.broker_resets} reset(s) after the embedded broker lost its data"
            if self.broker_resets
            else ""
        )
        if self.worker_restarts:
            resets += f"; {self.worker_restarts} restart(s) after a slow Python worker start"
        return (
            f"stream {query_name} stopped ({self.stopped_by}) after {self.elapsed_s:.0f} s: {self.batches} "
            f"batch(es), {self.rows_in:,} events ({self.valid:,} valid, {self.dead_letters:,} dead-letter, "
            f"{self.late:,} late, {self.duplicates:,} duplicate; "
            f"{self.legacy_v0:,} legacy v0 accepted){resets}"
        )


def run_stream(
    spark: SparkSession,
    bucket: Bucket,
    warehouse: Warehouse | WarehouseLayout,
    kafka: KafkaCluster,
    options: StreamOptions,
    *,
    stop_event: threading.Event | None = None,
    on_batch: Callable[[BatchMetrics], None] | None = None,
    on_reset: Callable[[BrokerReset | WorkerRestart], None] | None = None,
    source: Callable[[SparkSession], DataFrame] | None = None,
) -> StreamSummary:
    """Run the streaming query until ``stop_event`` is set (or the backlog is done with ``available_now``).

    Raises :class:`StreamFailedError` if the query dies (e.g. the broker lost data the checkpoint
    references), except when the *embedded* broker came back empty: then the checkpoint is archived, the
    loss logged at ERROR, ``on_reset`` called, and the query restarted from the new topic
    (:mod:`streaming.broker_reset`); and except when Spark's Python worker was only slow to start: then
    the query restarts from its checkpoint, ``on_reset`` is called with a :class:`WorkerRestart`
    (:mod:`streaming.worker_restart`). ``source`` replaces the Kafka source by any streaming DataFrame with
    the same columns (``streaming.kafka_source.SCHEMA``; the benchmark feeds pre-generated events through
    the identical query to measure the ceiling).
    """
    runner = _StreamRunner(spark, bucket, warehouse, kafka, options, on_batch, on_reset, source)
    return runner.run(stop_event)


class _StreamRunner:
    """One run: the query, restarted from a fresh checkpoint after each embedded-broker data loss."""

    def __init__(
        self,
        spark: SparkSession,
        bucket: Bucket,
        warehouse: Warehouse | WarehouseLayout,
        kafka: KafkaCluster,
        options: StreamOptions,
        on_batch: Callable[[BatchMetrics], None] | None,
        on_reset: Callable[[BrokerReset | WorkerRestart], None] | None,
        source: Callable[[SparkSession], DataFrame] | None,
    ) -> None:
        self.spark, self.bucket, self.kafka, self.options = spark, bucket, kafka, options
        self.on_batch, self.on_reset, self.source = on_batch, on_reset, source
        require_bucket_filesystem(spark, bucket.uri(""))  # checkpoints: gs:// needs the GCS connector
        self.store = open_realtime_sink(warehouse, options.retention_hours)  # DuckDB or BigQuery
        self.checkpoint = checkpoint_key(options.query_name)
        self.summary = StreamSummary()
        register(spark)

    def run(self, stop_event: threading.Event | None) -> StreamSummary:
        started = time.monotonic()
        failures_in_a_row = 0  # without a committed micro-batch in between
        try:
            self.store.publish()  # readers find the tables even before the first batch
            while True:
                batches_before = self.summary.batches
                failure = self._run_query(
                    prepare_batch_base(self.bucket, self.checkpoint, self.store), stop_event
                )
                if failure is None:
                    break
                progressed = self.summary.batches > batches_before
                failures_in_a_row = 1 if progressed else failures_in_a_row + 1
                if not self._recover(_describe(failure), failures_in_a_row, stop_event):
                    break
        finally:
            self.summary.elapsed_s = time.monotonic() - started
            self.store.close()
        log.info(self.summary.describe(self.options.query_name))
        return self.summary

    def _record(self, metrics: BatchMetrics) -> None:
        self.summary.add(metrics)
        if self.on_batch is not None:
            self.on_batch(metrics)

    def _run_query(self, batch_id_base: int, stop_event: threading.Event | None) -> Any:
        """One query over the current checkpoint; returns its exception, or None if it ended cleanly."""
        dlq = query = processor = None
        try:
            if self.options.publish_dead_letters:
                conf = self.kafka.client_config()
                ensure_topics(conf, {self.kafka.dead_letter_topic: 1}, self.kafka.replication_factor)
                dlq = DeadLetterPublisher(conf, self.kafka.dead_letter_topic, self.kafka.topic)
            processor = MicroBatchProcessor(
                self.spark, self.bucket, self.store, dlq, self.kafka.topic, self._record, batch_id_base,
                accept_v0=self.options.accept_v0,
            )  # fmt: skip
            query = self._start(processor, batch_id_base)
            self.summary.stopped_by = _wait(query, stop_event)
        finally:
            if query is not None and query.isActive:
                query.stop()
            if processor is not None:
                processor.dims.unpersist()
            if dlq is not None:
                dlq.close()
        return query.exception() if query is not None else None

    def _start(self, processor: MicroBatchProcessor, batch_id_base: int) -> Any:
        options = self.options
        writer = (
            self._frame()
            .writeStream.queryName(options.query_name)
            .foreachBatch(processor)
            .option("checkpointLocation", self.bucket.uri(self.checkpoint))
        )
        if options.available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=f"{options.trigger_seconds} seconds")
        log.info(
            "starting stream %s: topic %s, trigger %s, at most %s events per batch, checkpoint %s%s",
            options.query_name,
            self.kafka.topic if self.source is None else "(custom source)",
            "availableNow" if options.available_now else f"{options.trigger_seconds:g} s",
            f"{options.max_events_per_trigger:,}" if options.max_events_per_trigger else "unlimited",
            self.bucket.uri(self.checkpoint),
            f", batch ids from {batch_id_base}" if batch_id_base else "",
        )
        return writer.start()

    def _frame(self) -> DataFrame:
        if self.source is not None:
            return self.source(self.spark)
        tasks = (
            self.options.min_tasks_per_batch or TASKS_PER_CORE * self.spark.sparkContext.defaultParallelism
        )
        conf = self.kafka.client_config()
        kafka_options = source_options(
            conf,
            self.kafka.topic,
            max_per_trigger=self.options.max_events_per_trigger,
            minPartitions=tasks,
            acceptV0=str(self.options.accept_v0).lower(),
        )
        return self.spark.readStream.format(SOURCE_NAME).options(**kafka_options).load()

    def _recover(self, cause: str, failures_in_a_row: int, stop_event: threading.Event | None) -> bool:
        """Restart after a slow worker start or reset after an embedded-broker data loss (``True``: run the
        query again; ``False``: a stop came during the pause), or raise :class:`StreamFailedError`."""
        error = f"streaming query {self.options.query_name} failed: {cause}"
        if is_worker_start_timeout(cause):
            return self._restart_after_slow_worker(error, failures_in_a_row, stop_event)
        if self.source is not None or not is_broker_data_loss(cause):
            raise StreamFailedError(error)
        if not reset_allowed(self.kafka, self.options.reset_on_broker_loss):
            raise StreamFailedError(error + refusal_hint(self.kafka))
        if failures_in_a_row > MAX_RESETS_WITHOUT_PROGRESS:
            raise StreamFailedError(
                f"{error}. Already reset {MAX_RESETS_WITHOUT_PROGRESS} times in a row without committing "
                "a batch in between: the embedded broker keeps losing its data; check "
                "`netflix-lambda broker --status` and its log"
            )
        number = self.summary.broker_resets + 1
        try:
            reset = reset_after_broker_loss(
                self.kafka, self.bucket, self.store, self.checkpoint, cause, number
            )
        except ResetRefused as exc:
            raise StreamFailedError(f"{error}. Not reset: {exc}") from exc
        self.summary.broker_resets += 1
        self.summary.resets.append(reset)
        if self.on_reset is not None:
            self.on_reset(reset)
        return True

    def _restart_after_slow_worker(
        self, error: str, failures_in_a_row: int, stop_event: threading.Event | None
    ) -> bool:
        if failures_in_a_row > MAX_WORKER_RESTARTS:
            raise StreamFailedError(
                f"{error}. Restarted {MAX_WORKER_RESTARTS} times in a row without committing a batch: "
                "the Python worker never starts in time; check that NETFLIX_PYSPARK_PYTHON runs and can "
                "`import pyspark, pyarrow, confluent_kafka`, and the machine's load"
            )
        restart = WorkerRestart(failures_in_a_row, error)
        log.warning(restart.message(self.options.query_name))
        self.summary.worker_restarts += 1
        if self.on_reset is not None:
            self.on_reset(restart)
        if stop_event is not None and stop_event.wait(RESTART_PAUSE_S):
            self.summary.stopped_by = "stop requested"
            return False
        return True


def _wait(query: Any, stop_event: threading.Event | None) -> str:
    """Block until the query ends or a stop is requested; then stop between batches if possible."""
    while query.isActive:
        if stop_event is not None and stop_event.is_set():
            deadline = time.monotonic() + GRACEFUL_STOP_TIMEOUT_S
            while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.2)
            query.stop()
            return "stop requested"
        try:
            query.awaitTermination(0.5)
        except StreamingQueryException:
            break  # reported by the caller from query.exception()
    return "query terminated" if query.exception() is not None else "backlog processed"


def _describe(exc: Any) -> str:
    """The root cause of a StreamingQueryException, without the JVM stack."""
    text = str(getattr(exc, "desc", None) or exc)
    for marker in ("BrokerDataLossError: ", "StreamFailedError: "):
        if marker in text:
            return marker.rstrip(": ") + ": " + text.split(marker, 1)[1].split("\n", 1)[0]
    return text.split("\n", 1)[0][:2000]
