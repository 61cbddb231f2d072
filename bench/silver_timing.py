"""Spark-only wall times of the Silver layer, for benchmarks: no Dagster, the same work as the asset.

``time_silver`` starts a SparkSession from the settings with the Silver driver's JVM options (that start
is part of what a scheduled run pays, so it is timed separately), runs every table with its checks
exactly as ``silver_tables`` does, and stops the session. Call it in a fresh process for a cold JVM: a
reused session has warm JIT and generated code and reports a better number than any real run would see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.bucket import Bucket
from core.contracts.silver import TABLE_ORDER
from core.settings import Settings
from core.spark import start_spark
from silver.job import SilverJob, driver_jvm_options
from silver.verify import run_and_verify


@dataclass
class SilverTiming:
    spark_start_seconds: float
    silver_seconds: float  # all tables, checks included, after Spark is up
    total_seconds: float
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_silver(
    settings: Settings, tables: Iterable[str] = TABLE_ORDER, workers: int | None = None
) -> SilverTiming:
    """Build Silver for ``tables`` from the bucket's raw files; raise if a table cannot be built."""
    tables, bucket = tuple(tables), Bucket.from_settings(settings)
    started = time.perf_counter()
    spark = start_spark(settings, driver_options=driver_jvm_options(bucket, tables))
    up = time.perf_counter()
    try:
        job = SilverJob(spark, bucket)

        def work(table: str) -> Any:
            return run_and_verify(job, table, settings.quarantine_warn_share, settings.quarantine_error_share)

        timing = SilverTiming(spark_start_seconds=up - started, silver_seconds=0.0, total_seconds=0.0)
        for table, outcome in job.run(tables, work=work, workers=workers):
            if isinstance(outcome, Exception):
                raise outcome
            result, checks = outcome
            timing.tables[table] = {
                "raw_rows": result.raw_rows,
                "silver_rows": result.silver_rows,
                "quarantine_rows": result.quarantine_rows,
                "seconds": round(result.seconds, 3),
                "phases": result.phases,
            }
            timing.failed_checks += [f"{table}:{c.name}" for c in checks if not c.passed]
        done = time.perf_counter()
    finally:
        spark.stop()
    timing.silver_seconds = done - up
    timing.total_seconds = done - started
    return timing
