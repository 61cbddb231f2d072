"""The dbt project as Dagster sees it: manifest preparation in a fresh clone, the lineage, checks, policies.

No data is built here (see test_dbt_build.py); these tests load definitions and parse the project.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from dagster import AssetKey, AssetsDefinition, Definitions
from dagster._core.definitions.freshness import CronFreshnessPolicy
from dagster_dbt import DbtCliResource, DbtProject

from core.bucket import Bucket
from core.contracts.raw import RAW_TABLES
from core.dbt import DBT_PROJECT_DIR, dbt_vars, vars_args
from core.settings import Settings
from core.warehouse import Warehouse
from netflix_assets.defs.dbt import definitions as gold
from netflix_assets.defs.dbt.project import (
    PARSED_VARS_FILE,
    build_dbt_project,
    keep_partial_parse,
    manifest_is_stale,
    prepare_manifest,
    run_target_path,
)
from netflix_assets.resources import dbt_resource

MARTS = {
    "monthly_engagement", "cohort_retention", "content_performance", "content_performance_by_title",
    "genre_performance", "monthly_active_users", "monthly_active_users_by_segment",
}  # fmt: skip
# The Lambda merge (docs/serving.md): the speed layer's staging, the master dataset, serving models.
SERVING = {
    "stg_stream_batches", "stg_stream_watch_events", "int_batch_watermark", "int_user_usual_quality",
    "int_watch_candidates", "int_watch_facts_master", "batch_watermark", "stream_events_quarantine",
    "engagement_5min_batch", "engagement_daily_batch", "active_users_5min_batch", "serving_engagement_5min",
    "serving_engagement_daily", "serving_active_users_5min", "serving_monthly_active_users",
    "reconciliation_5min",
}  # fmt: skip
STAR = {
    "dim_users",
    "dim_movies",
    "dim_date",
    "fct_watch_sessions",
    "fct_reviews",
    "fct_searches",
    "fct_recommendations",
}


def vars_for(settings: Settings) -> dict[str, str]:
    return dbt_vars(Bucket.from_settings(settings), Warehouse.from_settings(settings))


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> Definitions:
    return gold.definitions(Settings(data_dir=tmp_path_factory.mktemp("dbt-defs")))


@pytest.fixture(scope="module")
def gold_assets(defs: Definitions) -> AssetsDefinition:
    [assets] = [a for a in defs.assets if isinstance(a, AssetsDefinition)]
    return assets


def test_a_fresh_clone_parses_once_and_again_only_when_the_project_changes(tmp_path: Path) -> None:
    clone = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, clone, ignore=shutil.ignore_patterns("target", "logs"))
    settings = Settings(data_dir=tmp_path / "data")
    values = vars_for(settings)
    project = build_dbt_project("duckdb", values, project_dir=clone)
    graph = clone / project.target_path
    cli = DbtCliResource(
        project_dir=str(clone), profiles_dir=str(clone), target="duckdb",
        dbt_executable=dbt_resource(settings).dbt_executable,
    )  # fmt: skip
    assert not project.manifest_path.exists() and manifest_is_stale(project, values)

    prepare_manifest(project, cli, values)
    parsed_at = project.manifest_path.stat().st_mtime_ns
    assert not manifest_is_stale(project, values)
    assert not list(graph.glob(".parse-*")), "the private parse folder was left behind"
    prepare_manifest(project, cli, values)
    assert project.manifest_path.stat().st_mtime_ns == parsed_at, "a fresh manifest was parsed again"

    model = clone / "models" / "marts" / "analytics" / "genre_performance.sql"
    parsed_at_s = project.manifest_path.stat().st_mtime
    future = parsed_at_s + 5
    os.utime(model, (future, future))
    assert manifest_is_stale(project, values)
    prepare_manifest(project, cli, values)
    assert project.manifest_path.stat().st_mtime_ns != parsed_at
    assert (graph / "partial_parse.msgpack").exists()  # what each run is seeded with

    # Another graph has its own folder: parsing it leaves this one's manifest as it is.
    bigquery = vars_for(
        Settings(data_dir=tmp_path / "data", warehouse="bigquery", bigquery_project="acme-analytics")
    )
    other = build_dbt_project("bigquery", bigquery, clone)
    assert other.target_path != project.target_path and manifest_is_stale(other, bigquery)
    os.utime(model, (parsed_at_s, parsed_at_s))  # the project unchanged since this parse again
    renamed = vars_for(Settings(data_dir=tmp_path / "data", bigquery_dataset="other_gold"))
    assert build_dbt_project("duckdb", renamed, clone).target_path != project.target_path
    assert manifest_is_stale(project, renamed), "parsed for other datasets"
    parsed_at = project.manifest_path.stat().st_mtime_ns
    prepare_manifest(other, cli, bigquery)
    assert not manifest_is_stale(project, values) and project.manifest_path.stat().st_mtime_ns == parsed_at

    # Another data folder: the same graph, so no parse at load. Its first run parses in full (dbt does when
    # --vars change) and seeds the next run, which then reuses that parse.
    moved = vars_for(Settings(data_dir=tmp_path / "elsewhere"))
    assert build_dbt_project("duckdb", moved, clone).target_path == project.target_path
    assert not manifest_is_stale(project, moved)
    full, run_1 = _parse_run(project, cli, moved, "run-1")
    assert full
    keep_partial_parse(project, clone / run_1, moved)
    assert not _parse_run(project, cli, moved, "run-2")[0]
    # A run whose parse failed leaves the seed as it was: nothing is kept under its --vars.
    failed_run = clone / run_target_path(project, "run-3")
    recorded = (graph / PARSED_VARS_FILE).read_text()
    keep_partial_parse(project, failed_run, vars_for(Settings(data_dir=tmp_path / "third")))
    assert (graph / PARSED_VARS_FILE).read_text() == recorded


def _parse_run(
    project: DbtProject, cli: DbtCliResource, values: dict[str, str], run: str
) -> tuple[bool, Path]:
    """A ``dbt parse`` in a run folder seeded as every run is: did dbt parse in full, and where?"""
    folder = run_target_path(project, run)
    invocation = cli.cli(["parse", *vars_args(values)], target_path=folder)
    names = {event.raw_event["info"]["name"] for event in invocation.stream_raw_events()}
    assert invocation.is_successful()
    return "UnableToPartialParse" in names, folder


def test_sources_are_the_spark_silver_assets(gold_assets: AssetsDefinition) -> None:
    deps = {dep.asset_key for spec in gold_assets.specs for dep in spec.deps}
    silver = {AssetKey(["silver", table]) for table in RAW_TABLES}
    assert silver <= deps
    for table in RAW_TABLES:
        [spec] = [s for s in gold_assets.specs if s.key == AssetKey(f"stg_{table}")]
        assert {d.asset_key for d in spec.deps} == {AssetKey(["silver", table])}
    speed = {s.key.path[-1]: {d.asset_key.path[-1] for d in s.deps} for s in gold_assets.specs}
    assert speed["stg_stream_watch_events"] == {"silver_watch_events", "late_events", "stg_stream_batches"}
    assert speed["stg_stream_batches"] == {"stream_batches"}


def test_models_are_gold_assets_with_owner_kinds_and_pool(gold_assets: AssetsDefinition) -> None:
    keys = {spec.key.to_user_string() for spec in gold_assets.specs}
    assert MARTS | STAR | SERVING | {f"stg_{t}" for t in RAW_TABLES} | {"int_watch_sessions_enriched"} == keys
    for spec in gold_assets.specs:
        assert spec.group_name == "gold"
        assert spec.owners == ["team:analytics"]
        assert spec.kinds == {"dbt", "duckdb"}
    assert gold_assets.op.pool == "duckdb_batch"


def test_marts_and_only_marts_have_an_hourly_freshness_deadline(gold_assets: AssetsDefinition) -> None:
    fresh = {}
    for spec in gold_assets.specs:
        if spec.freshness_policy is not None:
            fresh[spec.key.to_user_string()] = spec.freshness_policy
    assert set(fresh) == MARTS
    for policy in fresh.values():
        assert isinstance(policy, CronFreshnessPolicy)
        assert policy.deadline_cron == "0 * * * *"
        assert policy.lower_bound_delta.total_seconds() == 3600


def test_every_dbt_test_is_an_asset_check_and_every_mart_has_a_singular_one(
    gold_assets: AssetsDefinition,
) -> None:
    import json

    # The default graph's manifest: its folder depends on the target and datasets, not on the data folder.
    manifest = json.loads(
        build_dbt_project("duckdb", vars_for(Settings(_env_file=None))).manifest_path.read_text()
    )
    tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    checks = {key.name: key.asset_key.to_user_string() for key in gold_assets.check_keys}
    assert set(checks) == tests
    singular = {asset for name, asset in checks.items() if name.startswith("assert_")}
    assert singular >= MARTS


def test_the_batch_layer_runs_hourly(defs: Definitions) -> None:
    [schedule] = [s for s in defs.schedules if s.name == "batch_layer_hourly"]
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.job.name == "batch_layer"


def test_dbt_vars_point_at_the_bucket_and_the_build_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, bucket_url=str(tmp_path / "b"), duckdb_dir=tmp_path / "wh")
    values = vars_for(settings)
    assert values["silver_root"] == str(tmp_path / "b" / "silver")
    assert values["duckdb_path"] == str(tmp_path / "wh" / "batch_build.duckdb")


@pytest.mark.parametrize(("level", "writes_file_log"), [("INFO", False), ("DEBUG", True)])
def test_dbt_writes_its_own_debug_log_only_at_debug_level(
    tmp_path: Path, level: str, writes_file_log: bool
) -> None:
    settings = Settings(data_dir=tmp_path / "data", log_level=level)
    dbt = dbt_resource(settings)
    target = tmp_path / "target"
    invocation = dbt.cli(["parse", *vars_args(vars_for(settings))], target_path=target).wait()
    assert invocation.is_successful()
    assert (target / "manifest.json").exists()
    assert (target / "dbt.log").exists() is writes_file_log
    if writes_file_log:  # the detail the file is for: dbt's debug events (JSON, as dagster-dbt asks)
        levels = {json.loads(line)["info"]["level"] for line in (target / "dbt.log").read_text().splitlines()}
        assert "debug" in levels
