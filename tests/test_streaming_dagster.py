"""The speed layer in Dagster: real materializations per micro-batch, the sensor's decisions, termination.

Real broker, real Spark, real ``dagster.materialize``. Expected counts come from what the topic holds
(faults are tagged in message headers by the producer), read back independently of the stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    SensorResult,
    build_sensor_context,
    materialize,
)

from core.bucket import Bucket
from core.contracts.speed import checkpoint_key
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from netflix_assets.defs.speed import assets as speed
from netflix_assets.defs.speed import definitions as speed_defs
from netflix_assets.defs.speed import stream_run
from netflix_assets.defs.speed.jobs import JOB_NAME
from netflix_assets.defs.speed.sensors import CRASH_LOOP_RUNS
from netflix_assets.resources import build_resources
from producer.publish import FAULT_HEADER, LATE, produce
from producer.sources import Catalog, synthetic_source
from streaming.checkpoint import read_progress
from tests.test_streaming_exactly_once import read_topic, stream_env

pytestmark = pytest.mark.slow
EVENTS = 3_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, EmbeddedBroker]]:
    data_dir = tmp_path_factory.mktemp("speed_dagster") / "data"
    with EmbeddedBroker(data_dir / "broker", record_state=False) as broker:
        settings = Settings(
            _env_file=None, data_dir=data_dir, kafka_bootstrap_servers=broker.bootstrap_servers,
            spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="1g",
            stream_max_events_per_trigger=1_000,
        )  # fmt: skip
        generate(Bucket.from_settings(settings), 0.02, seed=3)
        yield settings, broker


def _definitions(settings: Settings) -> Definitions:
    return Definitions.merge(
        speed_defs.definitions(settings), Definitions(resources=build_resources(settings))
    )


def _sensor_result(settings: Settings, instance: DagsterInstance) -> Any:
    defs = _definitions(settings)
    sensor_def = defs.get_sensor_def("speed_stream_sensor")
    resources = build_resources(settings)
    wanted = {k: resources[k] for k in ("kafka", "bucket", "warehouse")}
    with build_sensor_context(instance=instance, resources=wanted) as context:
        return sensor_def(context)


def test_stream_materializes_every_micro_batch_and_the_sensor_follows_the_lag(
    stack: tuple[Settings, EmbeddedBroker],
) -> None:
    settings, broker = stack
    conf = broker.client_config()
    bucket = Bucket.from_settings(settings)
    report = produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=1),
        rate=0,
        count=EVENTS,
        poison_rate=0.05,
        late_rate=0.05,
        seed=2,
        client_conf=conf,
    )
    assert report.acked == EVENTS
    instance = DagsterInstance.ephemeral()

    launch = _sensor_result(settings, instance)
    assert isinstance(launch, SensorResult) and len(launch.run_requests) == 1
    assert launch.run_requests[0].tags["netflix/lag"] == str(EVENTS)
    observed = [e for e in launch.asset_events if e.asset_key == speed.TOPIC_KEY]
    assert observed and observed[0].metadata["messages"].value == EVENTS

    # A run already in progress: no second launch.
    instance.add_run(DagsterRun(job_name=JOB_NAME, run_id="f" * 36, status=DagsterRunStatus.STARTED))
    busy = _sensor_result(settings, instance)
    assert not busy.run_requests and "is STARTED" in (
        busy.skip_reason.skip_message if busy.skip_reason else ""
    )
    instance.delete_run("f" * 36)

    # Runs interrupted by a shutdown (make run's Ctrl-C marks them failed) do not stop the relaunches...
    interrupted = [f"{i}" * 36 for i in range(CRASH_LOOP_RUNS)]
    for run_id in interrupted:
        instance.add_run(DagsterRun(job_name=JOB_NAME, run_id=run_id, status=DagsterRunStatus.FAILURE))
    assert len(_sensor_result(settings, instance).run_requests) == 1
    # ... runs whose stream keeps failing (e.g. the broker lost data the checkpoint references) do.
    failed = [f"{i}" * 36 for i in range(5, 5 + CRASH_LOOP_RUNS)]
    for run_id in failed:
        instance.add_run(
            DagsterRun(job_name=JOB_NAME, run_id=run_id, status=DagsterRunStatus.FAILURE,
                       tags={stream_run.STREAM_ERROR_TAG: "StreamFailedError"})
        )  # fmt: skip
    looping = _sensor_result(settings, instance)
    assert not looping.run_requests and failed[-1] in looping.skip_reason.skip_message
    instance.add_run(DagsterRun(job_name=JOB_NAME, run_id="c" * 36, status=DagsterRunStatus.CANCELED))
    assert len(_sensor_result(settings, instance).run_requests) == 1  # an operator's run ended cleanly
    for run_id in [*interrupted, *failed, "c" * 36]:
        instance.delete_run(run_id)

    defs = _definitions(settings)
    stream_asset = defs.get_assets_def(AssetKey(speed.BRONZE))
    result = materialize(
        [stream_asset],
        resources=build_resources(settings),
        instance=instance,
        run_config={"ops": {"speed_stream": {"config": {"available_now": True}}}},
    )
    assert result.success
    per_batch: dict[str, list[Any]] = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            if "batch_id" in materialization.metadata:
                per_batch.setdefault(materialization.asset_key.to_user_string(), []).append(
                    materialization.metadata
                )
    assert set(per_batch) == {spec.key.to_user_string() for spec in speed.SPECS}

    messages = read_topic(conf, settings.kafka_topic)
    faults = Counter(m["headers"].get(FAULT_HEADER, b"").decode() or None for m in messages)
    poison = sum(n for kind, n in faults.items() if kind not in (None, LATE))
    engagement = per_batch[speed.ENGAGEMENT]
    assert sum(m["rows_in"].value for m in engagement) == len(messages) == EVENTS
    assert sum(m["dead_letters"].value for m in engagement) == poison
    assert sum(m["late"].value for m in engagement) == faults[LATE]
    assert sum(m["rows_out"].value for m in engagement) == EVENTS - poison - faults[LATE]
    assert sum(m["legacy_v0"].value for m in engagement) == 0  # our producer sends no legacy v0 events
    assert len(engagement) >= 3  # 1,000 events per trigger
    for metadata in engagement:
        assert {"input_offsets", "watermark", "batch_duration_s", "latency_p50_s", "latency_p95_s"} <= set(
            metadata
        )
        assert metadata["latency_p50_s"].value <= metadata["latency_p95_s"].value

    settled = _sensor_result(settings, instance)
    assert not settled.run_requests and "no lag" in settled.skip_reason.skip_message


def test_terminating_the_run_stops_the_query_between_micro_batches(
    stack: tuple[Settings, EmbeddedBroker], tmp_path: Path
) -> None:
    """SIGINT to a process materializing the stream (what a UI termination delivers to the run) ends it
    cleanly: the run reports the stop, the process exits, and no planned batch is left uncommitted."""
    settings, broker = stack
    bucket = Bucket.from_settings(settings)
    produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=7),
        rate=0,
        count=2_000,
        client_conf=broker.client_config(),
    )
    script = textwrap.dedent(
        """
        from dagster import AssetKey, Definitions, materialize
        from core.settings import get_settings
        from netflix_assets.defs.speed.assets import BRONZE
        from netflix_assets.defs.speed.definitions import definitions
        from netflix_assets.resources import build_resources
        settings = get_settings()
        resources = build_resources(settings)
        defs = Definitions.merge(definitions(settings), Definitions(resources=resources))
        config = {"ops": {"speed_stream": {"config": {"trigger_seconds": 2}}}}
        materialize([defs.get_assets_def(AssetKey(BRONZE))], resources=resources, run_config=config,
                    raise_on_error=False)
        """
    )
    log = tmp_path / "run.log"
    env = {**stream_env(settings), "NETFLIX_STREAM_MAX_EVENTS_PER_TRIGGER": "500"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        before = read_progress(bucket, checkpoint_key()).committed_batch or 0
        deadline = time.monotonic() + 240
        while (read_progress(bucket, checkpoint_key()).committed_batch or 0) < before + 1:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(180) is not None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "run terminated: stopping the streaming query after its current micro-batch" in text, text[-3000:]
    progress = read_progress(bucket, checkpoint_key())
    assert progress.planned_batch == progress.committed_batch, text[-3000:]


def test_a_stream_that_fails_tags_its_run_for_the_sensor(
    stack: tuple[Settings, EmbeddedBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag is what tells the sensor's crash-loop guard a failure from a shutdown's interruption.

    The failure itself is stood in for here (the real ones, e.g. a broker that lost data, are the broker
    restart tests'); what is checked is the Dagster wiring from the stream's error to the run's tag.
    """
    from streaming.job import StreamFailedError

    def failing_stream(*_args: Any, **_kwargs: Any) -> Any:
        raise StreamFailedError("the broker lost data the checkpoint references")

    monkeypatch.setattr(stream_run, "run_stream", failing_stream)
    settings, _ = stack
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [_definitions(settings).get_assets_def(AssetKey(speed.BRONZE))],
        resources=build_resources(settings),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.tags.get(stream_run.STREAM_ERROR_TAG) == "StreamFailedError"
