"""The Lambda merge on BigQuery (bqemulator): the stream's accepted events reach the batch layer there too.

The scenario of ``tests/test_serving_merge.py``, with the warehouse set to BigQuery: the real stream (real
broker, real Spark) commits its windows into BigQuery's realtime dataset and writes its accepted events as
Parquet in the bucket; the gold asset loads those files into the ``speed`` dataset, dbt builds on BigQuery,
and the reconciliation check reads BigQuery. The same assertions as on DuckDB then hold against BigQuery:
served windows equal the independent truth (``tests/serving_scenario.py``), W is in every model's metadata
and equals the ``batch_watermark`` row, the check is exact on the clean run and reports exactly the injected
causes after the faults. Beyond that:

* the ``speed`` tables hold exactly the rows of the bucket's ``speed/silver`` and ``speed/late`` Parquet,
  also after the second build (a rerun replaces them, never appends);
* a DuckDB build of the same input (the same bucket; the realtime tables the stream wrote to BigQuery,
  exported as the DuckDB sink's snapshots) reports the same reconciliation, number for number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery
from pyspark.sql import SparkSession

from core.bigquery import bigquery_client, table_id
from core.bigquery_load import parquet_keys
from core.bucket import Bucket
from core.contracts.silver import CONTRACTS
from core.contracts.speed import PUBLISHED_TABLES, SILVER_KEY
from core.settings import Settings, WarehouseKind
from core.warehouse import Warehouse
from embedded_broker.process import EmbeddedBroker
from silver.bigquery_load import load_silver_table
from streaming.bigquery_speed_events import load_speed_events, speed_event_tables
from streaming.sinks import BatchParquetSink
from tests import test_serving_merge as on_duckdb
from tests.conftest import bigquery_settings
from tests.emulators.bigquery import BigQueryEmulator
from tests.serving_scenario import Sent
from tests.spark_fixtures import spark_session_fixture  # noqa: F401
from tests.test_serving_merge import Phase, broker, build, landed_history  # noqa: F401

pytestmark = pytest.mark.slow
DATASETS = {"bigquery_dataset": "merge_gold", "bigquery_silver_dataset": "merge_silver",
            "bigquery_realtime_dataset": "merge_realtime"}  # fmt: skip
NOT_COMPARED = {"batch_watermark_detail"}  # holds built_at, the wall clock of each build


@dataclass
class Twin:
    """One phase built twice from the same input: on BigQuery, and on DuckDB for comparison."""

    bigquery: Phase
    duckdb: Phase


def duckdb_twin(settings: Settings) -> Settings:
    """The same deployment (bucket, warehouse folder) with the DuckDB warehouse."""
    return settings.model_copy(update={"warehouse": WarehouseKind.DUCKDB})


def fetch(client: bigquery.Client, table: str) -> pa.Table:
    return client.query(f"SELECT * FROM `{table}`").to_arrow(create_bqstorage_client=False)


def export_realtime(settings: Settings) -> None:
    """The realtime tables the stream committed to BigQuery, as the DuckDB sink publishes them (Parquet
    snapshots, timestamps as naive UTC), so a DuckDB build reads what the BigQuery build read."""
    warehouse = Warehouse.from_settings(settings)
    client = bigquery_client(warehouse.bigquery)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        for table in PUBLISHED_TABLES:
            name = table_id(warehouse.bigquery, warehouse.bigquery.realtime_dataset, table)
            arrow = fetch(client, name)
            naive = pa.schema([f.with_type(pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f
                               for f in arrow.schema])  # fmt: skip
            con.register("fetched", arrow.cast(naive))
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM fetched")
            con.unregister("fetched")
            warehouse.layout.publish_realtime_snapshot(con, table)
    finally:
        con.close()
        client.close()


def build_both(settings: Settings, reference: duckdb.DuckDBPyConnection, conf: dict[str, str]) -> Twin:
    sent = Sent.read(conf, settings.kafka_topic)
    on_bigquery = Phase(settings, reference, build(settings), sent)
    export_realtime(settings)
    twin = duckdb_twin(settings)
    return Twin(on_bigquery, Phase(twin, reference, build(twin), sent))


@pytest.fixture(scope="module")
def clean(
    bigquery_emulator: BigQueryEmulator,
    spark: SparkSession,
    broker: EmbeddedBroker,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Twin]:
    settings = bigquery_settings(
        bigquery_emulator, tmp_path_factory.mktemp("merge-bq") / "data",
        kafka_bootstrap_servers=broker.bootstrap_servers, stream_max_events_per_trigger=150, **DATASETS,
    )  # fmt: skip
    reference = landed_history(settings)
    target = Warehouse.from_settings(settings).bigquery
    client = bigquery_client(target)
    bucket = Bucket.from_settings(settings)
    for contract in CONTRACTS.values():  # the Silver asset's load, from the reference's Silver
        load_silver_table(client, target, bucket, contract)
    client.close()
    on_duckdb.stream_clean_waves(settings, broker, spark)
    yield build_both(settings, reference, broker.client_config())
    reference.close()


@pytest.fixture(scope="module")
def faulted(clean: Twin, spark: SparkSession, broker: EmbeddedBroker) -> Twin:  # noqa: F811
    settings = clean.bigquery.settings
    on_duckdb.stream_fault_waves(settings, broker, spark, clean.bigquery.reference)
    return build_both(settings, clean.bigquery.reference, broker.client_config())


def assert_speed_tables_equal_the_bucket(settings: Settings) -> int:
    """Every row of each ``speed`` table is a row of its folder's Parquet and the other way round (all the
    declared columns compared); returns the rows of ``silver_watch_events``."""
    target = Warehouse.from_settings(settings).bigquery
    bucket = Bucket.from_settings(settings)
    client = bigquery_client(target)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    counts = {}
    try:
        for table in speed_event_tables():
            columns = ", ".join(f'"{name}"' for name, _ in table.columns)
            files = [str(bucket.local_path(key)) for key in parquet_keys(bucket, table.key)]
            con.execute(
                f"CREATE OR REPLACE TABLE expected AS SELECT {columns} FROM read_parquet({files!r}, "
                "union_by_name = true, hive_partitioning = false)"
                if files
                else "CREATE OR REPLACE TABLE expected AS SELECT 1 WHERE false"
            )
            name = table_id(target, target.speed_dataset, table.name)
            con.register(
                "loaded", client.query(f"SELECT * FROM `{name}`").to_arrow(create_bqstorage_client=False)
            )
            assert [c[0] for c in con.execute("DESCRIBE loaded").fetchall()] == [n for n, _ in table.columns]
            counts[table.name] = con.execute("SELECT count(*) FROM loaded").fetchall()[0][0]
            if files:
                both = f"SELECT {columns} FROM {{}} EXCEPT ALL SELECT {columns} FROM {{}}"
                assert con.execute(both.format("loaded", "expected")).fetchall() == [], table.name
                assert con.execute(both.format("expected", "loaded")).fetchall() == [], table.name
            else:
                assert counts[table.name] == 0, table.name
            con.unregister("loaded")
    finally:
        con.close()
        client.close()
    return counts["silver_watch_events"]


def reconciliation(phase: Phase) -> dict[str, Any]:
    """The check's metadata, its ``measures`` table as numbers: the two engines sum the same floats in
    another order, and a total on a rounding boundary printed 0.01 apart (one CI run of 2026-12-03)."""
    found = {k: v.value for k, v in phase.check.metadata.items() if k not in NOT_COMPARED}
    lines = found.pop("measures").splitlines()[2:]  # below the header and its rule
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    found["measures"] = {row[0]: [float(c.rstrip("%")) for c in row[1:]] for row in cells}
    return found


def assert_same_reconciliation(bigquery_phase: Phase, duckdb_phase: Phase) -> None:
    on_bigquery, on_duckdb_ = reconciliation(bigquery_phase), reconciliation(duckdb_phase)
    measures = on_bigquery.pop("measures"), on_duckdb_.pop("measures")
    assert on_bigquery == on_duckdb_
    assert measures[0].keys() == measures[1].keys()
    for name, values in measures[0].items():  # printed to 2 decimals, the relative one to 4 (in %)
        other = measures[1][name]
        assert values[:-1] == pytest.approx(other[:-1], abs=0.0101), name
        assert values[-1] == pytest.approx(other[-1], abs=0.000101), name


def test_clean_run_loads_the_speed_layer_into_bigquery(clean: Twin) -> None:
    assert (
        assert_speed_tables_equal_the_bucket(clean.bigquery.settings) == 225
    )  # 3 waves of 75 on-time events


def test_clean_run_on_bigquery_serves_batch_truth_before_w_and_the_speed_layer_after(clean: Twin) -> None:
    on_duckdb.test_clean_run_serves_batch_truth_before_w_and_the_speed_layer_after(clean.bigquery)


def test_clean_run_reconciles_exactly_on_bigquery_as_on_duckdb(clean: Twin) -> None:
    on_duckdb.test_clean_run_reconciles_exactly(clean.bigquery)
    assert_same_reconciliation(clean.bigquery, clean.duckdb)


def test_a_rebuild_replaces_the_speed_tables(faulted: Twin) -> None:
    assert assert_speed_tables_equal_the_bucket(faulted.bigquery.settings) > 225  # not 225 + all of it


def test_faults_on_bigquery_still_serve_the_truth_and_each_session_once(faulted: Twin) -> None:
    on_duckdb.test_faults_still_serve_the_truth_and_each_session_once(faulted.bigquery)


def test_faults_reconcile_on_bigquery_as_on_duckdb(faulted: Twin) -> None:
    on_duckdb.test_reconciliation_reports_exactly_the_injected_causes(faulted.bigquery)
    assert_same_reconciliation(faulted.bigquery, faulted.duckdb)


def test_a_file_of_an_older_writer_loads_its_missing_column_as_null(clean: Twin, tmp_path: Path) -> None:
    """A sink file written before the stream recorded a column (here ``kafka_timestamp``) sits beside
    current ones in the folder: the load takes both, the older rows with NULL in that column."""
    settings = clean.bigquery.settings
    stream_bucket = Bucket.from_settings(settings)
    current = pq.read_table(stream_bucket.local_path(parquet_keys(stream_bucket, SILVER_KEY)[0]))
    bucket = Bucket.from_settings(Settings(_env_file=None, bucket_url=str(tmp_path / "bucket")))
    sink = BatchParquetSink(bucket, SILVER_KEY)  # the stream's own writer
    sink.write(current.drop_columns(["kafka_timestamp"]), 0, "event_time")
    sink.write(current, 1, "event_time")
    target = replace(Warehouse.from_settings(settings).bigquery, speed_dataset="speed_older_writer")
    client = bigquery_client(target)
    try:
        loaded = {result.table: result.rows for result in load_speed_events(client, target, bucket)}
        table = fetch(client, table_id(target, target.speed_dataset, "silver_watch_events"))
    finally:
        client.close()
    assert loaded == {"silver_watch_events": 2 * current.num_rows, "late_events": 0}
    assert table.column("kafka_timestamp").null_count == current.num_rows
    assert sorted(table.column("event_id").to_pylist()) == sorted(current.column("event_id").to_pylist() * 2)
