"""Writing Silver and quarantine Parquet so that readers always find a schema and few files.

Each write replaces the table's folder (static overwrite), so a rerun never leaves stale months or rows
behind. Quarantine is small and goes out as one file; Silver as one file per core (and per month for
watch_history): 48 files for watch_history on 2 cores, whatever the scale.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from core.bucket import Bucket


def write_parquet(
    frame: DataFrame,
    bucket: Bucket,
    key: str,
    partition_by: str | None = None,
    single_file: bool = False,
    shuffle: bool = True,
) -> None:
    """Replace the folder ``key`` of ``bucket`` with ``frame`` as Parquet (one file with ``single_file``).

    An empty frame written with ``partitionBy`` leaves a folder without any Parquet file, and DuckDB or
    dbt fail on a glob that matches nothing; an empty table is therefore rewritten unpartitioned, as one
    schema-only file that still holds every column. (Checking afterwards spares a count job up front.)
    """
    uri = bucket.uri(key)
    # repartition, not coalesce: coalesce(1) would run the whole upstream scan in a single task; this
    # filters in parallel and moves only the (few) rows that are written. Unless the caller knows the
    # upstream is (nearly) one partition anyway (``shuffle=False``): then a shuffle only costs a stage.
    # Otherwise at most one file per core (per month for watch_history): the union of cached splits and
    # shuffled duplicates has far more partitions than that, and coalescing them costs no shuffle.
    cores = max(1, frame.sparkSession.sparkContext.defaultParallelism)
    if single_file:
        source = frame.repartition(1) if shuffle else frame.coalesce(1)
    else:
        source = frame.coalesce(cores)
    writer = source.write.mode("overwrite").option("compression", "snappy")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(uri)
    if partition_by and not bucket.fs.glob(bucket.path(key).rstrip("/") + "/**/*.parquet"):
        frame.coalesce(1).write.mode("overwrite").parquet(uri)
