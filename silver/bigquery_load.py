"""Silver into BigQuery: one load job per table from the bucket's Parquet, replacing the table.

dbt's ``bigquery`` target reads Silver as tables of the ``silver`` dataset; this is what fills them. Each
table is one load job with ``WRITE_TRUNCATE``, the same semantics as the Spark writer's folder overwrite:
a rerun replaces the table (never appends a second copy), a month that left Silver leaves BigQuery too,
and readers see the old table or the new one, never half of each (a load job is atomic). Load jobs are
free and do not count against query slots.

* ``gs://`` bucket (production): BigQuery reads the files itself (``load_table_from_uri`` with the
  explicit list of the table's Parquet files; nothing passes through this process).
* local bucket (tests, a laptop pointed at BigQuery): the files are streamed into one Parquet file that
  is uploaded by one resumable ``load_table_from_file`` job, so the replacement is still one atomic job.

``watch_history``'s ``watch_month=YYYY-MM`` folders are the bucket's layout for readers that prune by
path; BigQuery partitions natively instead: the table is partitioned by month on ``watch_date`` and the
string column is not loaded (dbt derives the month from ``watch_date``). Every table is clustered by its
key.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
from google.cloud import bigquery

from core.bigquery import JOB_TIMEOUT_S, RETRY, ensure_dataset, silver_schema, table_id
from core.bucket import Bucket
from core.contracts.silver import TableContract
from core.warehouse import BigQueryTarget

# BigQuery partitions by a DATE/TIMESTAMP column: the column a Silver partition folder is derived from.
NATIVE_PARTITION = {"watch_month": ("watch_date", bigquery.TimePartitioningType.MONTH)}
MAX_SOURCE_URIS = 10_000  # BigQuery's limit per load job
DATASET_DESCRIPTION = "Silver tables loaded by the netflix-lambda pipeline from the bucket's silver/ Parquet."


class SilverLoadError(RuntimeError):
    """A Silver table could not be loaded (no files, or BigQuery refused the job); the message says why."""


@dataclass(frozen=True)
class LoadResult:
    """One table as BigQuery holds it after the load."""

    table: str
    table_id: str
    rows: int
    files: int
    job_id: str
    seconds: float


def loaded_columns(contract: TableContract) -> tuple[str, ...]:
    """The columns the Parquet files hold (Spark keeps the partition column in folder names only)."""
    return tuple(c for c in contract.silver_columns if c != contract.partition_by)


def load_config(contract: TableContract) -> bigquery.LoadJobConfig:
    """Replace the table: its schema from the contract, native partitioning, clustered by the key."""
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        schema=silver_schema(contract, loaded_columns(contract)),
        clustering_fields=[contract.key],
    )
    if contract.partition_by in NATIVE_PARTITION:
        field, granularity = NATIVE_PARTITION[contract.partition_by]
        config.time_partitioning = bigquery.TimePartitioning(type_=granularity, field=field)
    return config


def silver_files(bucket: Bucket, contract: TableContract) -> list[str]:
    """Keys of the table's Parquet files (recursively: watch_history has one folder per month)."""
    base = bucket.path(contract.silver_key).rstrip("/")
    root = bucket.path("").rstrip("/") + "/"
    return sorted(p.removeprefix(root) for p in bucket.fs.glob(f"{base}/**/*.parquet"))


def load_silver_table(
    client: bigquery.Client, target: BigQueryTarget, bucket: Bucket, contract: TableContract
) -> LoadResult:
    """Replace ``<silver_dataset>.<table>`` with the table's Silver Parquet, in one load job."""
    started = time.perf_counter()
    files = silver_files(bucket, contract)
    if not files:
        raise SilverLoadError(
            f"no Parquet under {bucket.uri(contract.silver_key)}: Silver {contract.name} must be written "
            "before it is loaded into BigQuery"
        )
    destination = table_id(target, target.silver_dataset, contract.name)
    ensure_dataset(client, target, target.silver_dataset, DATASET_DESCRIPTION)
    config = load_config(contract)
    try:
        if bucket.is_gcs:
            if len(files) > MAX_SOURCE_URIS:
                raise SilverLoadError(
                    f"{len(files):,} files under {bucket.uri(contract.silver_key)}: over BigQuery's "
                    f"{MAX_SOURCE_URIS:,} source URIs per load job"
                )
            uris = [bucket.uri(key) for key in files]
            job = client.load_table_from_uri(uris, destination, job_config=config, retry=RETRY)
            job.result(timeout=JOB_TIMEOUT_S)
        else:
            job = _load_local(client, bucket, files, destination, config, loaded_columns(contract))
    except SilverLoadError:
        raise
    except Exception as exc:  # BadRequest, Forbidden, timeouts: name the table and the source
        raise SilverLoadError(
            f"loading {bucket.uri(contract.silver_key)} into {destination} failed: {exc}"
        ) from exc
    return LoadResult(
        table=contract.name,
        table_id=destination,
        rows=int(job.output_rows or 0),
        files=len(files),
        job_id=job.job_id,
        seconds=time.perf_counter() - started,
    )


def _load_local(
    client: bigquery.Client,
    bucket: Bucket,
    files: list[str],
    destination: str,
    config: bigquery.LoadJobConfig,
    columns: tuple[str, ...],
) -> bigquery.LoadJob:
    """Stream the local files into one Parquet file (columns in schema order) and upload it in one job."""
    dataset = ds.dataset([bucket.path(key) for key in files], format="parquet")
    with tempfile.TemporaryDirectory(prefix="silver-load-") as tmp:
        combined = Path(tmp) / "table.parquet"
        scanner = dataset.scanner(columns=list(columns))
        with pq.ParquetWriter(combined, scanner.projected_schema, compression="snappy") as writer:
            for batch in scanner.to_batches():
                writer.write_batch(batch)
        with combined.open("rb") as handle:
            # No size: a resumable upload, one request per chunk whatever the file size.
            job = client.load_table_from_file(handle, destination, job_config=config, rewind=True)
        job.result(timeout=JOB_TIMEOUT_S)
    return job
