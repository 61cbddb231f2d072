"""Gold layer: the dbt project (``dbt_project/``) as Dagster assets on top of the Spark Silver assets.

Every dbt model is an asset in group ``gold`` and every dbt test an asset check (dagster-dbt's default);
the dbt sources carry ``meta.dagster.asset_key = ["silver", <table>]`` so the graph reads
raw -> silver -> staging -> star -> marts without any glue here. The marts carry an hourly
``FreshnessPolicy`` (the hourly schedule is in ``schedules.py``).

**Publication.** On DuckDB, dbt builds into ``batch_build.duckdb`` (a copy of the published file) and only a
fully successful ``dbt build`` — models *and* error-severity tests — replaces ``batch.duckdb``.
Materializations are reported after the publish, so Dagster never claims a table readers cannot see yet;
on failure the test results are still reported and nothing is published (docs/architecture.md,
"Warehouse layout"). Where Silver and the warehouse are reaches dbt as ``--vars`` built from the run's
bucket and warehouse resources (``core/dbt.py``).
"""

from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    Failure,
    FreshnessPolicy,
    MetadataValue,
    Output,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from core.bucket import Bucket
from core.dbt import dbt_vars, vars_args
from core.serving_tables import build_tables, serving_tables
from core.settings import WarehouseKind
from core.warehouse import BigQueryTarget
from netflix_assets.defs.dbt.project import (
    ASSET_OP_NAME,
    keep_partial_parse,
    prune_run_folders,
    run_target_path,
)
from netflix_assets.defs.serving.links import DASHBOARD_KEY
from netflix_assets.defs.serving.watermark import read_watermark, watermark_metadata
from netflix_assets.resources import BucketResource, WarehouseResource

GOLD_GROUP = "gold"
GOLD_OWNERS = ("team:analytics",)
MART_TAG = "mart"  # dbt tag of models/marts/analytics (dbt_project.yml): the dashboards' tables
POOL = "duckdb_batch"  # one writer of batch_build.duckdb at a time
HOURLY_CRON = "0 * * * *"
MART_FRESHNESS = FreshnessPolicy.cron(deadline_cron=HOURLY_CRON, lower_bound_delta=timedelta(hours=1))


class GoldTranslator(DagsterDbtTranslator):
    """Group ``gold``, analytics ownership, the hourly freshness deadline on the marts, and the URL of the
    dashboard that shows a model (``links``: model name → URL metadata)."""

    def __init__(self, links: Mapping[str, MetadataValue] | None = None) -> None:
        super().__init__()
        self.links = dict(links or {})

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GOLD_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return list(GOLD_OWNERS)

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props.get("resource_type") == "model" and MART_TAG in (props.get("tags") or []):
            spec = spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        if props.get("resource_type") == "model" and props.get("name") in self.links:
            spec = spec.merge_attributes(metadata={DASHBOARD_KEY: self.links[props["name"]]})
        return spec


def _logged(context: AssetExecutionContext, events: Iterable[Any]) -> Iterator[Any]:
    """Pass dbt's events through, logging progress as they arrive (they are reported after the publish)."""
    total, built = len(context.selected_asset_keys), 0
    for event in events:
        if isinstance(event, Output | AssetMaterialization):
            built += 1
            key = getattr(event, "asset_key", None) or event.output_name
            context.log.info(f"dbt built {key} ({built}/{total})")
        elif isinstance(event, AssetCheckResult) and not event.passed:
            context.log.warning(
                f"dbt test {event.check_name} on {event.asset_key} failed ({event.severity.value})"
            )
        yield event


def _failed_nodes(invocation: Any) -> list[str]:
    """The nodes dbt reported as failed, from run_results.json (absent when dbt died before running)."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # a missing or unreadable artifact must not hide the real failure
        return []
    return [
        f"{r['unique_id']}: {r['status']}" + (f" ({r['message']})" if r.get("message") else "")
        for r in results
        if r.get("status") in ("error", "fail", "runtime error")
    ]


def _with_watermark(events: Iterable[Any], watermark: Mapping[str, Any]) -> Iterator[Any]:
    """Every model's materialization carries the batch watermark W of the build it belongs to."""
    for event in events:
        if isinstance(event, Output | AssetMaterialization):
            yield event.with_metadata({**event.metadata, **watermark})
        else:
            yield event


def _load_speed_layer(context: AssetExecutionContext, target: BigQueryTarget, bucket: Bucket) -> None:
    """BigQuery: the serving models' speed-layer sources, before dbt reads them. The realtime tables are the
    stream's sink (created empty if no stream ran yet); the event tables are reloaded from the bucket's
    speed Parquet, so the master dataset merges every event the stream accepted (docs/serving.md)."""
    # BigQuery only: see core.bigquery
    from core.bigquery import bigquery_client
    from streaming.bigquery_speed_events import load_speed_events
    from streaming.bigquery_store import ensure_realtime_sources

    client = bigquery_client(target)
    try:
        ensure_realtime_sources(client, target)
        for loaded in load_speed_events(client, target, bucket):
            context.log.info(
                f"speed layer: loaded {loaded.rows:,} event(s) from {loaded.files} file(s) into "
                f"{loaded.table_id} (replacing it) in {loaded.seconds:.1f} s"
            )
    finally:
        client.close()


def build_gold_assets(
    project: DbtProject, links: Mapping[str, MetadataValue] | None = None
) -> AssetsDefinition:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=GoldTranslator(links),
        name=ASSET_OP_NAME,
        pool=POOL,
    )
    def gold_dbt(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        bucket: BucketResource,
        warehouse: WarehouseResource,
    ) -> Iterator[Any]:
        prune_run_folders(project)
        target = warehouse.get()
        layout, on_duckdb = target.layout, target.kind is WarehouseKind.DUCKDB
        if on_duckdb:
            build = layout.prepare_batch_build()
            seeded = "a copy of the published warehouse" if build.exists() else "an empty file"
            context.log.info(f"dbt builds into {build} ({seeded}); readers keep {layout.batch_published}")
        else:
            _load_speed_layer(context, target.bigquery, bucket.get())
        values = dbt_vars(bucket.get(), target)
        run_target = run_target_path(project, context.run.run_id)
        invocation = dbt.cli(
            ["build", *vars_args(values)], context=context, raise_on_error=False, target_path=run_target
        )
        events = list(_logged(context, invocation.stream()))
        keep_partial_parse(project, invocation.target_path, values)
        if not invocation.is_successful():
            failed = _failed_nodes(invocation)
            # Report the test outcomes (so the failing checks show in the UI) but no materialization:
            # nothing was published, readers still see the previous build.
            yield from (e for e in events if isinstance(e, AssetCheckResult | AssetCheckEvaluation))
            raise Failure(
                description="dbt build failed; the published warehouse was left unchanged. Failed nodes:\n"
                + "\n".join(failed or ["(see the dbt log above)"]),
                metadata={"failed_nodes": MetadataValue.json(failed), "dbt_target": target.kind.value},
            )
        if on_duckdb:
            with build_tables(layout.batch_build) as tables:
                row = read_watermark(tables)
            published = f"published the new build as {layout.publish_batch_build()}"
        else:
            with serving_tables(target) as tables:
                row = read_watermark(tables)
            published = f"the build is live in {target.bigquery.project}.{target.bigquery.dataset}"
        context.log.info(published + (f"; batch watermark W = {row['batch_watermark']} UTC" if row else ""))
        watermark = watermark_metadata(row) if row else {}
        yield from _with_watermark(events, watermark)

    return gold_dbt
