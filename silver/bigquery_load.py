"""Silver into BigQuery: one load job per table from the bucket's Parquet, replacing the table.

dbt's ``bigquery`` target reads Silver as tables of the ``silver`` dataset; this is what fills them. Each
table is one load job with ``WRITE_TRUNCATE``, the same semantics as the Spark writer's folder overwrite:
a rerun replaces the table (never appends a second copy), a month that left Silver leaves BigQuery too,
and readers see the old table or the new one, never half of each (a load job is atomic). Load jobs are
free and do not count against query slots.

The job itself (``gs://`` URIs read by BigQuery, or a local bucket's files streamed into one upload) is
``core.bigquery_load``'s, shared with the speed layer's event tables.

``watch_history``'s ``watch_month=YYYY-MM`` folders are the bucket's layout for readers that prune by
path; BigQuery partitions natively instead: the table is partitioned by month on ``watch_date`` and the
string column is not loaded (dbt derives the month from ``watch_date``). Every table is clustered by its
key.
"""

from __future__ import annotations

from google.cloud import bigquery

from core.bigquery import ensure_dataset, silver_schema, table_id
from core.bigquery_load import LoadResult, ParquetLoadError, load_parquet, parquet_keys
from core.bucket import Bucket
from core.contracts.silver import TableContract
from core.warehouse import BigQueryTarget

__all__ = ["LoadResult", "SilverLoadError", "load_config", "load_silver_table", "loaded_columns"]

# BigQuery partitions by a DATE/TIMESTAMP column: the column a Silver partition folder is derived from.
NATIVE_PARTITION = {"watch_month": ("watch_date", bigquery.TimePartitioningType.MONTH)}
DATASET_DESCRIPTION = "Silver tables loaded by the netflix-lambda pipeline from the bucket's silver/ Parquet."


class SilverLoadError(ParquetLoadError):
    """A Silver table could not be loaded (no files, or BigQuery refused the job); the message says why."""


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
    return parquet_keys(bucket, contract.silver_key)


def load_silver_table(
    client: bigquery.Client, target: BigQueryTarget, bucket: Bucket, contract: TableContract
) -> LoadResult:
    """Replace ``<silver_dataset>.<table>`` with the table's Silver Parquet, in one load job."""
    files = silver_files(bucket, contract)
    if not files:
        raise SilverLoadError(
            f"no Parquet under {bucket.uri(contract.silver_key)}: Silver {contract.name} must be written "
            "before it is loaded into BigQuery"
        )
    destination = table_id(target, target.silver_dataset, contract.name)
    ensure_dataset(client, target, target.silver_dataset, DATASET_DESCRIPTION)
    try:
        return load_parquet(client, bucket, contract.silver_key, files, destination, load_config(contract))
    except ParquetLoadError as exc:
        raise SilverLoadError(str(exc)) from exc
