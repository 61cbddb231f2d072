"""The long-running streaming job (one run = one Structured Streaming query) and the run states the sensor
treats as "a stream is already on its way".

Executor: in-process, at normal priority (``defs/executors.py``). The job is one step (the
``speed_stream`` multi-asset); a process for it would import the whole code location a second time before
Spark even starts, straight off the first realtime numbers. A UI termination reaches the step in the run
process the same way (``DagsterExecutionInterruptedError`` in the main thread, ``stream_run.py``).
"""

from dagster import AssetSelection, DagsterRunStatus, define_asset_job, in_process_executor

from netflix_assets.defs.speed.assets import SPECS

JOB_NAME = "speed_stream_job"
ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]

speed_stream_job = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.assets(*[spec.key for spec in SPECS]),
    description="The long-running speed layer: Kafka → Bronze/Silver/dead letters/late → warehouse.",
    tags={"netflix/layer": "speed"},
    executor_def=in_process_executor,
)
