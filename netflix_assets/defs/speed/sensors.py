"""``speed_stream_sensor``: keep exactly one stream running while the topic has work for it.

Every 10 s it launches the streaming job when the topic has messages the stream has not committed and no
stream is running (no run of the job in progress, no live stream process holding the realtime warehouse;
a "started" run whose code server died with it is marked failed first, ``run_health.py``);
each launch has its own run key. After :data:`CRASH_LOOP_RUNS` runs in a row whose stream itself failed
(tagged :data:`STREAM_ERROR_TAG`; a run interrupted by a shutdown is not) it stops launching and says why
in its skip reason, instead of relaunching a run that fails every 10 s (a real Kafka cluster that lost
data the checkpoint references stops the stream on purpose). It also records an observation of the topic
whenever the topic moved, or every :data:`OBSERVE_EVERY_S` seconds.
"""

import json
import time
from typing import Any

from dagster import (
    AssetObservation,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from netflix_assets.defs.speed.assets import TOPIC_KEY
from netflix_assets.defs.speed.jobs import ACTIVE_STATUSES, JOB_NAME, speed_stream_job
from netflix_assets.defs.speed.run_health import lost_stream_run
from netflix_assets.defs.speed.stream_run import STREAM_ERROR_TAG
from netflix_assets.defs.speed.topic import observe_topic
from netflix_assets.resources import BucketResource, KafkaResource, WarehouseResource
from streaming.realtime_store import running_owner

OBSERVE_EVERY_S = 30.0
CRASH_LOOP_RUNS = 3


def evaluate_sensor(
    context: SensorEvaluationContext,
    kafka: KafkaResource,
    bucket: BucketResource,
    warehouse: WarehouseResource,
) -> SensorResult | SkipReason:
    """Launch the stream when there is lag and nothing is streaming; observe the topic when it moved."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    try:
        metadata = observe_topic(kafka, bucket)["metadata"]
    except Exception as exc:  # broker down or topic missing: say so, retry next tick
        return SkipReason(f"cannot read topic {kafka.topic!r}: {exc}")
    events = _observations(cursor, metadata)
    reason = _why_not_launch(context, warehouse, metadata)
    if reason is not None:
        return SensorResult(skip_reason=reason, asset_events=events, cursor=json.dumps(cursor))
    cursor["launches"] = int(cursor.get("launches", 0)) + 1
    request = RunRequest(
        run_key=f"speed-stream-{cursor['launches']}", tags={"netflix/lag": str(metadata["lag"])}
    )
    return SensorResult(run_requests=[request], asset_events=events, cursor=json.dumps(cursor))


def _observations(cursor: dict[str, Any], metadata: dict[str, Any]) -> list[AssetObservation]:
    """An observation of the topic when it moved or the last one is old; updates ``cursor``."""
    total = metadata["messages"]
    if (
        total == cursor.get("observed_total")
        and time.time() - cursor.get("observed_at", 0) <= OBSERVE_EVERY_S
    ):
        return []
    cursor.update(observed_total=total, observed_at=time.time())
    return [AssetObservation(asset_key=TOPIC_KEY, metadata=metadata)]


def _why_not_launch(
    context: SensorEvaluationContext, warehouse: WarehouseResource, metadata: dict[str, Any]
) -> str | None:
    """The skip reason, or None when the stream should be launched."""
    active = context.instance.get_runs(RunsFilter(job_name=JOB_NAME, statuses=ACTIVE_STATUSES), limit=1)
    owner = running_owner(warehouse.layout())
    lost = lost_stream_run(context.instance, active[0], owner) if active else None
    if lost is not None:  # its process died with its code server: record that, then launch a new one
        message = f"streaming run {active[0].run_id} is lost: {lost}; the sensor launches a new stream"
        context.log.error(message)
        context.instance.report_run_failed(active[0], message)
    elif active:
        return f"streaming run {active[0].run_id} is {active[0].status.value}"
    if owner is not None:
        return f"a stream (pid {owner.get('pid')} on {owner.get('host')}) already owns the realtime warehouse"
    recent = crash_loop(context.instance)
    if recent:
        return (
            f"not relaunching: the stream failed in the last {CRASH_LOOP_RUNS} runs "
            f"(latest {recent[0].run_id}). "
            "Read that run's error, fix the cause, then launch speed_stream_job from the UI; the sensor "
            "resumes once a run is in progress or has ended without failing"
        )
    if metadata["lag"] == 0:
        return f"no lag: the stream has committed all {metadata['messages']:,} messages"
    return None


def crash_loop(instance: DagsterInstance) -> list[DagsterRun]:
    """The last :data:`CRASH_LOOP_RUNS` streaming runs if the stream itself failed in each (newest first),
    else []: the guard has given up relaunching (the on-call sensor pages on it)."""
    recent = list(instance.get_runs(RunsFilter(job_name=JOB_NAME), limit=CRASH_LOOP_RUNS))
    looping = len(recent) == CRASH_LOOP_RUNS and all(
        r.status == DagsterRunStatus.FAILURE and STREAM_ERROR_TAG in r.tags for r in recent
    )
    return recent if looping else []


@sensor(
    name="speed_stream_sensor",
    job=speed_stream_job,
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
