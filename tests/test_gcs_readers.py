"""Everything that reads or writes the bucket without Spark, on GCS (gcp-storage-emulator) as on disk.

Spark needs Google's GCS connector for ``gs://`` (not on PyPI; ``tests/test_spark_gcs.py`` proves the
start-up check that says so). The rest of the pipeline reaches the bucket through fsspec/gcsfs: the raw
assets (landing and profiling), the Silver checks (DuckDB over fsspec), the stream's replay-safe Parquet
sinks, the checkpoint reader the sensor uses, and the Silver load into BigQuery
(``tests/test_bigquery_silver.py``). Each is run here on a gs:// bucket and on a local copy of the same
files, and must give the same answer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from dagster import materialize

from core.bucket import Bucket
from core.contracts.raw import RAW_TABLES, raw_key
from core.contracts.silver import CONTRACTS, TABLE_ORDER
from core.contracts.speed import BRONZE_KEY, checkpoint_key
from core.settings import Settings
from datagen import generate
from netflix_assets.defs.raw.assets import build_raw_asset
from netflix_assets.resources import build_resources
from reference.marts import compute_reference, write_silver_parquet
from silver.job import TableResult
from silver.outputs import written_tables
from silver.verify import verify_table
from streaming.checkpoint import read_progress
from streaming.sinks import BatchParquetSink


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, duckdb.DuckDBPyConnection]:
    """Generated CSVs in a landing folder, and the reference's Silver/quarantine of them."""
    root = tmp_path_factory.mktemp("gcs-readers")
    bucket = Bucket.from_settings(Settings(_env_file=None, bucket_url=str(root / "local")))
    generate(bucket, 0.01, seed=33)
    con = compute_reference(bucket.local_path("raw"))
    write_silver_parquet(con, bucket.local_path("silver"))
    for table in TABLE_ORDER:
        target = bucket.local_path(f"quarantine/{table}/part-0.parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY quarantine_{table} TO '{target}' (FORMAT parquet)")
    return root / "local", con


def both_buckets(landed_root: Path, gcs_emulator: str, name: str) -> tuple[Settings, Settings]:
    """Settings of the local bucket and of a gs:// bucket holding the same files."""
    local = Settings(_env_file=None, bucket_url=str(landed_root), data_dir=landed_root.parent / f"{name}-l")
    remote = Settings(
        _env_file=None,
        bucket_url=f"gs://netflix-test/{name}",
        gcs_endpoint=gcs_emulator,
        data_dir=landed_root.parent / f"{name}-g",
    )
    gcs = Bucket.from_settings(remote)
    for path in sorted(p for p in landed_root.rglob("*") if p.is_file()):
        gcs.upload(path, path.relative_to(landed_root).as_posix())
    return local, remote


def test_raw_assets_land_and_profile_a_gcs_bucket(landed, gcs_emulator: str, tmp_path: Path) -> None:
    landed_root, _ = landed
    local, remote = both_buckets(landed_root, gcs_emulator, "raw")
    gcs = Bucket.from_settings(remote)
    gcs.delete(raw_key("users"))  # landed by the asset from NETFLIX_RAW_LANDING_DIR
    remote = remote.model_copy(update={"raw_landing_dir": landed_root / "raw"})

    def metadata(settings: Settings) -> dict[str, dict]:
        result = materialize(
            [build_raw_asset(t, settings.raw_landing_dir) for t in RAW_TABLES],
            resources=build_resources(settings),
        )
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)
        return {
            e.asset_key.path[-1]: {
                k: v.value for k, v in e.materialization.metadata.items() if "path" not in k
            }
            for e in result.get_asset_materialization_events()
        }

    on_gcs, on_disk = metadata(remote), metadata(local)
    assert gcs.exists(raw_key("users")) and gcs.sha256(raw_key("users")) == Bucket.from_settings(
        local
    ).sha256(raw_key("users"))
    assert set(on_gcs) == set(RAW_TABLES)
    for table in RAW_TABLES:
        same = {k: v for k, v in on_gcs[table].items() if not isinstance(v, str) or "gs://" not in v}
        assert same == {k: v for k, v in on_disk[table].items() if k in same}, table


def test_silver_checks_read_gcs_as_they_read_disk(landed, gcs_emulator: str) -> None:
    landed_root, con = landed
    local, remote = both_buckets(landed_root, gcs_emulator, "checks")
    for table in TABLE_ORDER:
        silver = con.execute(f"SELECT count(*) FROM silver_{table}").fetchone()[0]
        reasons = dict(con.execute(f"SELECT reason, count(*) FROM quarantine_{table} GROUP BY 1").fetchall())
        outcomes = []
        for settings in (local, remote):
            bucket = Bucket.from_settings(settings)
            contract = CONTRACTS[table]
            uri = bucket.uri
            result = TableResult(
                table=table, raw_rows=silver + sum(reasons.values()), silver_rows=silver,
                quarantine_rows=sum(reasons.values()), reasons=reasons, raw_uri=uri(contract.raw_key),
                last_line=silver + sum(reasons.values()) + 1,  # one line per record after the header
                silver_uri=uri(contract.silver_key), quarantine_uri=uri(contract.quarantine_key), seconds=0.0,
            )  # fmt: skip
            with written_tables(bucket) as tables:
                assert tables.silver_count(contract) == silver
                outcomes.append(
                    [(o.name, o.passed, o.metadata) for o in verify_table(tables, result, 0.1, 0.25)]
                )
        assert outcomes[0] == outcomes[1], table
        assert all(passed for _, passed, _ in outcomes[1]), (table, outcomes[1])


def test_stream_sinks_replace_a_replayed_batch_on_gcs(gcs_emulator: str, tmp_path: Path) -> None:
    """A batch written, then replayed with different rows (a crash between the two): only the replay stays."""
    first = pa.table(
        {"partition": [0, 1], "offset": [5, 6], "timestamp": [datetime(2026, 1, 5, 12, 1, tzinfo=UTC)] * 2}
    )
    replay = pa.table(
        {
            "partition": [0, 1, 2],
            "offset": [5, 6, 7],
            "timestamp": [datetime(2026, 1, 5, 12, 1, tzinfo=UTC)] * 3,
        }
    )
    reads = []
    for bucket in (
        Bucket.from_settings(Settings(_env_file=None, bucket_url=str(tmp_path / "local"))),
        Bucket.from_settings(
            Settings(_env_file=None, bucket_url="gs://netflix-test/sinks", gcs_endpoint=gcs_emulator)
        ),
    ):
        sink = BatchParquetSink(bucket, BRONZE_KEY)
        assert sink.write(first, 3, "timestamp") == 1
        assert sink.write(replay, 3, "timestamp") == 1
        files = bucket.fs.glob(bucket.path(BRONZE_KEY) + "/**/*.parquet")
        assert [Path(f).name for f in files] == ["batch-0000000003-part-0.parquet"]
        glob = bucket.uri(BRONZE_KEY) + "/**/*.parquet"
        with written_tables(bucket) as tables:
            reads.append(
                sorted(
                    tables.con.execute(f"SELECT partition, \"offset\" FROM read_parquet('{glob}')").fetchall()
                )
            )
    assert reads[0] == reads[1] == [(0, 5), (1, 6), (2, 7)]


def test_the_sensor_reads_stream_progress_from_a_gcs_checkpoint(gcs_emulator: str) -> None:
    """The checkpoint files as Spark writes them (offsets/<n>: version, metadata, one line per source)."""
    bucket = Bucket.from_settings(
        Settings(_env_file=None, bucket_url="gs://netflix-test/progress", gcs_endpoint=gcs_emulator)
    )
    checkpoint = checkpoint_key()
    assert read_progress(bucket, checkpoint).committed_batch is None
    metadata = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1767614400000})
    for batch, offsets in ((0, {"0": 10, "1": 7}), (1, {"0": 25, "1": 9}), (2, {"0": 40, "1": 9})):
        source = json.dumps({"cluster": "tansu-1", "offsets": offsets})
        bucket.write_bytes(f"{checkpoint}/offsets/{batch}", f"v1\n{metadata}\n{source}".encode())
    for batch in (0, 1):
        bucket.write_bytes(f"{checkpoint}/commits/{batch}", b'v1\n{"nextBatchWatermarkMs":0}')
    progress = read_progress(bucket, checkpoint)
    assert (progress.committed_batch, progress.planned_batch, progress.cluster_id) == (1, 2, "tansu-1")
    assert progress.offsets == {0: 25, 1: 9} and progress.lag({0: 40, 1: 12, 2: 4}) == 15 + 3 + 4
