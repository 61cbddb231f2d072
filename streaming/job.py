"""Run the speed layer's Structured Streaming query: Kafka → Bronze/Silver/dead letters/late → warehouse.

One entry point, :func:`run_stream`, used by the Dagster job (``netflix_assets/defs/speed.py``), by the
``make run`` launcher and by ``python -m streaming.job`` / ``netflix-lambda stream``. It starts the query,
keeps it alive until asked to stop (``stop_event``, SIGTERM/SIGINT in the CLI, or the end of the backlog
with ``available_now``) and stops it between micro-batches when it can, so a stop rarely leaves a batch
to replay; when it cannot (SIGKILL, a crash), the next start replays the unfinished batch and the sinks
make that replay a no-op or a clean rewrite.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession

from netflix_assets.bucket import Bucket
from netflix_assets.resources import spark_config
from netflix_assets.settings import Settings, get_settings
from netflix_assets.warehouse import WarehouseLayout
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
from streaming.realtime_store import RealtimeStore
from streaming.sinks import DeadLetterPublisher

log = logging.getLogger("streaming")

QUERY_NAME = "watch_events"
GRACEFUL_STOP_TIMEOUT_S = 120.0
# Default Spark tasks per core and micro-batch: measured on 2 cores with 500,000-event batches, 4 tasks per
# batch 52k ev/s, 8 tasks 58k, 16 tasks 48k (docs/benchmarks.md, speed layer).
TASKS_PER_CORE = 4
MAX_RESETS_WITHOUT_PROGRESS = 3  # a broker that keeps losing data is a failure, not a loop


class StreamFailedError(RuntimeError):
    """The streaming query terminated with an error (message names the cause, e.g. broker data loss)."""


@dataclass
class StreamSummary:
    batches: int = 0
    skipped: int = 0
    rows_in: int = 0
    valid: int = 0
    dead_letters: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    stopped_by: str = ""
    broker_resets: int = 0  # checkpoint resets after the embedded broker came back empty
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


def checkpoint_key(query_name: str = QUERY_NAME) -> str:
    return f"speed/_checkpoints/{query_name}"


def build_spark(settings: Settings, app_name: str = "netflix-speed-layer") -> SparkSession:
    """A SparkSession from the shared config; Python workers run this venv's interpreter."""
    builder = SparkSession.builder
    for key, value in {**spark_config(settings), "spark.app.name": app_name}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    use_python(spark, settings)
    return spark


def use_python(spark: SparkSession, settings: Settings) -> None:
    """Make Python data sources and UDFs start ``settings.pyspark_python``.

    PySpark takes the worker interpreter of a Python data source from ``SparkContext.pythonExec``, which
    it reads once from ``PYSPARK_PYTHON`` and which ``spark.pyspark.python`` does not change; without
    this, the source's planner runs the system ``python3`` and fails on ``import pyarrow``.
    """
    spark.sparkContext.pythonExec = settings.pyspark_python


def run_stream(
    settings: Settings,
    *,
    trigger_seconds: float | None = None,
    available_now: bool = False,
    stop_event: threading.Event | None = None,
    on_batch: Callable[[BatchMetrics], None] | None = None,
    max_events_per_trigger: int | None = None,
    spark: SparkSession | None = None,
    client_conf: dict[str, str] | None = None,
    query_name: str = QUERY_NAME,
    publish_dead_letters: bool = True,
    source: Callable[[SparkSession], DataFrame] | None = None,
    on_reset: Callable[[BrokerReset], None] | None = None,
) -> StreamSummary:
    """Run the streaming query until ``stop_event`` is set (or the backlog is done with ``available_now``).

    ``client_conf`` defaults to the broker :func:`netflix_assets.broker.client_config` resolves. Raises
    :class:`StreamFailedError` if the query dies (e.g. the broker lost data the checkpoint references),
    except when the *embedded* broker came back empty: then the checkpoint is archived, the loss logged
    at ERROR, ``on_reset`` called, and the query restarted from the new topic
    (:mod:`streaming.broker_reset`). ``source`` replaces the Kafka source by any streaming DataFrame with
    the same five columns (the benchmark feeds pre-generated events from files through the identical
    query to measure the ceiling).
    """
    from netflix_assets.broker import client_config, ensure_topics

    needs_broker = source is None or publish_dead_letters
    conf = client_conf or (client_config(settings) if needs_broker else {})
    bucket = Bucket.from_settings(settings)
    spark = spark or build_spark(settings)
    use_python(spark, settings)
    register(spark)
    trigger = trigger_seconds or settings.stream_trigger_seconds
    limit = (
        settings.stream_max_events_per_trigger if max_events_per_trigger is None else max_events_per_trigger
    )
    checkpoint = checkpoint_key(query_name)
    tasks = settings.stream_min_tasks_per_batch or TASKS_PER_CORE * spark.sparkContext.defaultParallelism
    summary = StreamSummary()

    def record(metrics: BatchMetrics) -> None:
        summary.add(metrics)
        if on_batch is not None:
            on_batch(metrics)

    def run_query(batch_id_base: int) -> Any:
        """One query over the current checkpoint; returns its exception, or None if it ended cleanly."""
        dlq = None
        if publish_dead_letters:
            ensure_topics(conf, {settings.kafka_dead_letter_topic: 1})
            dlq = DeadLetterPublisher(conf, settings.kafka_dead_letter_topic, settings.kafka_topic)
        query = processor = None
        try:
            processor = MicroBatchProcessor(
                spark, bucket, store, dlq, settings.kafka_topic, on_batch=record, batch_id_base=batch_id_base
            )
            frame = (
                source(spark)
                if source is not None
                else spark.readStream.format(SOURCE_NAME)
                .options(
                    **source_options(conf, settings.kafka_topic, max_per_trigger=limit, minPartitions=tasks)
                )
                .load()
            )
            writer = (
                frame.writeStream.queryName(query_name)
                .foreachBatch(processor)
                .option("checkpointLocation", bucket.uri(checkpoint))
            )
            writer = (
                writer.trigger(availableNow=True)
                if available_now
                else writer.trigger(processingTime=f"{trigger} seconds")
            )
            log.info(
                "starting stream %s: topic %s on %s, trigger %s, at most %s events per batch, "
                "checkpoint %s%s",
                query_name,
                settings.kafka_topic if source is None else "(custom source)",
                conf.get("bootstrap.servers", "-"),
                "availableNow" if available_now else f"{trigger:g} s",
                f"{limit:,}" if limit else "unlimited",
                bucket.uri(checkpoint),
                f", batch ids from {batch_id_base}" if batch_id_base else "",
            )
            query = writer.start()
            summary.stopped_by = _wait(query, stop_event)
        finally:
            if query is not None and query.isActive:
                query.stop()
            if processor is not None:
                processor.dims.unpersist()
            if dlq is not None:
                dlq.close()
        return query.exception() if query is not None else None

    store = RealtimeStore(WarehouseLayout.from_settings(settings), settings.stream_retention_hours)
    started = time.monotonic()
    resets_without_progress = 0
    try:
        store.publish()  # readers find the tables even before the first batch
        while True:
            batches_before = summary.batches
            failure = run_query(prepare_batch_base(bucket, checkpoint, store))
            if failure is None:
                break
            cause = _describe(failure)
            error = f"streaming query {query_name} failed: {cause}"
            if source is not None or not is_broker_data_loss(cause):
                raise StreamFailedError(error)
            if not reset_allowed(settings):
                raise StreamFailedError(error + refusal_hint(settings))
            resets_without_progress = 0 if summary.batches > batches_before else resets_without_progress + 1
            if resets_without_progress > MAX_RESETS_WITHOUT_PROGRESS:
                raise StreamFailedError(
                    f"{error}. Already reset {MAX_RESETS_WITHOUT_PROGRESS} times in a row without committing "
                    "a batch in between: the embedded broker keeps losing its data; check "
                    "`netflix-lambda broker --status` and its log"
                )
            conf = client_conf or client_config(settings)  # a new supervisor may listen elsewhere
            try:
                reset = reset_after_broker_loss(
                    settings, bucket, store, conf, checkpoint, cause, summary.broker_resets + 1
                )
            except ResetRefused as exc:
                raise StreamFailedError(f"{error}. Not reset: {exc}") from exc
            summary.broker_resets += 1
            summary.resets.append(reset)
            if on_reset is not None:
                on_reset(reset)
    finally:
        summary.elapsed_s = time.monotonic() - started
        store.close()
    log.info(
        "stream %s stopped (%s) after %.0f s: %d batch(es), %s events (%s valid, %s dead-letter, %s late)%s",
        query_name,
        summary.stopped_by,
        summary.elapsed_s,
        summary.batches,
        f"{summary.rows_in:,}",
        f"{summary.valid:,}",
        f"{summary.dead_letters:,}",
        f"{summary.late:,}",
        f"; {summary.broker_resets} reset(s) after the embedded broker lost its data"
        if summary.broker_resets
        else "",
    )
    return summary


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


# -- CLI ----------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings-from-env", action="store_true", help="read settings from NETFLIX_* (default)"
    )
    parser.add_argument(
        "--trigger-seconds", type=float, default=None, help="micro-batch interval (default: setting)"
    )
    parser.add_argument(
        "--available-now", action="store_true", help="process the backlog in bounded batches, then exit"
    )
    parser.add_argument(
        "--max-events-per-trigger", type=int, default=None, help="admission control (0 = unlimited)"
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="override the broker (default: settings / embedded)"
    )
    parser.add_argument(
        "--no-dead-letter-topic", action="store_true", help="write dead letters to Parquet only"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info(
            "received %s: stopping the stream after the current micro-batch", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    conf = settings.kafka_client_config(args.bootstrap_servers) if args.bootstrap_servers else None
    try:
        run_stream(
            settings,
            trigger_seconds=args.trigger_seconds,
            available_now=args.available_now,
            stop_event=stop,
            max_events_per_trigger=args.max_events_per_trigger,
            client_conf=conf,
            publish_dead_letters=not args.no_dead_letter_topic,
        )
    except StreamFailedError as exc:
        log.error("%s", exc)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.job", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv), get_settings())


if __name__ == "__main__":
    sys.exit(main())
