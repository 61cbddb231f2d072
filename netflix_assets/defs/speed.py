"""Speed layer in Dagster: the topic as an observable source, the stream as one long-running multi-asset.

* ``netflix_watch_events`` is observed (end offsets per partition, lag behind the stream's checkpoint):
  on demand, and by the sensor whenever the topic moved.
* ``speed_stream`` materializes ``bronze_watch_events``, ``silver_watch_events``, ``dead_letter_events``,
  ``late_events``, ``engagement_health_realtime`` and ``churn_risk_alerts`` together, because they are one
  Structured Streaming query. Its run keeps the query alive and logs one materialization per asset per
  micro-batch (rows in/out, dead letters, late, offsets, watermark, duration, event→warehouse latency).
  Terminating the run from the UI stops the query after its current micro-batch.
* ``speed_stream_sensor`` (every 10 s) launches the job when the topic has messages the stream has not
  committed and no stream is running (no run of the job in progress, no live stream process holding the
  realtime warehouse); each launch has its own run key. After :data:`CRASH_LOOP_RUNS` runs in a row
  whose stream itself failed (tagged :data:`STREAM_ERROR_TAG`; a run interrupted by a shutdown is not)
  it stops launching and says why in its skip reason, instead of relaunching a run that fails every 10 s
  (a real Kafka cluster that lost data the checkpoint references stops the stream on purpose).
"""

import json
import queue
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetSelection,
    AssetSpec,
    Config,
    DagsterExecutionInterruptedError,
    DagsterRunStatus,
    DataVersion,
    DefaultSensorStatus,
    Definitions,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    ObserveResult,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    multi_asset,
    observable_source_asset,
    sensor,
)
from dagster_pyspark import PySparkResource

from netflix_assets.broker import KafkaResource
from netflix_assets.resources import BucketResource, WarehouseResource
from netflix_assets.settings import Settings

GROUP = "speed"
TOPIC_KEY = AssetKey("netflix_watch_events")
BRONZE, SILVER, DEAD, LATE = "bronze_watch_events", "silver_watch_events", "dead_letter_events", "late_events"
ENGAGEMENT, ALERTS = "engagement_health_realtime", "churn_risk_alerts"
JOB_NAME = "speed_stream_job"
ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
OBSERVE_EVERY_S = 30.0
CRASH_LOOP_RUNS = 3
STREAM_ERROR_TAG = "netflix/stream_error"  # set on a run whose streaming query failed (not interrupted)
_BUCKET_KEYS = {BRONZE: "speed/bronze", SILVER: "speed/silver", DEAD: "speed/dead_letter", LATE: "speed/late"}

_USERS = AssetKey(["silver", "users"])
_MOVIES = AssetKey(["silver", "movies"])
_WATCH = AssetKey(["silver", "watch_history"])
SPECS = [
    AssetSpec(
        BRONZE,
        group_name=GROUP,
        deps=[TOPIC_KEY],
        kinds={"spark", "parquet"},
        description="Every consumed message as received, with its Kafka coordinates: the replayable record "
        "(`speed/bronze/date=…/hour=…`, exactly once per partition and offset).",
    ),
    AssetSpec(
        SILVER,
        group_name=GROUP,
        deps=[AssetKey(BRONZE), _USERS, _MOVIES, _WATCH],
        kinds={"spark", "parquet"},
        description="Valid, on-time events joined to Silver users and movies, with churn flags "
        "(`speed/silver/`).",
    ),
    AssetSpec(
        DEAD,
        group_name=GROUP,
        deps=[AssetKey(BRONZE)],
        kinds={"spark", "parquet", "kafka"},
        description="Messages that failed validation, with reason and errors (`speed/dead_letter/`), also "
        "re-published to the dead-letter topic (at-least-once).",
    ),
    AssetSpec(
        LATE,
        group_name=GROUP,
        deps=[AssetKey(BRONZE)],
        kinds={"spark", "parquet"},
        description="Valid events older than the 10-minute watermark (`speed/late/`): counted, never "
        "dropped.",
    ),
    AssetSpec(
        ENGAGEMENT,
        group_name=GROUP,
        deps=[AssetKey(SILVER), _USERS, _MOVIES],
        kinds={"duckdb", "parquet"},
        freshness_policy=FreshnessPolicy.time_window(fail_window=timedelta(minutes=1)),
        description="5-minute windows per country, genre, device, quality, original and content type: "
        "sessions, distinct users, completion, churn-flag counts and rates, revenue impact, alert level "
        "(realtime.duckdb, published as realtime/engagement_health_realtime.parquet).",
    ),
    AssetSpec(
        ALERTS,
        group_name=GROUP,
        deps=[AssetKey(ENGAGEMENT), AssetKey(SILVER)],
        kinds={"duckdb", "parquet"},
        description="Segments and users whose churn flags crossed a threshold in a window "
        "(realtime/churn_risk_alerts.parquet).",
    ),
]


class StreamConfig(Config):
    """Run config of the streaming job; defaults come from the settings."""

    trigger_seconds: float | None = None
    available_now: bool = False
    max_events_per_trigger: int | None = None


def run_settings(
    base: Settings, bucket: BucketResource, warehouse: WarehouseResource, kafka: KafkaResource
) -> Settings:
    """The deployment settings, with the locations and topics the run's resources point at."""
    return base.model_copy(
        update={
            "bucket_url": bucket.url,
            "gcs_project": bucket.gcs_project,
            "gcs_endpoint": bucket.gcs_endpoint,
            "duckdb_dir": Path(warehouse.duckdb_dir),
            "kafka_topic": kafka.topic,
            "kafka_dead_letter_topic": kafka.dead_letter_topic,
        }
    )


def _batch_metadata(metrics: Any) -> dict[str, Any]:
    return {
        "batch_id": metrics.batch_id,
        "rows_in": metrics.rows_in,
        "rows_out": metrics.valid,
        "dead_letters": metrics.dead_letters,
        "dead_letters_by_reason": MetadataValue.json(metrics.dead_by_reason),
        "late": metrics.late,
        "judged_in_python": metrics.non_canonical,  # not in the producer's canonical encoding: slow path
        "input_offsets": MetadataValue.json(metrics.input_offsets),
        "watermark": metrics.watermark or "",
        "max_event_time": metrics.max_event_time or "",
        "windows_updated": metrics.windows_updated,
        "batch_duration_s": round(metrics.duration_s, 3),
        "latency_p50_s": round(metrics.latency_p50_s, 3) if metrics.latency_p50_s is not None else None,
        "latency_p95_s": round(metrics.latency_p95_s, 3) if metrics.latency_p95_s is not None else None,
        "seconds_by_stage": MetadataValue.json(metrics.stage_s),
    }


def _paths(settings: Settings) -> dict[str, MetadataValue]:
    from netflix_assets.bucket import Bucket
    from netflix_assets.warehouse import WarehouseLayout

    bucket, layout = Bucket.from_settings(settings), WarehouseLayout.from_settings(settings)
    paths = {name: MetadataValue.path(bucket.uri(key)) for name, key in _BUCKET_KEYS.items()}
    paths.update(
        {name: MetadataValue.path(str(layout.realtime_snapshot(name))) for name in (ENGAGEMENT, ALERTS)}
    )
    return paths


def _log_batch(context: AssetExecutionContext, metrics: Any, paths: dict[str, MetadataValue]) -> None:
    if metrics.skipped:
        context.log.info(metrics.summary())
        return
    context.log.info(metrics.summary())
    common = {key: value for key, value in _batch_metadata(metrics).items() if value is not None}
    for spec in SPECS:
        context.log_event(
            AssetMaterialization(asset_key=spec.key, metadata={**common, "path": paths[spec.key.path[-1]]})
        )


def definitions(settings: Settings) -> Definitions:
    """The speed layer's assets, job and sensor for one deployment."""

    @observable_source_asset(
        key=TOPIC_KEY,
        group_name=GROUP,
        description="The watch-event topic: end offsets per partition and the stream's lag behind them.",
    )
    def netflix_watch_events(kafka: KafkaResource, bucket: BucketResource) -> ObserveResult:
        return ObserveResult(**_observe_topic(kafka, bucket))

    @multi_asset(name="speed_stream", specs=SPECS, can_subset=False)
    def speed_stream(
        context: AssetExecutionContext,
        config: StreamConfig,
        pyspark: PySparkResource,
        bucket: BucketResource,
        warehouse: WarehouseResource,
        kafka: KafkaResource,
    ) -> Any:
        stream_settings = run_settings(settings, bucket, warehouse, kafka)
        summary = _run_stream_in_dagster(context, config, stream_settings, pyspark, kafka)
        totals = {
            "batches": summary.batches,
            "batches_replayed_and_skipped": summary.skipped,
            "rows_in": summary.rows_in,
            "rows_out": summary.valid,
            "dead_letters": summary.dead_letters,
            "late": summary.late,
            "stopped_by": summary.stopped_by,
            "run_seconds": round(summary.elapsed_s, 1),
            "broker_resets": summary.broker_resets,
        }
        if summary.resets:
            totals["broker_reset_details"] = MetadataValue.json([r.to_dict() for r in summary.resets])
        for spec in SPECS:
            yield MaterializeResult(asset_key=spec.key, metadata=totals)

    job = define_asset_job(
        JOB_NAME,
        selection=AssetSelection.assets(*[spec.key for spec in SPECS]),
        description="The long-running speed layer: Kafka → Bronze/Silver/dead letters/late → warehouse.",
        tags={"netflix/layer": "speed"},
    )

    @sensor(
        name="speed_stream_sensor",
        job=job,
        minimum_interval_seconds=10,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def speed_stream_sensor(
        context: SensorEvaluationContext,
        kafka: KafkaResource,
        bucket: BucketResource,
        warehouse: WarehouseResource,
    ) -> SensorResult | SkipReason:
        return evaluate_sensor(context, kafka, bucket, warehouse)

    return Definitions(assets=[netflix_watch_events, speed_stream], jobs=[job], sensors=[speed_stream_sensor])


# -- running the stream inside a run ------------------------------------------------------------------------
def _run_stream_in_dagster(
    context: AssetExecutionContext,
    config: StreamConfig,
    settings: Settings,
    pyspark: PySparkResource,
    kafka: KafkaResource,
) -> Any:
    """Run the query in a worker thread; this (main) thread logs each micro-batch and handles termination.

    Dagster delivers a UI termination to the main thread as ``DagsterExecutionInterruptedError``; the
    query is then stopped after its current micro-batch and the interruption re-raised.
    """
    from streaming.broker_reset import BrokerReset
    from streaming.job import GRACEFUL_STOP_TIMEOUT_S, QUERY_NAME, run_stream

    batches: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}
    spark = pyspark.spark_session
    conf = kafka.client_config()
    paths = _paths(settings)

    def target() -> None:
        try:
            outcome["summary"] = run_stream(
                settings,
                trigger_seconds=config.trigger_seconds,
                available_now=config.available_now,
                max_events_per_trigger=config.max_events_per_trigger,
                stop_event=stop,
                on_batch=batches.put,
                spark=spark,
                client_conf=conf,
                on_reset=batches.put,
            )
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="speed-stream", daemon=True)
    worker.start()
    try:
        while worker.is_alive() or not batches.empty():
            try:
                item = batches.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(item, BrokerReset):  # the embedded broker came back empty
                context.log.error(item.message(QUERY_NAME, settings.kafka_topic))
            else:
                _log_batch(context, item, paths)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        context.log.warning("run terminated: stopping the streaming query after its current micro-batch")
        stop.set()
        worker.join(GRACEFUL_STOP_TIMEOUT_S + 30)
        context.log.info(f"streaming query stopped ({outcome.get('summary') or outcome.get('error')})")
        raise
    if "error" in outcome:
        context.instance.add_run_tags(context.run_id, {STREAM_ERROR_TAG: type(outcome["error"]).__name__})
        raise Failure(description=f"the speed stream stopped with an error: {outcome['error']}") from outcome[
            "error"
        ]
    return outcome["summary"]


# -- topic observation and the sensor -----------------------------------------------------------------------
def _observe_topic(kafka: KafkaResource, bucket: BucketResource) -> dict[str, Any]:
    from streaming.checkpoint import read_progress
    from streaming.job import checkpoint_key

    ends = kafka.end_offsets()
    progress = read_progress(bucket.get(), checkpoint_key())
    cluster = kafka.cluster_id()
    # A checkpoint from another cluster (the embedded broker restarted empty) has consumed nothing here.
    lag = sum(ends.values()) if progress.cluster_id not in (None, cluster) else progress.lag(ends)
    return {
        "data_version": DataVersion(f"{cluster}:{sum(ends.values())}"),
        "metadata": {
            "end_offsets": MetadataValue.json({str(p): o for p, o in sorted(ends.items())}),
            "messages": sum(ends.values()),
            "stream_committed_offsets": MetadataValue.json(
                {str(p): o for p, o in sorted(progress.offsets.items())}
            ),
            "stream_committed_batch": progress.committed_batch
            if progress.committed_batch is not None
            else -1,
            "lag": lag,
        },
    }


def evaluate_sensor(
    context: SensorEvaluationContext,
    kafka: KafkaResource,
    bucket: BucketResource,
    warehouse: WarehouseResource,
) -> SensorResult | SkipReason:
    """Launch the stream when there is lag and nothing is streaming; observe the topic when it moved."""
    from streaming.realtime_store import running_owner

    cursor = json.loads(context.cursor) if context.cursor else {}
    try:
        observed = _observe_topic(kafka, bucket)
    except Exception as exc:  # broker down or topic missing: say so, retry next tick
        return SkipReason(f"cannot read topic {kafka.topic!r}: {exc}")
    metadata = observed["metadata"]
    events: list[AssetObservation] = []
    total = metadata["messages"]
    if total != cursor.get("observed_total") or time.time() - cursor.get("observed_at", 0) > OBSERVE_EVERY_S:
        events.append(AssetObservation(asset_key=TOPIC_KEY, metadata=metadata))
        cursor.update(observed_total=total, observed_at=time.time())
    active = context.instance.get_runs(RunsFilter(job_name=JOB_NAME, statuses=ACTIVE_STATUSES), limit=1)
    recent = context.instance.get_runs(RunsFilter(job_name=JOB_NAME), limit=CRASH_LOOP_RUNS)
    owner = running_owner(warehouse.layout())
    reason = None
    if active:
        reason = f"streaming run {active[0].run_id} is {active[0].status.value}"
    elif owner is not None:
        reason = (
            f"a stream (pid {owner.get('pid')} on {owner.get('host')}) already owns the realtime warehouse"
        )
    elif len(recent) == CRASH_LOOP_RUNS and all(
        r.status == DagsterRunStatus.FAILURE and STREAM_ERROR_TAG in r.tags for r in recent
    ):
        reason = (
            f"not relaunching: the stream failed in the last {CRASH_LOOP_RUNS} runs "
            f"(latest {recent[0].run_id}). "
            "Read that run's error, fix the cause, then launch speed_stream_job from the UI; the sensor "
            "resumes once a run is in progress or has ended without failing"
        )
    elif metadata["lag"] == 0:
        reason = f"no lag: the stream has committed all {total:,} messages"
    if reason is not None:
        return SensorResult(skip_reason=reason, asset_events=events, cursor=json.dumps(cursor))
    cursor["launches"] = int(cursor.get("launches", 0)) + 1
    request = RunRequest(
        run_key=f"speed-stream-{cursor['launches']}",
        tags={"netflix/lag": str(metadata["lag"])},
    )
    return SensorResult(run_requests=[request], asset_events=events, cursor=json.dumps(cursor))
