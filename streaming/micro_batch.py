"""What the stream does with one micro-batch of raw Kafka messages (the ``foreachBatch`` function).

One function over the raw batch instead of Spark's stateful aggregation, because Spark drops rows behind
the watermark silently and cannot upsert into DuckDB; here nothing is dropped and every step is
replay-safe:

1. one Spark job parses every message and proves the canonical ones valid (``streaming.validation``),
   joins users and movies, flags churn signals and assigns windows (``streaming.churn``), and hands the
   batch to the driver as Arrow; every later step is a slice of that table. The shared Python validator
   judges the few messages Spark could not prove valid and names every rejected one's reasons;
2. the batch's watermark: the newest valid event time seen so far (ledger + this batch) minus
   10 minutes. Taking this batch's own newest event into account makes lateness independent of where
   trigger boundaries fall, so a replayed or re-split batch classifies every message the same way;
3. split: not ``valid`` → dead letter (its reason named by the shared Python validator); ``event_time``
   before the watermark → late; an ``event_id`` already counted (earlier in this batch, in Kafka order,
   or by a committed batch, ``RealtimeStore.already_seen``) → duplicate, counted and not merged (a
   producer that retries without idempotence re-sends events); else valid;
4. write Bronze (every message, as received), Silver (valid, enriched), dead-letter and late Parquet, each
   replay-safe (``streaming.sinks``); publish dead letters to the DLQ topic;
5. hand the valid sessions to ``realtime.duckdb``, merged in one transaction with the batch id
   (``streaming.realtime_store``), then publish the Parquet snapshots readers use.

Accounting, checked by the tests: ``rows_in = valid + dead_letters + late + duplicates`` per batch, and
Bronze holds every (partition, offset) exactly once (duplicates included: Bronze is the record of what
arrived, Silver of what was counted).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession

from core.bucket import Bucket
from core.contracts.speed import BRONZE_KEY, DEAD_LETTER_KEY, LATE_KEY, SILVER_KEY
from core.stopwatch import Stopwatch
from streaming.churn import SESSION_COLUMNS, WATERMARK_MINUTES, enrich
from streaming.dimensions import Dimensions, load_dimensions, silver_signature
from streaming.realtime_store import BatchRecord, RealtimeStore
from streaming.sinks import BatchParquetSink, DeadLetterPublisher
from streaming.validation import CANONICAL, EVENT_COLUMNS, Verdicts, judge, parse_messages, reason_code

log = logging.getLogger(__name__)

DIMENSION_CHECK_INTERVAL_S = 60.0
SINK_THREADS = 3


@dataclass
class BatchMetrics:
    """One micro-batch as reported to logs, Dagster and benchmarks."""

    batch_id: int
    skipped: bool = False
    rows_in: int = 0
    valid: int = 0
    dead_letters: int = 0
    late: int = 0
    duplicates: int = 0  # on-time events whose event_id was already counted (not merged again)
    non_canonical: int = 0  # messages judged by the Python validator (poison, other encodings)
    legacy_v0: int = 0  # accepted legacy v0 events (valid + late), read through the v0 mapping
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
            f"({reasons}), {self.late:,} late, {self.duplicates:,} duplicate; "
            f"{self.legacy_v0:,} legacy v0 accepted; "
            f"{self.non_canonical:,} judged in Python; "
            f"{self.windows_updated} window(s) updated; watermark "
            f"{self.watermark}; {self.duration_s:.1f} s "
            f"({self.rows_in / max(self.duration_s, 1e-9):,.0f} ev/s){latency}; "
            f"stages: {', '.join(f'{k} {v:.2f}' for k, v in self.stage_s.items())}"
        )


def _text(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode("utf-8", errors="replace")


def _naive(ts: datetime | None) -> datetime | None:
    """DuckDB TIMESTAMP columns hold naive UTC."""
    return None if ts is None else ts.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class _Split:
    """One batch as the driver holds it (Arrow, with ``batch_id``), and where each message goes."""

    rows: pa.Table  # every message
    kept: pa.Table  # valid and on time, without the raw bytes
    late_mask: pa.Array
    dead_mask: pa.Array
    verdicts: Verdicts
    watermark: datetime | None
    max_event: datetime | None


def _latency(kept: pa.Table, committed_at: float) -> tuple[float | None, float | None]:
    """Event→warehouse p50 and p95 in seconds, from the Kafka timestamps of the valid events."""
    if kept.num_rows == 0:
        return None, None
    sent = np.asarray(pc.cast(kept.column("kafka_timestamp"), pa.int64()).to_numpy(), dtype=float)
    p05, p50 = (float(q) for q in np.percentile(sent, [5, 50]))
    return committed_at - p50 / 1e6, committed_at - p05 / 1e6


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
        batch_id_base: int = 0,
        accept_v0: bool = True,
    ) -> None:
        self.spark = spark
        self.bucket = bucket
        self.store = store
        self.dlq = dead_letter_publisher
        self.topic = topic
        self.on_batch = on_batch
        self.batch_id_base = batch_id_base  # added to Spark's ids: see streaming.broker_reset
        self.accept_v0 = accept_v0  # as the source's acceptV0: names why a v0 message was rejected
        self.bronze = BatchParquetSink(bucket, BRONZE_KEY)
        self.silver = BatchParquetSink(bucket, SILVER_KEY)
        self.dead_letter = BatchParquetSink(bucket, DEAD_LETTER_KEY)
        self.late = BatchParquetSink(bucket, LATE_KEY)
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
            try:
                fresh = load_dimensions(self.spark, self.bucket)
            except Exception as exc:  # e.g. read while the batch layer rewrites Silver: keep what works
                log.warning("reloading the dimensions failed (%s); keeping the current ones, retrying in "
                            "%.0f s", exc, DIMENSION_CHECK_INTERVAL_S)  # fmt: skip
                return
            old, self.dims = self.dims, fresh
            old.unpersist()

    # -- the batch ------------------------------------------------------------------------------------
    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.time()
        batch_id += self.batch_id_base  # the ledger's and the sinks' id from here on
        if self.store.is_committed(batch_id):
            metrics = BatchMetrics(batch_id=batch_id, skipped=True)
            log.info(metrics.summary())
            self._report(metrics)
            return
        self._refresh_dimensions()
        metrics = self._process(batch, batch_id, started)
        log.info(metrics.summary())
        self._report(metrics)

    def _report(self, metrics: BatchMetrics) -> None:
        self.last = metrics
        if self.on_batch is not None:
            self.on_batch(metrics)

    def _spark_rows(self, batch: DataFrame) -> pa.Table:
        """The batch's one Spark job: parse, validate, join the dimensions, flag, window; to Arrow.

        Every message comes back (valid or not, with its raw bytes for Bronze), so each sink is a slice of
        one Arrow table instead of another Spark job over a cached frame: seven jobs per batch cost more
        than the work they did (``docs/benchmarks.md``, speed layer).
        """
        return enrich(parse_messages(batch), self.dims).toArrow()

    def _process(self, batch: DataFrame, batch_id: int, started: float) -> BatchMetrics:
        metrics = BatchMetrics(batch_id=batch_id)
        lap = Stopwatch(metrics.stage_s)
        rows = self._spark_rows(batch)
        lap("spark")
        split = self._classify(rows, batch_id, metrics)
        lap("classify")
        self._write_and_commit(split, batch_id, metrics, started)
        lap("sinks_and_warehouse_commit")  # "sinks" alone ran inside this stage, beside the merge
        self.store.publish()
        lap("publish")
        metrics.committed_at = time.time()
        metrics.duration_s = metrics.committed_at - started
        metrics.latency_p50_s, metrics.latency_p95_s = _latency(split.kept, metrics.committed_at)
        latencies = (metrics.latency_p50_s, metrics.latency_p95_s)
        self.store.record_outcome(batch_id, metrics.committed_at, *latencies, metrics.dead_by_reason)
        lap("ledger_outcome")
        return metrics

    def _classify(self, rows: pa.Table, batch_id: int, metrics: BatchMetrics) -> _Split:
        """Valid and on time, late (behind the watermark) or dead letter; counts into ``metrics``."""
        metrics.rows_in = rows.num_rows
        metrics.input_offsets = _offsets(rows)
        verdicts = judge(rows, self.accept_v0)
        metrics.non_canonical = verdicts.non_canonical
        metrics.legacy_v0 = pc.sum(verdicts.legacy_v0).as_py() or 0
        valid = verdicts.valid
        event_time = rows.column("event_time")
        batch_max = pc.max(pc.filter(event_time, valid)).as_py() if rows.num_rows else None
        previous = self.store.max_event_time()
        candidates = [t for t in (batch_max, previous and previous.replace(tzinfo=UTC)) if t is not None]
        max_event = max(candidates) if candidates else None
        watermark = max_event - timedelta(minutes=WATERMARK_MINUTES) if max_event else None
        metrics.max_event_time = max_event.isoformat() if max_event else None
        metrics.watermark = watermark.isoformat() if watermark else None
        behind = (
            pc.fill_null(pc.less(event_time, pa.scalar(watermark, event_time.type)), False)
            if watermark
            else pa.repeat(pa.scalar(False), rows.num_rows)
        )
        late_mask = pc.and_(valid, behind)
        on_time = pc.and_(valid, pc.invert(behind))
        repeated = self._repeated(rows, on_time)
        on_time = pc.and_(on_time, pc.invert(repeated))
        metrics.valid = pc.sum(on_time).as_py() or 0
        metrics.late = pc.sum(late_mask).as_py() or 0
        metrics.duplicates = pc.sum(repeated).as_py() or 0
        metrics.dead_letters = metrics.rows_in - metrics.valid - metrics.late - metrics.duplicates
        batch_ids = pa.repeat(pa.scalar(batch_id, pa.int64()), rows.num_rows)
        rows = rows.append_column("batch_id", batch_ids).rename_columns(
            ["kafka_timestamp" if name == "timestamp" else name for name in rows.column_names] + ["batch_id"]
        )
        kept = rows.drop_columns(["key", "value"]).filter(on_time)  # not copying the raw bytes
        return _Split(rows, kept, late_mask, pc.invert(valid), verdicts, watermark, max_event)

    def _repeated(self, rows: pa.Table, on_time: pa.Array) -> pa.Array:
        """On-time events whose ``event_id`` was already counted: by a committed batch, or earlier in this
        batch in Kafka order (lowest partition, then offset), so a replay picks the same copy."""
        if not pc.any(on_time).as_py():
            return pa.repeat(pa.scalar(False), rows.num_rows)
        position = pc.add(pc.multiply(pc.cast(rows.column("partition"), pa.int64()), 1 << 40),
                          pc.cast(rows.column("offset"), pa.int64()))  # fmt: skip
        row = pa.array(np.arange(rows.num_rows, dtype=np.int64))
        candidates = pa.table({"event_id": rows.column("event_id"), "position": position, "row": row})
        counted = np.zeros(rows.num_rows, dtype=bool)
        counted[self.store.first_unseen(candidates.filter(on_time))] = True
        return pc.and_(on_time, pc.invert(pa.array(counted)))

    def _write_and_commit(self, split: _Split, batch_id: int, metrics: BatchMetrics, started: float) -> None:
        """Write the four sinks and merge the sessions into the warehouse in one transaction.

        The sinks are independent files and pyarrow releases the GIL while encoding: written side by
        side, while DuckDB (which releases it too) merges the sessions. The merge's transaction commits
        only once every sink is written, and that commit is what marks the batch done.
        """
        rows = split.rows
        bronze = rows.select(list(_BRONZE_SOURCE)).rename_columns(list(_BRONZE_NAMES))
        bronze = bronze.add_column(0, "topic", pa.repeat(pa.scalar(self.topic), rows.num_rows))
        record = BatchRecord(
            batch_id=batch_id,
            rows_in=metrics.rows_in,
            valid=metrics.valid,
            dead_letters=metrics.dead_letters,
            late=metrics.late,
            legacy_v0=metrics.legacy_v0,
            watermark=_naive(split.watermark),
            max_event_time=_naive(split.max_event),
            input_offsets=metrics.input_offsets,
            processing_s=time.time() - started,
            duplicates=metrics.duplicates,
        )
        with ThreadPoolExecutor(max_workers=SINK_THREADS + 1, thread_name_prefix="sink") as pool:
            sinks_started = time.perf_counter()
            dead = pool.submit(self._write_dead_letters, rows, split.dead_mask, split.verdicts, batch_id)
            silver = split.kept.select(_silver_columns(rows))
            writes = [
                dead,
                pool.submit(self.bronze.write, bronze, batch_id, "timestamp"),
                pool.submit(self.silver.write, silver, batch_id, "event_time"),
                pool.submit(self._write_late, rows.filter(split.late_mask), batch_id, split.watermark),
            ]

            def sinks_written() -> None:
                for write in writes:
                    write.result()
                metrics.stage_s["sinks"] = round(time.perf_counter() - sinks_started, 3)

            sessions = split.kept.select(list(SESSION_COLUMNS))
            counted = split.kept.select(["event_id", "event_time"])
            metrics.windows_updated = self.store.commit_batch(
                record, sessions, before_commit=sinks_written, counted=counted
            )
            metrics.dead_by_reason = dead.result()

    # -- sinks ----------------------------------------------------------------------------------------
    def _write_dead_letters(
        self, rows: pa.Table, dead_mask: pa.Array, verdicts: Verdicts, batch_id: int
    ) -> dict[str, int]:
        """Dead letters, with reasons, to Parquet and the DLQ topic; returns counts per reason."""
        dead_rows = pc.indices_nonzero(dead_mask)
        if len(dead_rows) == 0:
            return {}
        dead = rows.take(dead_rows)
        errors = verdicts.errors_of(dead_rows)
        reasons = [reason_code(e[0]) for e in errors]
        values = dead.column("value").to_pylist()
        table = dead.select(["partition", "offset", "key", "value"]).append_column(
            "value_text", pa.array([_text(v) for v in values], pa.string())
        )
        table = (
            table.append_column("timestamp", dead.column("kafka_timestamp"))
            .append_column("reason", pa.array(reasons, pa.string()))
            .append_column("errors", pa.array(errors, pa.list_(pa.string())))
            .append_column("batch_id", dead.column("batch_id"))
        )
        self.dead_letter.write(table, batch_id, "timestamp")
        if self.dlq is not None:
            published = ["partition", "offset", "key", "value", "reason", "errors"]
            self.dlq.publish(table.select(published).to_pylist())
        return dict(Counter(reasons))

    def _write_late(self, late: pa.Table, batch_id: int, watermark: datetime | None) -> None:
        if late.num_rows == 0:
            return
        marks = pa.repeat(pa.scalar(watermark, late.column("event_time").type), late.num_rows)
        behind_s = pc.divide(pc.cast(pc.subtract(marks, late.column("event_time")), pa.int64()), 1e6)
        table = (
            late.select([*EVENT_COLUMNS, "partition", "offset", "kafka_timestamp", "batch_id"])
            .append_column("watermark", marks)
            .append_column("behind_watermark_s", behind_s)
        )
        self.late.write(table, batch_id, "event_time")


# Bronze: every message as received, with its Kafka coordinates (and the topic in front).
_BRONZE_SOURCE = ("partition", "offset", "key", "value", "kafka_timestamp", "batch_id")
_BRONZE_NAMES = ("partition", "offset", "key", "value", "timestamp", "batch_id")
_NOT_SILVER = frozenset({"key", "value", CANONICAL})  # legacy_event never leaves parse_messages


def _silver_columns(rows: pa.Table) -> list[str]:
    """Silver: the event, its Kafka coordinates and batch, then the dimensions, flags and window."""
    leading = [*EVENT_COLUMNS, "partition", "offset", "kafka_timestamp", "batch_id"]
    return leading + [c for c in rows.column_names if c not in leading and c not in _NOT_SILVER]


def _offsets(rows: pa.Table) -> dict[str, list[int]]:
    """partition → [first offset, last offset + 1] of the batch."""
    if rows.num_rows == 0:
        return {}
    summary = rows.group_by("partition").aggregate([("offset", "min"), ("offset", "max")])
    return {
        str(p): [first, last + 1]
        for p, first, last in zip(
            summary.column("partition").to_pylist(),
            summary.column("offset_min").to_pylist(),
            summary.column("offset_max").to_pylist(),
            strict=True,
        )
    }
