"""Micro-batch sinks that stay exactly-once when Spark replays a batch: Parquet folders and the DLQ topic.

**Parquet** (``speed/bronze``, ``speed/silver``, ``speed/dead_letter``, ``speed/late``): Spark writes a
batch into a private staging folder, then each file is renamed into the table as
``<partition dirs>/batch-<id>-<part file>``. A replay of the same batch id first removes that batch's
files from the partitions it writes, so after any number of crashes and replays each batch is in the
table exactly once. Readers may briefly see a batch half-moved (a rename per file); the ledger in
``realtime.duckdb`` tells which batches are complete.

**Dead-letter topic**: rejected messages are re-published with their reason in headers, keyed as the
original. Kafka without transactions (and Tansu's transactions do not isolate readers) cannot make this
exactly-once: a crash after the publish and before the batch's commit re-publishes that batch's
dead letters, so the topic is at-least-once and consumers de-duplicate on the
``netflix-source-partition``/``netflix-source-offset`` headers. The Parquet dead-letter table is the
exact record.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame

from netflix_assets.bucket import Bucket

log = logging.getLogger(__name__)

STAGING = "speed/_staging"
SINGLE_FILE_BELOW_ROWS = 50_000  # smaller batches are written as one file per partition folder


def batch_prefix(batch_id: int) -> str:
    return f"batch-{batch_id:010d}-"


class BatchParquetSink:
    """One Parquet table under the bucket, written once per micro-batch, replay-safe."""

    def __init__(self, bucket: Bucket, key: str, partition_by: Sequence[str]) -> None:
        self.bucket = bucket
        self.key = key
        self.name = posixpath.basename(key)
        self.partition_by = tuple(partition_by)

    def write(self, frame: DataFrame, batch_id: int, rows: int) -> int:
        """Write ``frame`` (``rows`` rows, counted by the caller) as batch ``batch_id``; returns files."""
        staging = f"{STAGING}/{self.name}/batch={batch_id}"
        self.bucket.delete(staging, recursive=True)
        if rows == 0:
            return 0
        if rows < SINGLE_FILE_BELOW_ROWS:
            frame = frame.coalesce(1)
        frame.write.mode("overwrite").partitionBy(*self.partition_by).parquet(self.bucket.uri(staging))
        fs = self.bucket.fs
        staged_root = self.bucket.path(staging).rstrip("/") + "/"
        staged = sorted(p for p in fs.find(staged_root) if p.endswith(".parquet"))
        prefix = batch_prefix(batch_id)
        cleared: set[str] = set()
        for source in staged:
            relative_dir, filename = posixpath.split(source[len(staged_root) :])
            target_dir = self.bucket.path(posixpath.join(self.key, relative_dir))
            if target_dir not in cleared:
                self._remove_batch_files(target_dir, prefix)
                cleared.add(target_dir)
            fs.makedirs(target_dir, exist_ok=True)
            fs.mv(source, posixpath.join(target_dir, prefix + filename))
        self.bucket.delete(staging, recursive=True)
        return len(staged)

    def write_arrow(self, table: Any, batch_id: int, timestamp_column: str) -> int:
        """Write a driver-side Arrow table as batch ``batch_id``, one file per date/hour of
        ``timestamp_column``, under the same names a replay overwrites (write, then rename)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return 0
        when = table.column(timestamp_column)
        dates = pc.strftime(when, format="%Y-%m-%d").to_pylist()
        hours = pc.hour(when).to_pylist()
        groups: dict[tuple[str, int], list[int]] = {}
        for i, key in enumerate(zip(dates, hours, strict=True)):
            groups.setdefault(key, []).append(i)
        prefix = batch_prefix(batch_id)
        for (date, hour), rows in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or -1)):
            directory = self.bucket.path(
                f"{self.key}/date={date or '__HIVE_DEFAULT_PARTITION__'}/hour={'' if hour is None else hour}"
            )
            self._remove_batch_files(directory, prefix)
            self.bucket.fs.makedirs(directory, exist_ok=True)
            target = posixpath.join(directory, f"{prefix}driver.parquet")
            tmp = posixpath.join(directory, f".{prefix}driver.parquet.tmp")
            with self.bucket.fs.open(tmp, "wb") as handle:
                pq.write_table(table.take(rows), handle)
            self.bucket.fs.mv(tmp, target)
        return len(groups)

    def _remove_batch_files(self, directory: str, prefix: str) -> None:
        fs = self.bucket.fs
        if not fs.exists(directory):
            return
        stale = [p for p in fs.ls(directory, detail=False) if posixpath.basename(p).startswith(prefix)]
        if stale:
            log.info(
                "%s: removing %d file(s) of an earlier attempt of this batch in %s",
                self.name,
                len(stale),
                directory,
            )
            for path in stale:
                fs.rm(path)


class DeadLetterPublisher:
    """Re-publishes rejected messages to the dead-letter topic (at-least-once; see module docstring)."""

    def __init__(self, client_conf: dict[str, str], topic: str, source_topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.source_topic = source_topic
        self.errors: list[str] = []
        self._producer = Producer(
            {
                **client_conf,
                "client.id": "netflix-stream-dlq",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "log_level": 0,
            }
        )

    def publish(self, rows: Sequence[Any], timeout_s: float = 30.0) -> int:
        """Send ``rows`` (partition, offset, key, value, timestamp, reason, errors) and wait for every ack."""
        self.errors.clear()

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                self.errors.append(str(error))

        for row in rows:
            headers = [
                ("netflix-dlq-reason", str(row["reason"]).encode()),
                ("netflix-dlq-errors", json.dumps(list(row["errors"] or [])).encode()),
                ("netflix-source-topic", self.source_topic.encode()),
                ("netflix-source-partition", str(row["partition"]).encode()),
                ("netflix-source-offset", str(row["offset"]).encode()),
            ]
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value=row["value"],
                        key=row["key"],
                        headers=headers,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
        remaining = self._producer.flush(timeout_s)
        if remaining or self.errors:
            raise RuntimeError(
                f"dead-letter topic {self.topic!r}: {remaining} message(s) unacknowledged after "
                f"{timeout_s:.0f} s, "
                f"{len(self.errors)} failed (first: {self.errors[:1]}); the micro-batch will be retried"
            )
        return len(rows)

    def close(self) -> None:
        self._producer.flush(10)
