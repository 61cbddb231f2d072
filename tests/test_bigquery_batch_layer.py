"""The batch layer on the BigQuery warehouse, end to end through Dagster, against bqemulator.

Raw CSVs → Spark Silver (local Spark) → the Silver asset loads each table into BigQuery's ``silver``
dataset → ``dbt build --target bigquery`` builds staging, star schema and marts in the ``netflix``
dataset. Every mart is then read back through the BigQuery API and compared, value for value, with the
independent reference computed in plain DuckDB from the same CSVs (``reference/marts.py``). A rerun of
the Silver asset replaces the loaded table instead of appending to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import duckdb
import pytest
from dagster import AssetKey, AssetsDefinition, materialize

from core.bigquery import bigquery_client
from core.bucket import Bucket
from core.contracts.silver import TABLE_ORDER
from core.serving_tables import WATERMARK_MODEL
from core.settings import Settings
from core.warehouse import Warehouse
from datagen import generate
from netflix_assets.defs.dbt import definitions as gold
from netflix_assets.defs.raw import definitions as raw
from netflix_assets.defs.silver import definitions as silver
from netflix_assets.resources import build_resources
from oncall.bigquery_reader import BigQueryWarehouse
from oncall.definitions import load_slo_book
from oncall.indicators import SLIS, Context
from oncall.readings import Readings
from reference.marts import MART_SQL, compute_reference, mart_differences
from tests.conftest import bigquery_settings
from tests.emulators.bigquery import BigQueryEmulator

pytestmark = pytest.mark.slow
SCALE = 0.02


def _assets(settings: Settings) -> tuple[list[AssetsDefinition], dict[str, Any]]:
    layers = [raw.definitions(settings), silver.definitions(settings), gold.definitions(settings)]
    assets = [a for layer in layers for a in layer.assets or [] if isinstance(a, AssetsDefinition)]
    return assets, build_resources(settings)


@pytest.fixture(scope="module")
def batch_on_bigquery(
    bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Any, duckdb.DuckDBPyConnection]]:
    settings = bigquery_settings(
        bigquery_emulator,
        tmp_path_factory.mktemp("bq-batch") / "data",
        bigquery_dataset="netflix_gold",
        bigquery_silver_dataset="netflix_silver",
    )
    bucket = Bucket.from_settings(settings)
    generate(bucket, scale=SCALE, seed=17)
    assets, resources = _assets(settings)
    result = materialize(assets, resources=resources, raise_on_error=False)
    reference = compute_reference(bucket.local_path("raw"))
    yield settings, result, reference
    reference.close()


def test_the_whole_batch_layer_builds_on_bigquery(batch_on_bigquery) -> None:
    settings, result, _ = batch_on_bigquery
    assert result.success
    failed = [
        (c.asset_key.to_user_string(), c.check_name)
        for c in result.get_asset_check_evaluations()
        if not c.passed
    ]
    assert failed == []
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {AssetKey(["silver", t]) for t in TABLE_ORDER} | {AssetKey("monthly_engagement")} <= materialized
    # Nothing was written to the DuckDB warehouse: the marts live in BigQuery only.
    assert not (settings.warehouse_dir / "batch.duckdb").exists()


def test_the_slo_monitor_dates_the_marts_by_their_build_on_bigquery(batch_on_bigquery) -> None:
    """No ``batch.duckdb`` to date on BigQuery: the monitor reads ``built_at`` of the watermark row."""
    settings, result, _ = batch_on_bigquery
    assert result.success
    target = Warehouse.from_settings(settings).bigquery
    client = bigquery_client(target)
    try:
        [(built_at,)] = client.query(
            f"SELECT built_at FROM `{target.project}.{target.dataset}.{WATERMARK_MODEL}`"
        ).result()
    finally:
        client.close()
    built = (built_at if built_at.tzinfo else built_at.replace(tzinfo=UTC)).timestamp()
    slo = next(s for s in load_slo_book(settings).slos.values() if s.sli == "marts_age")
    reader = BigQueryWarehouse(target)
    try:
        readings = Readings(None, reader)  # type: ignore[arg-type]  # the topic is not read here
        sample = SLIS[slo.sli](slo, readings, Context(monitor_started_at=0.0, traffic_expected=True))
    finally:
        reader.close()
    assert sample.details["published_at"] == pytest.approx(built, abs=1e-3)
    assert 0.0 <= sample.value <= readings.now - built + 1e-3 and sample.good is True, sample


def test_silver_in_bigquery_equals_what_spark_wrote(batch_on_bigquery) -> None:
    settings, result, _ = batch_on_bigquery
    client = bigquery_client(Warehouse.from_settings(settings).bigquery)
    for event in result.get_asset_materialization_events():
        key = event.asset_key
        if key.path[0] != "silver":
            continue
        metadata = event.materialization.metadata
        table = f"{settings.bigquery_project}.netflix_silver.{key.path[-1]}"
        assert metadata["bigquery_table"].value == table
        [(count,)] = client.query(f"SELECT count(*) FROM `{table}`").result()
        assert count == metadata["bigquery_rows"].value == metadata["rows_out"].value


def test_marts_in_bigquery_equal_the_reference(batch_on_bigquery) -> None:
    settings, _, reference = batch_on_bigquery
    client = bigquery_client(Warehouse.from_settings(settings).bigquery)
    reference.execute("ATTACH ':memory:' AS bq")
    try:
        for mart in MART_SQL:
            arrow = client.query(f"SELECT * FROM `{settings.bigquery_project}.netflix_gold.{mart}`").to_arrow(
                create_bqstorage_client=False
            )
            reference.register("fetched", arrow)
            reference.execute(f"CREATE TABLE bq.main.{mart} AS SELECT * FROM fetched")
            reference.unregister("fetched")
        assert mart_differences(reference, "bq") == {}
    finally:
        reference.execute("DETACH bq")


def test_a_rerun_of_silver_replaces_the_bigquery_table(batch_on_bigquery) -> None:
    settings, first, _ = batch_on_bigquery
    assets, resources = _assets(settings)
    selection = [AssetKey(["silver", "users"]), AssetKey(["silver", "movies"])]
    again = materialize(assets, resources=resources, selection=selection)
    assert again.success
    client = bigquery_client(Warehouse.from_settings(settings).bigquery)
    rows = {
        e.asset_key: e.materialization.metadata["rows_out"].value
        for e in first.get_asset_materialization_events()
        if e.asset_key in selection
    }
    for key in selection:
        [(count,)] = client.query(
            f"SELECT count(*) FROM `{settings.bigquery_project}.netflix_silver.{key.path[-1]}`"
        ).result()
        assert count == rows[key]  # not twice as many
