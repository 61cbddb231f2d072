"""The hourly batch layer: one job over raw, Silver and gold, scheduled so the marts meet their hourly SLO."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from netflix_assets.defs.dbt.assets import GOLD_GROUP, HOURLY_CRON

BATCH_LAYER_GROUPS = ("raw", "silver", GOLD_GROUP)
BATCH_MAX_RUNTIME_S = 55 * 60

batch_layer_job = define_asset_job(
    "batch_layer",
    selection=AssetSelection.groups(*BATCH_LAYER_GROUPS),
    description="The whole batch path: land raw CSVs, Spark Silver, dbt staging/star/marts, with checks.",
    # One batch run at a time (deploy/dagster.yaml); a run still going after 55 minutes is stuck, not slow:
    # run monitoring fails it before the next hourly run is due.
    tags={"netflix/layer": "batch", "dagster/max_runtime": str(BATCH_MAX_RUNTIME_S)},
)

batch_layer_hourly = ScheduleDefinition(
    name="batch_layer_hourly",
    job=batch_layer_job,
    cron_schedule=HOURLY_CRON,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Recompute the batch layer every hour so the marts meet their hourly freshness deadline.",
)
