"""Running the stream inside a Dagster run: the query in a worker thread, Dagster events from the main one.

Dagster delivers a UI termination to the main thread as ``DagsterExecutionInterruptedError``, and only
the main thread may log events, so the query runs in a worker thread that hands each micro-batch's metrics
(and any broker reset) over a queue; the main thread turns them into one materialization per asset and
stops the query after its current micro-batch when the run is terminated.
"""

import queue
import threading
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetSpec,
    DagsterExecutionInterruptedError,
    Failure,
    MetadataValue,
)
from dagster_pyspark import PySparkResource

from core.bucket import Bucket
from core.contracts.speed import PUBLISHED_TABLES, SINK_KEYS
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.spark import use_python
from core.warehouse import Warehouse
from streaming.broker_reset import BrokerReset
from streaming.job import GRACEFUL_STOP_TIMEOUT_S, StreamOptions, StreamSummary, run_stream
from streaming.micro_batch import BatchMetrics
from streaming.worker_restart import WorkerRestart

STREAM_ERROR_TAG = "netflix/stream_error"  # set on a run whose streaming query failed (not interrupted)


def run_stream_in_dagster(
    context: AssetExecutionContext,
    options: StreamOptions,
    settings: Settings,
    pyspark: PySparkResource,
    bucket: Bucket,
    warehouse: Warehouse,
    kafka: KafkaCluster,
    specs: Sequence[AssetSpec],
) -> StreamSummary:
    """Run the query until it ends or the run is terminated; raise ``Failure`` if the stream failed."""
    spark = pyspark.spark_session
    use_python(spark, settings.pyspark_python)
    handoff: queue.Queue[BatchMetrics | BrokerReset | WorkerRestart] = queue.Queue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["summary"] = run_stream(
                spark,
                bucket,
                warehouse,
                kafka,
                options,
                stop_event=stop,
                on_batch=handoff.put,
                on_reset=handoff.put,
            )
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="speed-stream", daemon=True)
    worker.start()
    paths = _paths(bucket, warehouse)
    try:
        _relay(context, worker, handoff, paths, specs, options, kafka)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        context.log.warning("run terminated: stopping the streaming query after its current micro-batch")
        stop.set()
        worker.join(GRACEFUL_STOP_TIMEOUT_S + 30)
        context.log.info(f"streaming query stopped ({outcome.get('summary') or outcome.get('error')})")
        raise
    if "error" in outcome:
        context.instance.add_run_tags(context.run.run_id, {STREAM_ERROR_TAG: type(outcome["error"]).__name__})
        raise Failure(description=f"the speed stream stopped with an error: {outcome['error']}") from outcome[
            "error"
        ]
    return outcome["summary"]


def _relay(
    context: AssetExecutionContext,
    worker: threading.Thread,
    handoff: "queue.Queue[BatchMetrics | BrokerReset | WorkerRestart]",
    paths: dict[str, MetadataValue],
    specs: Sequence[AssetSpec],
    options: StreamOptions,
    kafka: KafkaCluster,
) -> None:
    """Log what the worker hands over until it has finished and the queue is drained."""
    while worker.is_alive() or not handoff.empty():
        try:
            item = handoff.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(item, BrokerReset):  # the embedded broker came back empty
            context.log.error(item.message(options.query_name, kafka.topic))
        elif isinstance(item, WorkerRestart):  # busy cores: the query restarts from its checkpoint
            context.log.warning(item.message(options.query_name))
        else:
            _log_batch(context, item, paths, specs)


def _paths(bucket: Bucket, warehouse: Warehouse) -> dict[str, MetadataValue]:
    """Where each of the stream's assets lives, as UI links (a BigQuery table id on BigQuery)."""
    paths = {name: MetadataValue.path(bucket.uri(key)) for name, key in SINK_KEYS.items()}
    for table in PUBLISHED_TABLES:
        if warehouse.on_bigquery:
            from core.bigquery import table_id  # BigQuery only: see core.bigquery

            target = warehouse.bigquery
            paths[table] = MetadataValue.path(table_id(target, target.realtime_dataset, table))
        else:
            paths[table] = MetadataValue.path(str(warehouse.layout.realtime_snapshot(table)))
    return paths


def batch_metadata(metrics: BatchMetrics) -> dict[str, Any]:
    """One micro-batch as asset metadata (``None`` values left out)."""
    values = {
        "batch_id": metrics.batch_id,
        "rows_in": metrics.rows_in,
        "rows_out": metrics.valid,
        "dead_letters": metrics.dead_letters,
        "dead_letters_by_reason": MetadataValue.json(metrics.dead_by_reason),
        "late": metrics.late,
        "duplicates": metrics.duplicates,  # on-time re-sends of a counted event_id, not merged again
        "judged_in_python": metrics.non_canonical,  # not in the producer's canonical encoding: slow path
        "legacy_v0": metrics.legacy_v0,  # events of the original pipeline's producer, read as version 0
        "input_offsets": MetadataValue.json(metrics.input_offsets),
        "watermark": metrics.watermark or "",
        "max_event_time": metrics.max_event_time or "",
        "windows_updated": metrics.windows_updated,
        "batch_duration_s": round(metrics.duration_s, 3),
        "latency_p50_s": None if metrics.latency_p50_s is None else round(metrics.latency_p50_s, 3),
        "latency_p95_s": None if metrics.latency_p95_s is None else round(metrics.latency_p95_s, 3),
        "seconds_by_stage": MetadataValue.json(metrics.stage_s),
    }
    return {key: value for key, value in values.items() if value is not None}


def _log_batch(
    context: AssetExecutionContext,
    metrics: BatchMetrics,
    paths: dict[str, MetadataValue],
    specs: Sequence[AssetSpec],
) -> None:
    context.log.info(metrics.summary())
    if metrics.skipped:
        return
    common = batch_metadata(metrics)
    for spec in specs:
        path = paths[spec.key.path[-1]]
        context.log_event(AssetMaterialization(asset_key=spec.key, metadata={**common, "path": path}))
