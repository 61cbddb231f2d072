"""What the stream does with one micro-batch of raw Kafka messages (the ``foreachBatch`` function).

One function over the raw batch instead of Spark's stateful aggregation, because Spark drops rows behind
the watermark silently and cannot upsert into DuckDB; here nothing is dropped and every step is
replay-safe:

1. parse and validate every message once (``streaming.validation``), cached;
2. the batch's watermark: the newest valid event time seen so far (ledger + this batch) minus
   10 minutes. Taking this batch's own newest event into account makes lateness independent of where
   trigger boundaries fall, so a replayed or re-split batch classifies every message the same way;
3. split: not ``valid`` → dead letter (its reason named by the shared Python validator); ``event_time``
   before the watermark → late; else valid;
4. write Bronze (every message, as received), Silver (valid, enriched), dead-letter and late Parquet, each
   replay-safe (``streaming.sinks``); publish dead letters to the DLQ topic;
5. hand the valid sessions to ``realtime.duckdb``, merged in one transaction with the batch id
   (``streaming.realtime_store``), then publish the Parquet snapshots readers use.

Accounting, checked by the tests: ``rows_in = valid + dead_letters + late`` per batch, and Bronze holds
every (partition, offset) exactly once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from netflix_assets.bucket import Bucket
from streaming.churn import WATERMARK_MINUTES, enrich, session_rows
from streaming.dimensions import Dimensions, load_dimensions, silver_signature
from streaming.realtime_store import BatchRecord, RealtimeStore
from streaming.sinks import BatchParquetSink, DeadLetterPublisher
from streaming.validation import EVENT_COLUMNS, SCHEMA_VALID, parse_messages, python_errors, reason_code

log = logging.getLogger(__name__)

DIMENSION_CHECK_INTERVAL_S = 60.0


@dataclass
class BatchMetrics:
    """One micro-batch as reported to logs, Dagster and benchmarks."""

    batch_id: int
    skipped: bool = False
    rows_in: int = 0
    valid: int = 0
    dead_letters: int = 0
    late: int = 0
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    input_offsets: dict[str, list[int]] = field(default_factory=dict)  # partition → [first, last + 1]
    watermark: str | None = None
    max_event_time: str | None = None
    windows_updated: int = 0
    duration_s: float = 0.0
    latency_p50_s: float | None = None  # Kafka timestamp → realtime snapshot published
    latency_p95_s: float | None = None
    committed_at: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)  # where the batch's time went

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.skipped:
            return f"batch {self.batch_id}: already committed (replay after a restart), skipped"
        latency = (
            f"; event→warehouse p50 {self.latency_p50_s:.1f} s, p95 {self.latency_p95_s:.1f} s"
            if self.latency_p95_s is not None
            else ""
        )
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_by_reason.items())) or "none"
        return (
            f"batch {self.batch_id}: {self.rows_in:,} in → {self.valid:,} valid, "
            f"{self.dead_letters:,} dead-letter "
            f"({reasons}), {self.late:,} late; {self.windows_updated} window(s) updated; watermark "
            f"{self.watermark}; {self.duration_s:.1f} s "
            f"({self.rows_in / max(self.duration_s, 1e-9):,.0f} ev/s){latency}; "
            f"stages: {', '.join(f'{k} {v:.2f}' for k, v in self.stage_s.items())}"
        )


def _text(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode("utf-8", errors="replace")


def _utc(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1e6, tz=UTC)


def _naive(ts: datetime | None) -> datetime | None:
    """DuckDB TIMESTAMP columns hold naive UTC."""
    return None if ts is None else ts.astimezone(UTC).replace(tzinfo=None)


class _Stopwatch:
    """Records the seconds since the previous lap under a stage name."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.into[stage] = round(self.into.get(stage, 0.0) + now - self.last, 3)
        self.last = now


class MicroBatchProcessor:
    """The ``foreachBatch`` callable; holds the sinks, the store and the cached dimensions."""

    def __init__(
        self,
        spark: SparkSession,
        bucket: Bucket,
        store: RealtimeStore,
        dead_letter_publisher: DeadLetterPublisher | None,
        topic: str,
        on_batch: Callable[[BatchMetrics], None] | None = None,
    ) -> None:
        self.spark = spark
        self.bucket = bucket
        self.store = store
        self.dlq = dead_letter_publisher
        self.topic = topic
        self.on_batch = on_batch
        self.bronze = BatchParquetSink(bucket, "speed/bronze", ("date", "hour"))
        self.silver = BatchParquetSink(bucket, "speed/silver", ("date", "hour"))
        self.dead_letter = BatchParquetSink(bucket, "speed/dead_letter", ("date", "hour"))
        self.late = BatchParquetSink(bucket, "speed/late", ("date", "hour"))
        self.dims: Dimensions = load_dimensions(spark, bucket)
        self._dims_checked = time.monotonic()
        self.last: BatchMetrics | None = None

    # -- dimensions -----------------------------------------------------------------------------------
    def _refresh_dimensions(self) -> None:
        if time.monotonic() - self._dims_checked < DIMENSION_CHECK_INTERVAL_S:
            return
        self._dims_checked = time.monotonic()
        if silver_signature(self.bucket) != self.dims.signature:
            log.info("Silver users/movies/watch_history changed: reloading the stream's dimensions")
            old, self.dims = self.dims, load_dimensions(self.spark, self.bucket)
            old.unpersist()

    # -- the batch ------------------------------------------------------------------------------------
    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.time()
        if self.store.is_committed(batch_id):
            metrics = BatchMetrics(batch_id=batch_id, skipped=True)
            log.info(metrics.summary())
            self._report(metrics)
            return
        self._refresh_dimensions()
        parsed = parse_messages(batch).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            metrics = self._process(parsed, batch_id, started)
        finally:
            parsed.unpersist()
        log.info(metrics.summary())
        self._report(metrics)

    def _report(self, metrics: BatchMetrics) -> None:
        self.last = metrics
        if self.on_batch is not None:
            self.on_batch(metrics)

    def _process(self, parsed: DataFrame, batch_id: int, started: float) -> BatchMetrics:
        metrics = BatchMetrics(batch_id=batch_id)
        lap = _Stopwatch(metrics.stage_s)
        per_partition = (
            parsed.groupBy("partition")
            .agg(
                F.min("offset").alias("first"),
                F.max("offset").alias("last"),
                F.count("*").alias("rows"),
                F.max(F.when(F.col("valid"), F.unix_micros("event_time"))).alias("max_event"),
            )
            .collect()
        )
        metrics.rows_in = sum(r["rows"] for r in per_partition)
        metrics.input_offsets = {str(r["partition"]): [r["first"], r["last"] + 1] for r in per_partition}
        batch_max = max((r["max_event"] for r in per_partition if r["max_event"] is not None), default=None)
        previous = self.store.max_event_time()
        candidates = [
            t for t in (_utc(batch_max), previous and previous.replace(tzinfo=UTC)) if t is not None
        ]
        max_event = max(candidates) if candidates else None
        watermark = max_event - timedelta(minutes=WATERMARK_MINUTES) if max_event else None
        metrics.max_event_time = max_event.isoformat() if max_event else None
        metrics.watermark = watermark.isoformat() if watermark else None
        lap("read_parse")

        late_condition = F.col("event_time") < F.lit(watermark) if watermark else F.lit(False)
        status = F.when(~F.col("valid"), "dead").when(late_condition, "late").otherwise("valid")
        classified = parsed.withColumn("status", status).withColumn("batch_id", F.lit(batch_id).cast("long"))

        counts = (
            classified.groupBy("status")
            .agg(
                F.count("*").alias("n"),
                F.percentile_approx(F.unix_micros("timestamp"), [0.05, 0.5], 10_000).alias("ts_q"),
            )
            .collect()
        )
        by_status: Counter[str] = Counter()
        ts_quantiles = None
        for row in counts:
            by_status[row["status"]] += row["n"]
            if row["status"] == "valid":
                ts_quantiles = row["ts_q"]
        metrics.valid, metrics.dead_letters, metrics.late = (
            by_status["valid"],
            by_status["dead"],
            by_status["late"],
        )
        lap("classify")
        self._write_bronze(classified, batch_id, metrics.rows_in)
        lap("bronze")
        sessions = self._write_valid(classified, batch_id, metrics.valid, lap)
        metrics.dead_by_reason = self._write_dead_letters(classified, batch_id, metrics.dead_letters)
        lap("dead_letter")
        self._write_late(classified, batch_id, metrics.late, watermark)
        lap("late")

        record = BatchRecord(
            batch_id=batch_id,
            rows_in=metrics.rows_in,
            valid=metrics.valid,
            dead_letters=metrics.dead_letters,
            late=metrics.late,
            watermark=_naive(watermark),
            max_event_time=_naive(max_event),
            input_offsets=metrics.input_offsets,
            processing_s=time.time() - started,
        )
        metrics.windows_updated = self.store.commit_batch(record, sessions)
        lap("warehouse_commit")
        self.store.publish()
        lap("publish")
        metrics.committed_at = time.time()
        metrics.duration_s = metrics.committed_at - started
        if ts_quantiles:
            p05, p50 = ts_quantiles
            metrics.latency_p95_s = metrics.committed_at - p05 / 1e6
            metrics.latency_p50_s = metrics.committed_at - p50 / 1e6
        return metrics

    # -- sinks ----------------------------------------------------------------------------------------
    @staticmethod
    def _date_hour(frame: DataFrame, column: str) -> DataFrame:
        return frame.withColumn("date", F.date_format(column, "yyyy-MM-dd")).withColumn(
            "hour", F.hour(column)
        )

    def _write_bronze(self, classified: DataFrame, batch_id: int, rows: int) -> None:
        bronze = classified.select(
            F.lit(self.topic).alias("topic"), "partition", "offset", "key", "value", "timestamp", "batch_id"
        )
        self.bronze.write(self._date_hour(bronze, "timestamp"), batch_id, rows)

    def _write_valid(
        self, classified: DataFrame, batch_id: int, rows: int, lap: Callable[[str], None]
    ) -> Any:
        if rows == 0:
            return pa.table({})
        valid = classified.where(F.col("status") == "valid").select(
            *EVENT_COLUMNS, "partition", "offset", F.col("timestamp").alias("kafka_timestamp"), "batch_id"
        )
        # Not cached: recomputing the broadcast joins for the Silver write costs less CPU than building an
        # in-memory copy of ~45 columns (measured per event in bench/bench_streaming.py).
        enriched = enrich(valid, self.dims)
        table = session_rows(enriched).toArrow()
        lap("aggregate")
        self.silver.write(self._date_hour(enriched, "event_time"), batch_id, rows)
        lap("silver")
        return table

    def _write_dead_letters(self, classified: DataFrame, batch_id: int, rows: int) -> dict[str, int]:
        """Dead letters, with reasons, to Parquet and the DLQ topic; returns counts per reason.

        The few rejected rows are collected and explained by the shared Python validator: the exact Spark
        expression is too large for code generation, and one interpreted Spark job costs more than
        validating a few thousand messages in Python.
        """
        if rows == 0:
            return {}
        collected = (
            classified.where(F.col("status") == "dead")
            .select(
                "partition", "offset", "key", "value", F.unix_micros("timestamp").alias("ts"), SCHEMA_VALID
            )
            .collect()
        )
        errors = [python_errors(r["value"], r[SCHEMA_VALID]) for r in collected]
        reasons = [reason_code(e[0]) for e in errors]
        table = pa.table(
            {
                "partition": pa.array([r["partition"] for r in collected], pa.int32()),
                "offset": pa.array([r["offset"] for r in collected], pa.int64()),
                "key": pa.array([r["key"] for r in collected], pa.binary()),
                "value": pa.array([r["value"] for r in collected], pa.binary()),
                "value_text": pa.array([_text(r["value"]) for r in collected], pa.string()),
                "timestamp": pa.array([r["ts"] for r in collected], pa.timestamp("us", tz="UTC")),
                "reason": pa.array(reasons, pa.string()),
                "errors": pa.array(errors, pa.list_(pa.string())),
                "batch_id": pa.array([batch_id] * len(collected), pa.int64()),
            }
        )
        self.dead_letter.write_arrow(table, batch_id, "timestamp")
        if self.dlq is not None:
            self.dlq.publish(
                [
                    {
                        "partition": r["partition"],
                        "offset": r["offset"],
                        "key": r["key"],
                        "value": r["value"],
                        "reason": reason,
                        "errors": error,
                    }
                    for r, reason, error in zip(collected, reasons, errors, strict=True)
                ]
            )
        return dict(Counter(reasons))

    def _write_late(
        self, classified: DataFrame, batch_id: int, rows: int, watermark: datetime | None
    ) -> None:
        if rows == 0:
            return
        behind = (F.unix_micros(F.lit(watermark)) - F.unix_micros("event_time")) / 1e6
        late = classified.where(F.col("status") == "late").select(
            *EVENT_COLUMNS, "partition", "offset", F.col("timestamp").alias("kafka_timestamp"), "batch_id",
            F.lit(watermark).alias("watermark"),
            behind.alias("behind_watermark_s"),
        )  # fmt: skip
        self.late.write(self._date_hour(late, "event_time"), batch_id, rows)
