"""Silver into BigQuery, against bqemulator: one replacing load job per table, from a local or a gs:// bucket.

Silver-shaped Parquet comes from the independent reference (``reference/marts.py``, plain DuckDB from
generated CSVs), not from the loader's own code; what BigQuery holds afterwards is read back through the
BigQuery API and compared with the files row for row.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from google.cloud import bigquery

from core import bigquery_load
from core.bigquery import bigquery_client
from core.bucket import Bucket
from core.contracts.silver import CONTRACTS, TABLE_ORDER
from core.settings import Settings
from core.warehouse import BigQueryTarget
from datagen import generate
from reference.marts import compute_reference, write_silver_parquet
from silver.bigquery_load import SilverLoadError, load_config, load_silver_table, loaded_columns
from tests.conftest import BIN, free_port, stop_process, wait_for_port
from tests.emulators.bigquery import BigQueryEmulator


@pytest.fixture(scope="module")
def silver_bucket(tmp_path_factory: pytest.TempPathFactory) -> Bucket:
    """Generated CSVs (scale 0.01) and Silver Parquet written by the reference, in a local bucket."""
    bucket = Bucket.from_settings(
        Settings(_env_file=None, bucket_url=str(tmp_path_factory.mktemp("silver-bq") / "bucket"))
    )
    generate(bucket, 0.01, seed=21)
    con = compute_reference(bucket.local_path("raw"))
    write_silver_parquet(con, bucket.local_path("silver"))
    con.close()
    return bucket


LEGACY_NAMES = {"INTEGER": "INT64", "BOOLEAN": "BOOL", "FLOAT": "FLOAT64"}  # BigQuery answers either


def target_of(emulator: BigQueryEmulator, silver_dataset: str) -> BigQueryTarget:
    return BigQueryTarget(
        project=emulator.project, silver_dataset=silver_dataset, api_endpoint=emulator.endpoint
    )


def files_rows(bucket: Bucket, table: str) -> list[tuple]:
    """The table's rows as the Parquet files hold them (the loaded columns, sorted)."""
    columns = ", ".join(loaded_columns(CONTRACTS[table]))
    glob = bucket.local_path(f"silver/{table}")
    return sorted(
        duckdb.sql(
            f"SELECT {columns} FROM read_parquet('{glob}/**/*.parquet', hive_partitioning=false)"
        ).fetchall(),
        key=repr,
    )


def bigquery_rows(client: bigquery.Client, table_id: str, table: str) -> list[tuple]:
    columns = ", ".join(loaded_columns(CONTRACTS[table]))
    arrow = client.query(f"SELECT {columns} FROM `{table_id}`").to_arrow(create_bqstorage_client=False)
    return sorted(duckdb.from_arrow(arrow).fetchall(), key=repr)


def test_every_table_loads_row_for_row_and_a_rerun_replaces_it(
    bigquery_emulator: BigQueryEmulator, silver_bucket: Bucket
) -> None:
    target = target_of(bigquery_emulator, "silver_local")
    client = bigquery_client(target)
    for table in TABLE_ORDER:
        first = load_silver_table(client, target, silver_bucket, CONTRACTS[table])
        again = load_silver_table(client, target, silver_bucket, CONTRACTS[table])  # a rerun of the asset
        expected = files_rows(silver_bucket, table)
        assert first.rows == again.rows == len(expected) > 0, table
        assert bigquery_rows(client, again.table_id, table) == expected, table  # replaced, not appended
        schema = client.get_table(again.table_id).schema
        assert [f.name for f in schema] == list(loaded_columns(CONTRACTS[table]))
    users = client.get_table(f"{target.project}.silver_local.users").schema
    created = {f.name: LEGACY_NAMES.get(f.field_type, f.field_type) for f in users}
    assert (created["created_at"], created["age"], created["is_active"]) == ("DATETIME", "INT64", "BOOL")
    # Partitioning and clustering are in the job we send (test_load_config_…); the emulator's table
    # metadata does not keep them, so they are not asserted on what it answers.


def test_a_shrunken_silver_replaces_the_table_and_a_missing_one_is_an_error(
    bigquery_emulator: BigQueryEmulator, silver_bucket: Bucket, tmp_path: Path
) -> None:
    """Silver overwrites its folder (a month can disappear); the load must not keep the old month."""
    bucket = Bucket.from_settings(Settings(_env_file=None, bucket_url=str(tmp_path / "bucket")))
    shutil.copytree(silver_bucket.local_path("silver"), bucket.local_path("silver"))
    target = target_of(bigquery_emulator, "silver_shrink")
    client = bigquery_client(target)
    contract = CONTRACTS["watch_history"]
    full = load_silver_table(client, target, bucket, contract)
    months = sorted(p for p in bucket.local_path("silver/watch_history").iterdir() if p.is_dir())
    shutil.rmtree(months[0])
    after = load_silver_table(client, target, bucket, contract)
    assert after.rows == len(files_rows(bucket, "watch_history")) < full.rows
    assert bigquery_rows(client, after.table_id, "watch_history") == files_rows(bucket, "watch_history")

    shutil.rmtree(bucket.local_path("silver/reviews"))
    with pytest.raises(SilverLoadError, match=r"no Parquet under .*silver/reviews.*must be written"):
        load_silver_table(client, target, bucket, CONTRACTS["reviews"])


@pytest.fixture(scope="module")
def gcs_on_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """gcp-storage-emulator keeping objects as files (``-d``), so bqemulator can read gs:// URIs from disk."""
    root = tmp_path_factory.mktemp("gcs-disk")
    port = free_port()
    with (root / "emulator.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gcp-storage-emulator"), "-d", str(root / "data"), "start", "-H", "127.0.0.1",
             "--port", str(port), "--default-bucket", "lake", "-q"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", root / "data" / ".cloudstorage"
    finally:
        stop_process(proc)


def test_a_gs_bucket_is_loaded_by_uri(
    gcs_on_disk: tuple[str, Path], silver_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's path: BigQuery reads the Parquet objects itself (one load job over their URIs).

    Unpartitioned tables only: bqemulator reads gs:// files with DuckDB's ``read_parquet``, which adds
    ``watch_month`` from the ``watch_month=…`` folder names on its own (hive auto-detection) and then
    fails the positional insert; BigQuery does no such thing without hive-partitioning options. The
    partitioned table's load is proved by the local path above, whose job is the same.
    """
    endpoint, objects_root = gcs_on_disk
    bucket = Bucket.from_settings(
        Settings(_env_file=None, bucket_url="gs://lake/prod", gcs_endpoint=endpoint)
    )
    for table in ("users", "movies"):
        for path in sorted(silver_bucket.local_path(f"silver/{table}").rglob("*.parquet")):
            key = path.relative_to(silver_bucket.local_path("")).as_posix()
            bucket.upload(path, key)
    with BigQueryEmulator(tmp_path / "bq", gcs_root=objects_root) as emulator:
        target = target_of(emulator, "silver")
        client = bigquery_client(target)
        for table in ("users", "movies"):
            loaded = load_silver_table(client, target, bucket, CONTRACTS[table])
            expected = files_rows(silver_bucket, table)
            assert loaded.rows == len(expected) and loaded.files == len(
                list(silver_bucket.local_path(f"silver/{table}").rglob("*.parquet"))
            )
            assert bigquery_rows(client, loaded.table_id, table) == expected
            job = client.get_job(loaded.job_id)
            assert all(uri.startswith("gs://lake/prod/silver/") for uri in job.source_uris)
            assert job.write_disposition == "WRITE_TRUNCATE"
        # More files than one job may list (the stream's sinks reach that in a day): a wildcard per folder.
        [users] = sorted(silver_bucket.local_path("silver/users").rglob("*.parquet"))
        bucket.upload(users, "silver/users/part-copy.parquet")
        monkeypatch.setattr(bigquery_load, "MAX_SOURCE_URIS", 1)
        again = load_silver_table(client, target, bucket, CONTRACTS["users"])
        assert client.get_job(again.job_id).source_uris == ["gs://lake/prod/silver/users/*.parquet"]
        assert bigquery_rows(client, again.table_id, "users") == sorted(
            files_rows(silver_bucket, "users") * 2, key=repr
        )


def test_load_config_replaces_and_partitions_natively() -> None:
    config = load_config(CONTRACTS["watch_history"])
    assert config.write_disposition == "WRITE_TRUNCATE" and config.source_format == "PARQUET"
    assert "watch_month" not in [f.name for f in config.schema]
    assert config.time_partitioning.field == "watch_date" and config.time_partitioning.type_ == "MONTH"
    assert config.clustering_fields == ["session_id"]


def test_past_the_uri_limit_each_leaf_folder_is_one_wildcard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = Bucket.from_settings(Settings(_env_file=None, bucket_url=str(tmp_path / "bucket")))
    keys = [
        f"speed/silver/date=2026-12-01/hour={h}/batch-{b:010d}-part-0.parquet" for h in (0, 1) for b in (1, 2)
    ]
    monkeypatch.setattr(bigquery_load, "MAX_SOURCE_URIS", 2)
    assert bigquery_load.source_uris(bucket, keys) == [
        f"{bucket.uri(f'speed/silver/date=2026-12-01/hour={h}')}/*.parquet" for h in (0, 1)
    ]
    nested = [*keys, "speed/silver/date=2026-12-01/part-0.parquet"]  # a folder holding files and folders
    monkeypatch.setattr(bigquery_load, "MAX_SOURCE_URIS", 3)
    with pytest.raises(bigquery_load.ParquetLoadError, match=r"are nested .*date=2026-12-01 holds files"):
        bigquery_load.source_uris(bucket, nested)
