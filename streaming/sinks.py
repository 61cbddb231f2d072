"""Micro-batch sinks that stay exactly-once when Spark replays a batch: Parquet folders and the DLQ topic.

**Parquet** (``speed/bronze``, ``speed/silver``, ``speed/dead_letter``, ``speed/late``): the driver
writes each batch's rows, which it holds as Arrow, as one file per date/hour folder named
``batch-<id>-part-0.parquet``, written under a hidden name and then renamed. A replay of the same batch
id first removes that batch's files from the folders it writes, so after any number of crashes and
replays each batch is in the table exactly once. On GCS a rename is copy + delete, so readers may
briefly see part of a batch; the ledger in ``realtime.duckdb`` tells which batches are complete.

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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import Producer

from core.bucket import Bucket

log = logging.getLogger(__name__)

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # what Hive-style readers take for a null partition value


def batch_prefix(batch_id: int) -> str:
    return f"batch-{batch_id:010d}-"


def _same(values: pa.Array, value: object) -> pa.Array:
    """Element-wise equality where null equals null (a null partition value is a group too)."""
    return pc.is_null(values) if value is None else pc.equal(values, pa.scalar(value, values.type))


class BatchParquetSink:
    """One Parquet table under the bucket, written once per micro-batch, replay-safe."""

    def __init__(self, bucket: Bucket, key: str) -> None:
        self.bucket = bucket
        self.key = key
        self.name = posixpath.basename(key)

    def write(self, table: pa.Table, batch_id: int, timestamp_column: str) -> int:
        """Write ``table`` as batch ``batch_id``, one file per date/hour of ``timestamp_column``, under
        names a replay of the batch overwrites (write to a hidden name, then rename). Returns files.

        The driver writes the micro-batch it already holds as Arrow: a Spark write job per sink cost more
        (a job, a row→column conversion and a commit protocol each) than the Parquet encoding itself.
        """
        if table.num_rows == 0:
            return 0
        when = table.column(timestamp_column)
        dates = pc.strftime(when, format="%Y-%m-%d")
        hours = pc.hour(when)
        groups = pa.table({"date": dates, "hour": hours}).group_by(["date", "hour"]).aggregate([])
        prefix = batch_prefix(batch_id)
        for date, hour in sorted(
            zip(groups.column("date").to_pylist(), groups.column("hour").to_pylist(), strict=True),
            key=lambda key: (key[0] or "", -1 if key[1] is None else key[1]),
        ):
            rows = (
                table  # the usual case, a batch within one hour: no copy
                if groups.num_rows == 1
                else table.filter(
                    pc.and_kleene(_same(dates, date), _same(hours, hour)).fill_null(False)  # type: ignore[arg-type]
                )
            )
            directory = self.bucket.path(
                f"{self.key}/date={date or HIVE_NULL}/hour={HIVE_NULL if hour is None else hour}"
            )
            self._remove_batch_files(directory, prefix)
            self.bucket.fs.makedirs(directory, exist_ok=True)
            target = posixpath.join(directory, f"{prefix}part-0.parquet")
            tmp = posixpath.join(directory, f".{prefix}part-0.parquet.tmp")
            with self.bucket.fs.open(tmp, "wb") as handle:
                pq.write_table(rows, handle)
            self.bucket.fs.mv(tmp, target)
        return groups.num_rows

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
