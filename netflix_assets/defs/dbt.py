"""Gold layer: the dbt project (``dbt_project/``) as Dagster assets on top of the Spark Silver assets.

Every dbt model is an asset in group ``gold`` and every dbt test an asset check (dagster-dbt's default);
the dbt sources carry ``meta.dagster.asset_key = ["silver", <table>]`` so the graph reads
raw -> silver -> staging -> star -> marts without any glue here. The marts carry an hourly
``FreshnessPolicy`` and an hourly schedule runs the whole batch layer.

Two things are decided here rather than left to dagster-dbt's defaults:

* **The manifest.** ``@dbt_assets`` needs ``target/manifest.json`` when the code location loads, and a
  fresh clone has none (``target/`` is not committed). ``DbtProject.prepare_if_dev()`` only helps under
  ``dagster dev``, so :func:`prepare_manifest` runs ``dbt parse`` whenever the manifest is missing, older
  than any file of the project, or parsed for another target or other ``--vars``; under a file lock, so
  the several processes Dagster starts at once parse only once. A warm load costs a few ``stat`` calls, a
  cold one a ``dbt parse`` (4-8 s here).
* **Publication.** On DuckDB, dbt builds into ``batch_build.duckdb`` (a copy of the published file) and
  only a fully successful ``dbt build`` — models *and* error-severity tests — replaces ``batch.duckdb``.
  Materializations are reported after the publish, so Dagster never claims a table readers cannot see
  yet; on failure the test results are still reported and nothing is published
  (docs/architecture.md, "Warehouse layout").
"""

import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DefaultScheduleStatus,
    Definitions,
    Failure,
    FreshnessPolicy,
    MetadataValue,
    Output,
    ScheduleDefinition,
    define_asset_job,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from netflix_assets.resources import DBT_PROJECT_DIR, dbt_resource
from netflix_assets.settings import Settings, WarehouseKind
from netflix_assets.warehouse import WarehouseLayout

GOLD_GROUP = "gold"
GOLD_OWNERS = ("team:analytics",)
MART_TAG = "mart"  # dbt tag of models/marts/analytics (dbt_project.yml): the dashboards' tables
POOL = "duckdb_batch"  # one writer of batch_build.duckdb at a time
HOURLY_CRON = "0 * * * *"
MART_FRESHNESS = FreshnessPolicy.cron(deadline_cron=HOURLY_CRON, lower_bound_delta=timedelta(hours=1))
BATCH_LAYER_GROUPS = ("raw", "silver", GOLD_GROUP)
ASSET_OP_NAME = "gold_dbt"
RUN_FOLDERS_KEPT = 5
# Files whose change makes a parsed manifest stale.
_PROJECT_SOURCES = ("models", "macros", "tests", "dbt_project.yml", "profiles.yml")


def dbt_vars(settings: Settings) -> dict[str, str]:
    """The ``--vars`` every dbt invocation gets: where Silver is and where the warehouse is, from Settings."""
    bucket = settings.resolved_bucket_url
    if not settings.is_gcs:
        bucket = str(Path(bucket).expanduser().resolve())
    values = {
        "silver_root": f"{bucket}/silver",
        "duckdb_path": str(WarehouseLayout.from_settings(settings).batch_build),
        "bigquery_dataset": settings.bigquery_dataset,
        "silver_dataset": settings.bigquery_silver_dataset,
        "bigquery_location": settings.bigquery_location,
        "bigquery_method": settings.bigquery_method,
    }
    if settings.bigquery_project:
        values["bigquery_project"] = settings.bigquery_project
    if settings.bigquery_keyfile:
        values["bigquery_keyfile"] = settings.bigquery_keyfile
    return values


def vars_args(settings: Settings) -> list[str]:
    return ["--vars", json.dumps(dbt_vars(settings), sort_keys=True)]


def build_dbt_project(settings: Settings, project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    """The dbt project for the configured warehouse target (``duckdb`` or ``bigquery``).

    The manifest stays in dbt's default ``target/`` because dagster-dbt seeds every run's private target
    folder with ``target/partial_parse.msgpack``, so a run re-parses only what changed since the load.
    """
    return DbtProject(project_dir=project_dir, profiles_dir=project_dir, target=settings.warehouse.value)


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _PROJECT_SOURCES:
        path = project_dir / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            newest = max(newest, file.stat().st_mtime)
    return newest


def _stamp_path(project: DbtProject) -> Path:
    return project.project_dir / project.target_path / "manifest.stamp"


def _stamp(project: DbtProject, settings: Settings) -> str:
    """What the manifest was parsed for: the target and the ``--vars`` (dbt re-parses fully when either
    changes, so a run only reuses ``partial_parse.msgpack`` if the load parsed with the run's values)."""
    return json.dumps({"target": project.target, "vars": dbt_vars(settings)}, sort_keys=True)


def manifest_is_stale(project: DbtProject, settings: Settings) -> bool:
    """Missing, older than a project file, or parsed for another target or other ``--vars``."""
    manifest, stamp = project.manifest_path, _stamp_path(project)
    if not manifest.exists() or not stamp.exists() or stamp.read_text() != _stamp(project, settings):
        return True
    return manifest.stat().st_mtime < _newest_source_mtime(project.project_dir)


def prepare_manifest(project: DbtProject, dbt: DbtCliResource, settings: Settings) -> Path:
    """``dbt parse`` when the manifest is stale.

    Concurrent loaders (Dagster starts several processes at once) wait on a file lock for a single parse,
    and the parse writes into a private folder whose artifacts then replace the shared ones atomically,
    so no process ever reads a half-written manifest.
    """
    if not manifest_is_stale(project, settings):
        return project.manifest_path
    target_dir = project.project_dir / project.target_path
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if manifest_is_stale(project, settings):  # another process may have parsed while we waited
                staging = Path(project.target_path) / f".parse-{os.getpid()}"
                dbt.cli(["parse", "--quiet", *vars_args(settings)], target_path=staging).wait()
                staged = project.project_dir / staging
                for name in ("partial_parse.msgpack", "semantic_manifest.json", "manifest.json"):
                    if (staged / name).exists():
                        os.replace(staged / name, target_dir / name)
                (staged / "manifest.stamp").write_text(_stamp(project, settings))
                os.replace(staged / "manifest.stamp", _stamp_path(project))
                shutil.rmtree(staged, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if not project.manifest_path.exists():
        raise FileNotFoundError(f"dbt parse ran but wrote no manifest at {project.manifest_path}")
    return project.manifest_path


class GoldTranslator(DagsterDbtTranslator):
    """Group ``gold``, analytics ownership, and the hourly freshness deadline on the marts."""

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
        return spec


def prune_run_folders(project: DbtProject, keep: int = RUN_FOLDERS_KEPT) -> None:
    """Keep the newest ``keep`` per-run target folders (dbt logs, compiled SQL, run_results) of this asset;
    dagster-dbt creates one per run and never deletes them, an hourly schedule would fill the disk."""
    target_dir = project.project_dir / project.target_path
    runs = sorted(target_dir.glob(f"{ASSET_OP_NAME}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


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


def build_gold_assets(settings: Settings, project: DbtProject) -> AssetsDefinition:
    layout = WarehouseLayout.from_settings(settings)
    on_duckdb = settings.warehouse is WarehouseKind.DUCKDB

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=GoldTranslator(),
        name=ASSET_OP_NAME,
        pool=POOL,
    )
    def gold_dbt(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        prune_run_folders(project)
        if on_duckdb:
            build = layout.prepare_batch_build()
            seeded = "a copy of the published warehouse" if build.exists() else "an empty file"
            context.log.info(f"dbt builds into {build} ({seeded}); readers keep {layout.batch_published}")
        invocation = dbt.cli(["build", *vars_args(settings)], context=context, raise_on_error=False)
        events = list(_logged(context, invocation.stream()))
        if not invocation.is_successful():
            failed = _failed_nodes(invocation)
            # Report the test outcomes (so the failing checks show in the UI) but no materialization:
            # nothing was published, readers still see the previous build.
            yield from (e for e in events if isinstance(e, AssetCheckResult | AssetCheckEvaluation))
            raise Failure(
                description="dbt build failed; the published warehouse was left unchanged. Failed nodes:\n"
                + "\n".join(failed or ["(see the dbt log above)"]),
                metadata={"failed_nodes": MetadataValue.json(failed), "dbt_target": settings.warehouse.value},
            )
        if on_duckdb:
            published = layout.publish_batch_build()
            context.log.info(f"published the new build as {published}")
        yield from events

    return gold_dbt


def definitions(settings: Settings) -> Definitions:
    project = build_dbt_project(settings)
    prepare_manifest(project, dbt_resource(settings), settings)
    gold = build_gold_assets(settings, project)
    batch_job = define_asset_job(
        "batch_layer",
        selection=AssetSelection.groups(*BATCH_LAYER_GROUPS),
        description="The whole batch path: land raw CSVs, Spark Silver, dbt staging/star/marts, with checks.",
    )
    schedule = ScheduleDefinition(
        name="batch_layer_hourly",
        job=batch_job,
        cron_schedule=HOURLY_CRON,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Recompute the batch layer every hour so the marts meet their hourly freshness deadline.",
    )
    return Definitions(assets=[gold], jobs=[batch_job], schedules=[schedule])
