"""The dbt assets build the warehouse through Dagster, publish it only when everything passes.

Silver here is written by the independent reference (reference/marts.py) from generated CSVs, so
these tests need no Spark; test_marts_correctness.py runs the real Spark Silver end to end.
"""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import AssetCheckSeverity, AssetsDefinition, materialize

from core.bucket import Bucket
from core.dbt import DBT_PROJECT_DIR
from core.settings import Settings
from core.warehouse import WarehouseLayout, connect_serving
from datagen import generate
from netflix_assets.defs.dbt import definitions as gold
from netflix_assets.resources import build_resources
from reference.marts import compute_reference, mart_differences, write_silver_parquet
from streaming.realtime_store import RealtimeStore
from tests.test_streaming_store import record, session_table, sessions

pytestmark = pytest.mark.slow  # real dbt builds through Dagster (about a minute)


def build_gold(settings: Settings):
    [assets] = [a for a in gold.definitions(settings).assets if isinstance(a, AssetsDefinition)]
    return materialize([assets], resources=build_resources(settings), raise_on_error=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """Generated CSVs -> reference Silver Parquet -> dbt build via Dagster; yields (settings, result, ref)."""
    root = tmp_path_factory.mktemp("dbt-build")
    settings = Settings(data_dir=root / "data")
    bucket = Bucket.from_settings(settings)
    generate(bucket, scale=0.02, seed=7)
    reference = compute_reference(bucket.local_path("raw"))
    write_silver_parquet(reference, bucket.local_path("silver"))
    result = build_gold(settings)
    yield settings, result, reference
    reference.close()


def test_build_materializes_every_model_and_passes_every_check(built) -> None:
    _, result, _ = built
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) > 100
    failed = [(c.asset_check_key.name, c.severity) for c in checks if not c.passed]
    assert failed == []
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert len(materialized) == 37 and "monthly_engagement" in materialized


def test_build_is_published_and_readable_through_connect_serving(built) -> None:
    settings, _, reference = built
    layout = WarehouseLayout.from_settings(settings)
    assert layout.batch_published.exists() and not layout.batch_build.exists()
    con = connect_serving(settings)
    try:
        mau = con.execute("SELECT sum(total_sessions) FROM batch.main.monthly_active_users").fetchall()[0][0]
        sessions = reference.execute("SELECT count(*) FROM silver_watch_history").fetchall()[0][0]
        assert mau == sessions > 0
    finally:
        con.close()


def _publish(store: RealtimeStore, batch_id: int) -> None:
    """Commit micro-batch ``batch_id`` (five sessions) and publish the snapshots, as the sink does."""
    batch = sessions(batch_id, 5)
    end = max(s["window_start"] for s in batch) + timedelta(minutes=5)
    store.commit_batch(record(batch_id, len(batch), end), session_table(batch))
    store.publish()


def test_a_serving_connection_reads_the_realtime_snapshots_it_opened_with(built, tmp_path: Path) -> None:
    """connect_serving pins the realtime snapshots for the views inside batch.duckdb too (the serving views,
    the ledger's staging view): a micro-batch published after the connection opened does not reach its
    queries, so no replacement can change a file under them; a new connection sees it. The warehouse is
    copied to another folder, so the views' compiled-in published path is not the one written here."""
    settings, _, _ = built
    live = Settings(data_dir=tmp_path / "data")
    layout = WarehouseLayout.from_settings(live)
    layout.root.mkdir(parents=True)
    shutil.copyfile(WarehouseLayout.from_settings(settings).batch_published, layout.batch_published)
    store = RealtimeStore(layout)
    ledger = "SELECT count(*) FROM batch.main.stg_stream_batches"
    try:
        _publish(store, 0)
        opened = connect_serving(live)
        before = opened.execute(ledger).fetchall()[0][0]
        _publish(store, 1)
        again = opened.execute(ledger).fetchall()[0][0]
        fresh = connect_serving(live)
        after = fresh.execute(ledger).fetchall()[0][0]
        opened.close()
        fresh.close()
    finally:
        store.close()
    assert (before, again, after) == (1, 1, 2)


def test_marts_equal_the_reference_on_the_same_silver(built) -> None:
    settings, _, reference = built
    published = WarehouseLayout.from_settings(settings).batch_published
    reference.execute(f"ATTACH '{published}' AS dbt_build (READ_ONLY)")
    try:
        assert mart_differences(reference, "dbt_build") == {}
    finally:
        reference.execute("DETACH dbt_build")


def test_yaml_documents_exactly_the_columns_each_model_has(built) -> None:
    settings, _, _ = built
    documented: dict[str, dict[str, str]] = {}
    for path in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            documented[model["name"]] = {
                c["name"]: c.get("description", "") for c in model.get("columns", [])
            }
    con = duckdb.connect(str(WarehouseLayout.from_settings(settings).batch_published), read_only=True)
    try:
        tables = {
            name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        assert tables and tables <= set(documented)
        for table in tables:
            columns = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            ).fetchall()
            actual = [name for (name,) in columns]
            assert set(actual) == set(documented[table]), table
            assert all(documented[table].values()), f"{table} has undocumented columns"
        money = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE column_name LIKE '%watch_time_minutes' OR column_name = 'watch_duration_minutes'"
        ).fetchall()
        assert money and all(t.startswith("DECIMAL") and t.endswith(",2)") for _, _, t in money), money
    finally:
        con.close()


def test_a_failing_test_publishes_nothing(built, tmp_path: Path) -> None:
    """A duplicate user in Silver fails unique_stg_users_user_id: the previous build stays online."""
    settings, _, _ = built
    broken = Settings(data_dir=tmp_path / "data")
    shutil.copytree(
        Bucket.from_settings(settings).local_path("silver"), Bucket.from_settings(broken).local_path("silver")
    )
    layout = WarehouseLayout.from_settings(broken)
    layout.root.mkdir(parents=True)
    shutil.copyfile(WarehouseLayout.from_settings(settings).batch_published, layout.batch_published)
    before = layout.batch_published.read_bytes()
    users = Bucket.from_settings(broken).local_path("silver/users")
    duplicate = f"SELECT * FROM '{users}/*.parquet' LIMIT 1"
    duckdb.execute(f"COPY ({duplicate}) TO '{users}/part-duplicate.parquet' (FORMAT parquet)")

    result = build_gold(broken)

    assert not result.success
    failed = {
        c.asset_check_key.name: c.severity for c in result.get_asset_check_evaluations() if not c.passed
    }
    assert failed == {"unique_stg_users_user_id": AssetCheckSeverity.ERROR}
    assert result.get_asset_materialization_events() == []
    assert layout.batch_published.read_bytes() == before
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "unique_stg_users_user_id" in failure.event_specific_data.error.message


def test_a_stream_publishing_throughout_the_build_does_not_fail_it(built, tmp_path: Path) -> None:
    """The sink replaces its snapshots after every micro-batch while the build reads them (the ledger, through
    stg_stream_batches): a read that meets a replacement is retried (profiles.yml ``retries``), not failed.
    Without the retries this build failed 2 times in 7 ("TProtocolException: Invalid data")."""
    settings, _, _ = built
    live = Settings(data_dir=tmp_path / "data")
    shutil.copytree(
        Bucket.from_settings(settings).local_path("silver"), Bucket.from_settings(live).local_path("silver")
    )
    store = RealtimeStore(WarehouseLayout.from_settings(live))
    for batch_id in range(50):  # a ledger of some size: its Parquet layout changes with every batch
        batch = sessions(batch_id, 5)
        store.commit_batch(
            record(batch_id, len(batch), max(s["window_start"] for s in batch)), session_table(batch)
        )
    stop, published = threading.Event(), [0]

    def publish_forever() -> None:
        batch_id = 50
        while not stop.wait(0.01):
            _publish(store, batch_id)
            published[0], batch_id = published[0] + 1, batch_id + 1

    writer = threading.Thread(target=publish_forever)
    writer.start()
    try:
        result = build_gold(live)
    finally:
        stop.set()
        writer.join(30)
        store.close()
    failures = [
        e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]
    assert result.success, failures
    assert published[0] > 20  # the snapshots were replaced all through the build
