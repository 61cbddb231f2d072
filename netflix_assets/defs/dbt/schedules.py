"""The hourly batch layer: one job over raw, Silver and gold, scheduled so the marts meet their hourly SLO.

Executor: in-process, in a run process that yields the CPU to the stream (``defs/executors.py`` says why).
The tag keeps a second batch run queued behind the first (``dagster.yaml`` written by
``netflix-lambda up``).
"""

from typing import TYPE_CHECKING

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    define_asset_job,
)

from core.settings import Settings
from netflix_assets.defs.dbt.assets import GOLD_GROUP, HOURLY_CRON
from netflix_assets.defs.executors import in_process_yielding_cpu

if TYPE_CHECKING:  # what define_asset_job returns; not exported at the top of the package
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

BATCH_LAYER_GROUPS = ("raw", "silver", GOLD_GROUP)
BATCH_JOB = "batch_layer"
BATCH_MAX_RUNTIME_S = 55 * 60


def batch_layer_job(settings: Settings) -> "UnresolvedAssetJobDefinition":
    return define_asset_job(
        BATCH_JOB,
        selection=AssetSelection.groups(*BATCH_LAYER_GROUPS),
        description="The whole batch path: land raw CSVs, Spark Silver, dbt staging/star/marts, with checks.",
        # One batch run at a time (dagster.yaml); a run still going after 55 minutes is stuck, not slow: run
        # monitoring fails it before the next hourly run is due.
        tags={"netflix/layer": "batch", "dagster/max_runtime": str(BATCH_MAX_RUNTIME_S)},
        executor_def=in_process_yielding_cpu(settings.batch_niceness),
    )


def batch_layer_hourly(job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    return ScheduleDefinition(
        name="batch_layer_hourly",
        job=job,
        cron_schedule=HOURLY_CRON,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Recompute the batch layer every hour so the marts meet their hourly freshness deadline.",
    )
