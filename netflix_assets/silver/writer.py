"""Writing Silver and quarantine Parquet so that readers always find a schema and few files.

Each write replaces the table's folder (static overwrite), so a rerun never leaves stale months or rows
behind. Quarantine is small and goes out as one file; Silver keeps the partitioning the windows left
(AQE coalesces it to a few partitions), so a table is a handful of files, not one per task and month.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from netflix_assets.bucket import Bucket


def write_parquet(
    frame: DataFrame, bucket: Bucket, key: str, partition_by: str | None = None, single_file: bool = False
) -> None:
    """Replace the folder ``key`` of ``bucket`` with ``frame`` as Parquet.

    An empty frame written with ``partitionBy`` leaves a folder without any Parquet file, and DuckDB or
    dbt fail on a glob that matches nothing; an empty table is therefore rewritten unpartitioned, as one
    schema-only file that still holds every column. (Checking afterwards spares a count job up front.)
    """
    uri = bucket.uri(key)
    source = frame.coalesce(1) if single_file else frame
    writer = source.write.mode("overwrite").option("compression", "snappy")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(uri)
    if partition_by and not bucket.fs.glob(bucket.path(key).rstrip("/") + "/**/*.parquet"):
        frame.coalesce(1).write.mode("overwrite").parquet(uri)
