"""The long-running streaming job (one run = one Structured Streaming query) and the run states the sensor
treats as "a stream is already on its way"."""

from dagster import AssetSelection, DagsterRunStatus, define_asset_job

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
)
