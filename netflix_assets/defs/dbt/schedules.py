"""The hourly batch layer: one job over raw, Silver and gold, scheduled so the marts meet their hourly SLO.

Executor: in-process. The job is a chain (six raw profiles of about a second each, then one Spark Silver
step, then one ``dbt build``); nothing in it can use a second core that Spark and dbt do not already use,
and the multiprocess executor starts a Python per step that imports the whole code location (~3 s of CPU
each: eight steps, ~25 s of CPU on a 2-core machine, measured in docs/benchmarks.md) for steps that take
a second. The tag keeps a second batch run queued behind the first (``dagster.yaml`` written by
``netflix-lambda up``).
"""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
)

from netflix_assets.defs.dbt.assets import GOLD_GROUP, HOURLY_CRON

BATCH_LAYER_GROUPS = ("raw", "silver", GOLD_GROUP)

batch_layer_job = define_asset_job(
    "batch_layer",
    selection=AssetSelection.groups(*BATCH_LAYER_GROUPS),
    description="The whole batch path: land raw CSVs, Spark Silver, dbt staging/star/marts, with checks.",
    tags={"netflix/layer": "batch"},
    executor_def=in_process_executor,
)

batch_layer_hourly = ScheduleDefinition(
    name="batch_layer_hourly",
    job=batch_layer_job,
    cron_schedule=HOURLY_CRON,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Recompute the batch layer every hour so the marts meet their hourly freshness deadline.",
)
