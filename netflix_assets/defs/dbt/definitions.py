"""The gold layer's definitions: the dbt assets (manifest prepared at load) and the hourly batch schedule."""

from dagster import Definitions

from core.bucket import Bucket
from core.dbt import dbt_vars
from core.settings import Settings
from core.warehouse import Warehouse
from netflix_assets.defs.dbt.assets import build_gold_assets
from netflix_assets.defs.dbt.project import build_dbt_project, prepare_manifest
from netflix_assets.defs.dbt.schedules import batch_layer_hourly, batch_layer_job
from netflix_assets.defs.serving.links import dashboard_links
from netflix_assets.resources import dbt_resource


def definitions(settings: Settings) -> Definitions:
    values = dbt_vars(Bucket.from_settings(settings), Warehouse.from_settings(settings))
    project = build_dbt_project(settings.warehouse.value, values)
    prepare_manifest(project, dbt_resource(settings), values)
    job = batch_layer_job(settings)
    return Definitions(
        assets=[build_gold_assets(project, dashboard_links(settings))],
        jobs=[job],
        schedules=[batch_layer_hourly(job)],
    )
