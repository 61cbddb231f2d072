"""The Silver job: raw CSV -> classified rows -> Silver + quarantine Parquet, one table at a time.

Independent of Dagster so the asset, the timing helper and the tests drive the same code. One Spark
session serves all six tables: starting Spark costs ~5 s, a large share of the scale-1 budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.bucket import Bucket
from core.contracts.silver import CONTRACTS, DIMENSIONS, TABLE_ORDER, TableContract
from core.spark import require_bucket_filesystem
from core.stopwatch import Stopwatch
from silver.outputs import written_tables
from silver.reader import SilverInputError, check_header, parse_lines, read_numbered_lines
from silver.rules import (
    disputed_rows,
    quarantine_rows,
    repeated_keys,
    silver_rows,
    single_row_rules,
)
from silver.writer import write_parquet

PREVIEW_ROWS = 5
# Tables built at once. Small inputs are dominated by single-threaded driver work (planning, code
# generation, JIT warm-up) that other tables' tasks can overlap: 4 threads beat 2 at scale 1 (41-44 s vs
# 50 s for the six tables). Large ones are CPU- and memory-bound; two caches at a time is enough.
SMALL_INPUT_BYTES = 512 << 20
WORKERS_SMALL_INPUT = 4
WORKERS_LARGE_INPUT = 2
R = TypeVar("R")
PROGRESS_EVERY_SECONDS = 30.0
SESSION_CONF = {
    # Parquet timestamps as plain int64 micros (not Spark's legacy INT96): DuckDB and BigQuery read
    # created_at as TIMESTAMP without a conversion.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Rules 1-7 are cached once and read three times; compressing that cache (dictionary / run-length
    # statistics per column) cost more CPU than the rules themselves (measured: ~12 vs ~7 CPU-s per
    # million watch rows) for a cache that lives seconds. Spills go to disk (MEMORY_AND_DISK).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}
# Repeated keys are broadcast to every task up to this many (~20 bytes each); beyond, Spark shuffles.
BROADCAST_KEYS_LIMIT = 5_000_000

_log = logging.getLogger(__name__)


@dataclass
class TableResult:
    """What one table's run produced, in numbers an asset's metadata and checks can use."""

    table: str
    raw_rows: int
    silver_rows: int
    quarantine_rows: int
    reasons: dict[str, int]
    raw_uri: str
    silver_uri: str
    quarantine_uri: str
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for the timing helper
    silver_schema: list[tuple[str, str]] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)

    @property
    def quarantine_share(self) -> float:
        return self.quarantine_rows / self.raw_rows if self.raw_rows else 0.0


class SilverJob:
    """Runs the Silver rules for tables of one bucket in one Spark session."""

    def __init__(self, spark: SparkSession, bucket: Bucket, log: Any = None) -> None:
        require_bucket_filesystem(spark, bucket.uri(""))  # gs:// without the GCS connector: say so now
        self.spark = spark
        self.bucket = bucket
        self.log = log or _log
        for key, value in SESSION_CONF.items():
            spark.conf.set(key, value)

    @property
    def partitions(self) -> int:
        return int(self.spark.conf.get("spark.sql.shuffle.partitions") or 8)

    def run(
        self,
        tables: Iterable[str] = TABLE_ORDER,
        work: Callable[[str], R] | None = None,
        workers: int | None = None,
    ) -> Iterator[tuple[str, R | Exception]]:
        """Run ``work(table)`` (default: ``run_table``) for each table; yield ``(table, result or error)``.

        Users and movies run first, then the facts (their orphan rules read the dimensions' Silver).
        Within a wave, tables run on ``workers`` threads sharing the session (default: by input size, see
        ``default_workers``). Results come back as tables finish; the caller sees the whole first wave
        before the second starts, so it can decide whether the facts may use the dimensions.
        """
        task = work or self.run_table
        wanted = set(tables)
        workers = workers or self.default_workers(wanted)
        for wave in (DIMENSIONS, tuple(t for t in TABLE_ORDER if t not in DIMENSIONS)):
            todo = [t for t in wave if t in wanted]
            if not todo:
                continue
            with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="silver") as pool:
                futures = {pool.submit(task, table): table for table in todo}
                for future in as_completed(futures):
                    error = future.exception()
                    if error is not None and not isinstance(error, Exception):
                        raise error
                    yield futures[future], error if error is not None else future.result()

    def default_workers(self, tables: Iterable[str]) -> int:
        """More threads for small inputs (driver-bound), two for large ones (CPU- and memory-bound)."""
        raw_keys = [CONTRACTS[t].raw_key for t in tables]
        size = sum(self.bucket.size(key) for key in raw_keys if self.bucket.exists(key))
        return WORKERS_SMALL_INPUT if size <= SMALL_INPUT_BYTES else WORKERS_LARGE_INPUT

    def run_table(self, table: str) -> TableResult:
        """Classify one raw file and write its Silver and quarantine; counts are read back from the output."""
        contract = CONTRACTS[table]
        check_header(self.bucket, contract)
        references = {ref.column: self.silver_keys(ref.table) for ref in contract.references}
        with _progress(self.spark, table, self.log):
            return self._build(contract, references)

    def _build(self, contract: TableContract, references: dict[str, DataFrame]) -> TableResult:
        table, raw_uri = contract.name, self.bucket.uri(contract.raw_key)
        phases = Stopwatch()
        lines = read_numbered_lines(self.spark, raw_uri)
        phases.lap("number_lines")
        self.log.info(f"silver {table}: {raw_uri} has {lines.data_rows:,} data rows; applying the rules")
        # Rules 1-7 once, kept for both writes; rules 8-9 then only shuffle the rows of repeated keys.
        checked = single_row_rules(parse_lines(lines.frame, contract), contract, references)
        checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
        repeated = repeated_keys(checked, contract).persist(StorageLevel.MEMORY_AND_DISK)
        disputed = None
        try:
            contested_keys = repeated.count()
            phases.lap("single_row_rules")
            small = contested_keys <= BROADCAST_KEYS_LIMIT
            if contested_keys:
                disputed = disputed_rows(checked, repeated, contract, self.partitions, small)
                disputed = disputed.persist(StorageLevel.MEMORY_AND_DISK)
            silver = silver_rows(checked, repeated if contested_keys else None, disputed, contract, small)
            write_parquet(silver, self.bucket, contract.silver_key, partition_by=contract.partition_by)
            phases.lap("duplicate_rules_and_write_silver")
            rejected = quarantine_rows(checked, disputed, contract)
            write_parquet(rejected, self.bucket, contract.quarantine_key, single_file=True)
            phases.lap("write_quarantine")
        finally:
            for frame in (disputed, repeated, checked):
                if frame is not None:
                    frame.unpersist()
        with written_tables(self.bucket) as written:
            kept = written.silver_count(contract)
            reasons = written.reasons(contract)
            preview = written.preview(contract, PREVIEW_ROWS)
        phases.lap("summarize")
        result = TableResult(
            table=table,
            raw_rows=lines.data_rows,
            silver_rows=kept,
            quarantine_rows=sum(reasons.values()),
            reasons=reasons,
            raw_uri=raw_uri,
            silver_uri=self.bucket.uri(contract.silver_key),
            quarantine_uri=self.bucket.uri(contract.quarantine_key),
            seconds=phases.total,
            phases=phases.laps,
            silver_schema=[(f.name, f.dataType.simpleString()) for f in silver.schema.fields],
            preview=preview,
        )
        self.log.info(
            f"silver {table}: {result.silver_rows:,} rows to {result.silver_uri}, {result.quarantine_rows:,} "
            f"quarantined ({result.quarantine_share:.2%}) to {result.quarantine_uri} {reasons or ''} "
            f"in {result.seconds:.1f} s"
        )
        return result

    def silver_keys(self, table: str) -> DataFrame:
        """The keys of a dimension as written, for the orphan rules of the facts.

        No ``distinct``: the dimension's own unique_key check has passed before a fact may use it.
        """
        contract: TableContract = CONTRACTS[table]
        if not self.bucket.exists(contract.silver_key):
            raise SilverInputError(
                f"{self.bucket.uri(contract.silver_key)} does not exist: Silver {table} must be built "
                "before the tables that reference it"
            )
        return self.spark.read.parquet(self.bucket.uri(contract.silver_key)).select(F.col(contract.key))


@contextmanager
def _progress(spark: SparkSession, table: str, log: Any) -> Iterator[None]:
    """Tag this thread's Spark jobs with the table and log their task progress while they run.

    A scale-100 table runs for minutes; without this the log would be silent between "applying the
    rules" and the result.
    """
    group = f"silver-{table}"
    context = spark.sparkContext
    context.setJobGroup(group, f"Silver {table}")
    done = threading.Event()

    def report() -> None:
        started = time.perf_counter()
        while not done.wait(PROGRESS_EVERY_SECONDS):
            tracker = context.statusTracker()
            stages = []
            for job_id in tracker.getJobIdsForGroup(group):
                job = tracker.getJobInfo(job_id)
                for stage_id in job.stageIds if job and job.status == "RUNNING" else []:
                    stage = tracker.getStageInfo(stage_id)
                    if stage and stage.numActiveTasks:
                        stages.append(f"stage {stage_id}: {stage.numCompletedTasks}/{stage.numTasks} tasks")
            log.info(
                f"silver {table}: still running after {time.perf_counter() - started:.0f} s"
                + (f" ({'; '.join(stages)})" if stages else "")
            )

    reporter = threading.Thread(target=report, name=f"silver-progress-{table}", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        done.set()
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
