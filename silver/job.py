"""The Silver job: raw CSV -> classified rows -> Silver + quarantine Parquet, one table at a time.

Independent of Dagster so the asset, the timing helper and the tests drive the same code. One Spark
session serves all six tables: starting Spark costs ~5 s, a large share of the scale-1 budget.
"""

from __future__ import annotations

import logging
import math
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
from core.raw_files import RawFileError, is_compressed, raw_key_in
from core.spark import require_bucket_filesystem
from core.stopwatch import Stopwatch
from silver.outputs import written_tables
from silver.reader import SPLIT_BYTES, RawRecords, SilverInputError, parse_lines, read_records, split_conf
from silver.rules import (
    KnownKeys,
    disputed_rows,
    quarantine_rows,
    repeated_keys,
    silver_rows,
    single_row_rules,
)
from silver.writer import write_parquet

PREVIEW_ROWS = 5
EXAMPLES_PER_REASON = 3
# Tables built at once. Small inputs are dominated by single-threaded driver work (planning, code
# generation, JIT warm-up) that other tables' tasks can overlap: 4 threads beat 2 at scale 1 (41-44 s vs
# 50 s for the six tables). Large ones are CPU- and memory-bound; two caches at a time is enough.
SMALL_INPUT_BYTES = 512 << 20
WORKERS_SMALL_INPUT = 4
WORKERS_LARGE_INPUT = 2
# A small run: its fixed costs (JIT compilation, plan analysis) outweigh its data, which changes two choices
# (``driver_jvm_options``, ``_keep``). Scale 1 is ~20 MB of raw CSV, scale 10 ~200 MB.
SMALL_RUN_INPUT_BYTES = 64 << 20
C1_ONLY_JIT = "-XX:TieredStopAtLevel=1"
THROUGHPUT_GC = "-XX:+UseParallelGC"
R = TypeVar("R")
PROGRESS_EVERY_SECONDS = 30.0
SESSION_CONF = {
    # Silver sizes its own shuffles (below); adaptive execution would re-plan each shuffle as a separate
    # job, with an explain string of the whole (wide) plan per update: measured 12-16 jobs per table on
    # 210k scale-1 rows with it, for no gain on inputs split at most a few dozen ways.
    "spark.sql.adaptive.enabled": "false",
    # Parquet timestamps as plain int64 micros (not Spark's legacy INT96): DuckDB and BigQuery read
    # created_at as TIMESTAMP without a conversion.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # A timestamp without zone or offset is UTC (docs/data-quality.md); offsets are normalized to it.
    "spark.sql.session.timeZone": "UTC",
    # lower() through ICU builds a case-mapping table of every character on first use (3-4 CPU-s per
    # JVM, measured); the domains it matches are ASCII, for which the JDK's mapping is the same.
    "spark.sql.icu.caseMappings.enabled": "false",
    # Rules 1-7 are cached once and read three times; compressing that cache (dictionary / run-length
    # statistics per column) cost more CPU than the rules themselves (measured: ~12 vs ~7 CPU-s per
    # million watch rows) for a cache that lives seconds. Spills go to disk (MEMORY_AND_DISK).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}
# Repeated keys are broadcast to every task up to this many (~20 bytes each); beyond, Spark shuffles.
BROADCAST_KEYS_LIMIT = 5_000_000
# A dimension with at most this many keys reaches the facts' orphan rules as a literal set (read from its
# Parquet in the driver, no Spark job); a bigger one as a broadcast join.
LITERAL_KEYS_LIMIT = 20_000
# Input bytes per shuffle partition, and contested keys per partition of the duplicate rules' shuffle.
SHUFFLE_INPUT_BYTES = 128 << 20
CONTESTED_KEYS_PER_PARTITION = 100_000

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
    # Where the records were (row accounting checks the written lines against it).
    last_line: int = 0
    multiline_records: list[tuple[int, int]] = field(default_factory=list)  # (first, last) line
    # Up to three (line, judged text) per quarantine reason, so a failing check shows what was rejected.
    examples: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)

    @property
    def quarantine_share(self) -> float:
        return self.quarantine_rows / self.raw_rows if self.raw_rows else 0.0


class SilverJob:
    """Runs the Silver rules for tables of one bucket in one Spark session."""

    def __init__(
        self, spark: SparkSession, bucket: Bucket, log: Any = None, split_bytes: int = SPLIT_BYTES
    ) -> None:
        require_bucket_filesystem(spark, bucket.uri(""))  # gs:// without the GCS connector: say so now
        self.spark = spark
        self.bucket = bucket
        self.log = log or _log
        self.split_bytes = split_bytes
        # As configured at start-up: an earlier job may have sized the session's runtime value.
        self.max_partitions = int(spark.sparkContext.getConf().get("spark.sql.shuffle.partitions", "8"))
        self._keys: dict[str, KnownKeys] = {}
        self.small_run = False  # set by ``run`` from its tables' input; ``run_table`` alone keeps the cache
        self._keys_lock = threading.Lock()
        for key, value in {**SESSION_CONF, **split_conf(split_bytes)}.items():
            spark.conf.set(key, value)

    def size_shuffles(self, input_bytes: int) -> int:
        """Shuffle partitions for this much raw input: one per SHUFFLE_INPUT_BYTES, at most the configured
        ``spark.sql.shuffle.partitions`` (small inputs pay no task per empty partition)."""
        partitions = max(1, min(self.max_partitions, math.ceil(input_bytes / SHUFFLE_INPUT_BYTES)))
        self.spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        return partitions

    def run(
        self,
        tables: Iterable[str] = TABLE_ORDER,
        work: Callable[[str], R] | None = None,
        workers: int | None = None,
    ) -> Iterator[tuple[str, R | Exception]]:
        """Run ``work(table)`` (default: ``run_table``) for each table; yield ``(table, result or error)``.

        Users and movies run first, then the facts (their orphan rules read the dimensions' Silver).
        Within a wave, tables run on ``workers`` threads sharing the session (default: by input size, see
        ``input_bytes``). Results come back as tables finish; the caller sees the whole first wave
        before the second starts, so it can decide whether the facts may use the dimensions.
        """
        task = work or self.run_table
        wanted = set(tables)
        size = self.input_bytes(wanted)
        self.size_shuffles(size)
        self.small_run = size <= SMALL_RUN_INPUT_BYTES
        workers = workers or (WORKERS_SMALL_INPUT if size <= SMALL_INPUT_BYTES else WORKERS_LARGE_INPUT)
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

    def input_bytes(self, tables: Iterable[str]) -> int:
        """Bytes of the tables' raw files as stored. More threads for small inputs (driver-bound), two for
        large ones (CPU- and memory-bound); shuffles sized to match."""
        return raw_input_bytes(self.bucket, tables)

    def run_table(self, table: str) -> TableResult:
        """Classify one raw file and write its Silver and quarantine; counts are read back from the output."""
        contract = CONTRACTS[table]
        with _progress(self.spark, table, self.log):
            phases = Stopwatch()
            records = read_records(self.spark, self.bucket, contract, self.split_bytes)
            phases.lap("read_records")
            references = {ref.column: self.silver_keys(ref.table) for ref in contract.references}
            return self._build(contract, records, references, phases)

    def _build(
        self,
        contract: TableContract,
        records: RawRecords,
        references: dict[str, KnownKeys],
        phases: Stopwatch,
    ) -> TableResult:
        table, source, raw_uri = contract.name, records.key, self.bucket.uri(records.key)
        self.log.info(f"silver {table}: {raw_uri} has {records.data_rows:,} data rows; applying the rules")
        # Rules 1-7 once, kept for both writes; rules 8-9 then only shuffle the rows of repeated keys.
        checked = single_row_rules(parse_lines(records.frame, contract), contract, references)
        checked = _keep(checked, cut_plan=self.small_run)
        repeated = repeated_keys(checked, contract).persist(StorageLevel.MEMORY_AND_DISK)
        disputed = None
        try:
            contested_keys = repeated.count()
            phases.lap("single_row_rules")
            small = contested_keys <= BROADCAST_KEYS_LIMIT
            if contested_keys:
                partitions = min(
                    self.max_partitions, math.ceil(contested_keys / CONTESTED_KEYS_PER_PARTITION)
                )
                disputed = disputed_rows(checked, repeated, contract, partitions, small)
                disputed = disputed.persist(StorageLevel.MEMORY_AND_DISK)
            silver = silver_rows(
                checked, repeated if contested_keys else None, disputed, contract, source, small
            )
            write_parquet(silver, self.bucket, contract.silver_key, partition_by=contract.partition_by)
            phases.lap("duplicate_rules_and_write_silver")
            rejected = quarantine_rows(checked, disputed, contract, source)
            # One file; an input of one split is one partition already, so no shuffle is needed to get there.
            one_split = records.layout.text_bytes <= self.split_bytes or is_compressed(records.key)
            write_parquet(
                rejected, self.bucket, contract.quarantine_key, single_file=True, shuffle=not one_split
            )
            phases.lap("write_quarantine")
        finally:
            for frame in (disputed, repeated, checked):
                if frame is not None:
                    _release(frame)
        with written_tables(self.bucket) as written:
            kept = written.silver_count(contract)
            reasons = written.reasons(contract)
            examples = written.examples(contract, EXAMPLES_PER_REASON) if reasons else {}
            preview = written.preview(contract, PREVIEW_ROWS)
        phases.lap("summarize")
        result = TableResult(
            table=table,
            raw_rows=records.data_rows,
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
            last_line=records.layout.last_line,
            multiline_records=records.layout.spans,
            examples=examples,
        )
        self.log.info(
            f"silver {table}: {result.silver_rows:,} rows to {result.silver_uri}, {result.quarantine_rows:,} "
            f"quarantined ({result.quarantine_share:.2%}) to {result.quarantine_uri} {reasons or ''} "
            f"in {result.seconds:.1f} s"
        )
        return result

    def silver_keys(self, table: str) -> KnownKeys:
        """The keys of a dimension as written, for the orphan rules of the facts: a literal list when it
        is small (read from the Parquet in the driver, no Spark job), else a one-column frame to broadcast.

        No ``distinct``: the dimension's own unique_key check has passed before a fact may use it. Read once
        per job (the facts share it), so a rerun of the dimensions needs a new SilverJob.
        """
        with self._keys_lock:
            if table not in self._keys:
                self._keys[table] = self._read_keys(CONTRACTS[table])
            return self._keys[table]

    def _read_keys(self, contract: TableContract) -> KnownKeys:
        if not self.bucket.exists(contract.silver_key):
            raise SilverInputError(
                f"{self.bucket.uri(contract.silver_key)} does not exist: Silver {contract.name} must be "
                "built before the tables that reference it"
            )
        with written_tables(self.bucket) as written:
            if written.silver_count(contract) <= LITERAL_KEYS_LIMIT:
                return written.keys(contract)
        return self.spark.read.parquet(self.bucket.uri(contract.silver_key)).select(F.col(contract.key))


def _keep(frame: DataFrame, cut_plan: bool) -> DataFrame:
    """``frame`` kept for the reads that follow (rules 8-9, both writes): computed once, then reused.

    **Cut the plan when the input is small.** Every DataFrame derived from a cached frame carries the
    whole plan below it (parsing, rules 1-7 over every column, the orphan rules' key sets as literals),
    and Spark analyzes that whole plan again at each derivation: at scale 1, ~500 analyses took 14-15 s of
    rule time (summed over Silver's threads), 5.5 s of it in ``DeduplicateRelations``. A local checkpoint
    stores the same rows in the block manager (memory, spilling to disk) and hands back a frame whose plan
    is one leaf: rule time fell to 8-9 s and Silver from 26-30 s to 21-22 s (``bench/silver_timing.py``'s
    ``time_silver``, alternating runs). It is lazy, so the first job that reads it fills it, as ``persist``
    does. Only in a small run (``SMALL_RUN_INPUT_BYTES``, the whole run's input, as for the JIT choice):
    at scale 100 the plan's cost is noise beside the data's, and a run there is the same as before.
    """
    if cut_plan:
        return frame.localCheckpoint(eager=False, storageLevel=StorageLevel.MEMORY_AND_DISK)
    return frame.persist(StorageLevel.MEMORY_AND_DISK)


def _release(frame: DataFrame) -> None:
    """Free what ``_keep`` (or ``persist``) holds. A checkpoint is not in Spark's cache manager, so
    ``unpersist`` leaves its blocks until the JVM collects the RDD; its plan's leaf names the RDD."""
    frame.unpersist()
    plan = frame._jdf.queryExecution().analyzed()
    if plan.nodeName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def raw_input_bytes(bucket: Bucket, tables: Iterable[str]) -> int:
    """Bytes of the tables' raw files as stored (a missing file counts 0: its table fails on its own)."""
    size = 0
    for table in tables:
        try:
            key = raw_key_in(bucket, table)
        except RawFileError:
            continue
        size += bucket.size(key) if key else 0
    return size


def driver_jvm_options(bucket: Bucket, tables: Iterable[str] = TABLE_ORDER) -> str:
    """Driver JVM options for a Silver run over ``tables``' raw files in ``bucket``, as they are now.

    Every start of a Silver JVM takes them (the Dagster resource, ``bench/silver_timing.py``), so a
    benchmark times the JVM a scheduled run gets.

    **The throughput collector, always.** Under G1 the sort before watch_history's partitioned write could
    not get its 32-64 MB pages at scale 100 (``OutOfMemoryError: Java heap space`` inside the sorter, then
    ``UNABLE_TO_ACQUIRE_MEMORY``): G1 stores such arrays in runs of contiguous regions, which a heap full
    of cached blocks rarely has. It failed one bench_batch run in three with the default 4g driver; with
    3g, watch_history and reviews together logged 10 such errors under G1 and none with ParallelGC, which
    compacts the heap and also ran them in 133 s instead of 156 s (docs/benchmarks.md). Silver is a batch
    job: pauses do not matter, throughput does. The stream's JVM keeps G1.

    **C1 only when small.** On a small input C2's compilations are never repaid: the run ends before the
    optimized code pays for its compile time (scale 1 on an idle machine, same hour: Silver 27.2-28.6 s
    with both tiers, 21.5-22.4 s with C1 only). On larger inputs C1 code costs more than C2's compile time:
    C1-only doubled the executors' CPU at scale 10, so above ``SMALL_RUN_INPUT_BYTES`` the JVM keeps both.
    """
    small = raw_input_bytes(bucket, tables) <= SMALL_RUN_INPUT_BYTES
    return THROUGHPUT_GC + (f" {C1_ONLY_JIT}" if small else "")


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
