"""The embedded broker restarts empty: the stream recovers loudly; on a real Kafka cluster it keeps failing.
A Python worker slow to start (busy cores) restarts the query from its checkpoint, losing nothing.

Real Tansu on 127.0.0.1, real Spark (``local[2]``). Expectations come from what the producer reported it
sent (exact delivery accounting, poison counted by kind), never from the stream under test.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import duckdb
import pytest
from pyspark.sql import SparkSession

from core.bucket import Bucket
from core.contracts.speed import ARCHIVED_CHECKPOINTS_KEY, checkpoint_key
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.spark import use_python
from core.warehouse import Warehouse, WarehouseLayout
from embedded_broker.process import EmbeddedBroker
from producer.publish import ProduceReport, produce
from producer.sources import Catalog, synthetic_source
from streaming.broker_reset import (
    archive_checkpoint,
    batch_base_key,
    read_batch_base,
    write_batch_base,
)
from streaming.job import StreamFailedError, StreamOptions, StreamSummary, run_stream
from streaming.worker_restart import RESTART_PAUSE_S
from tests.spark_fixtures import spark_session_fixture, write_dimensions  # noqa: F401

FIRST, SECOND, PER_TRIGGER = 600, 400, 250  # several batches per run, so batch ids really collide
SPEED_TABLES = ("bronze", "silver", "dead_letter", "late")


def stream_settings(data_dir: Path, bootstrap_servers: str | None = None) -> Settings:
    return Settings(
        _env_file=None, data_dir=data_dir, kafka_bootstrap_servers=bootstrap_servers,
        spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="1g",
        stream_max_events_per_trigger=PER_TRIGGER,
    )  # fmt: skip


def publish(settings: Settings, count: int, seed: int, conf: dict[str, str] | None = None) -> ProduceReport:
    source = synthetic_source(Catalog.from_bucket(Bucket.from_settings(settings)), seed=seed)
    kafka = KafkaCluster.from_settings(settings)
    report = produce(kafka, source, rate=0, count=count, poison_rate=0.05, seed=seed, client_conf=conf)
    assert report.acked == count, report.summary()
    return report


def stream(settings: Settings, spark: SparkSession) -> StreamSummary:
    """Drain the topic into the configured warehouse's realtime sink (DuckDB or BigQuery)."""
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    options = StreamOptions.from_settings(settings, available_now=True, publish_dead_letters=False)
    bucket, warehouse = Bucket.from_settings(settings), Warehouse.from_settings(settings)
    return run_stream(spark, bucket, warehouse, KafkaCluster.from_settings(settings), options)


def parquet_files(bucket: Bucket) -> set[str]:
    return {str(p) for t in SPEED_TABLES for p in bucket.local_path(f"speed/{t}").rglob("*.parquet")}


@pytest.mark.slow
def test_embedded_broker_restart_archives_the_checkpoint_and_loses_nothing_already_committed(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = stream_settings(tmp_path / "data")  # no bootstrap servers: the embedded broker
    bucket = Bucket.from_settings(settings)
    write_dimensions(bucket, users=20, movies=10)
    topics = KafkaCluster.from_settings(settings).topics()
    with EmbeddedBroker.from_settings(settings, topics=topics) as broker:  # found via its state file
        first = publish(settings, FIRST, seed=1)
        before = stream(settings, spark)
        assert before.batches >= 3 and before.broker_resets == 0
        first_files = parquet_files(bucket)
        old_cluster = broker.cluster_id

        broker.restart()  # memory-only: comes back empty, with a new cluster id; topics recreated
        second = publish(settings, SECOND, seed=2)
        with caplog.at_level(logging.INFO, logger="streaming"):
            after = stream(settings, spark)

    assert after.broker_resets == 1 and len(after.resets) == 1
    reset = after.resets[0]
    assert reset.previous_cluster == old_cluster and reset.cluster == broker.cluster_id
    archived = list(bucket.local_path(ARCHIVED_CHECKPOINTS_KEY).glob("watch_events-*"))
    assert len(archived) == 1 and (archived[0] / "commits").is_dir()
    assert reset.archived_to == str(archived[0])
    last_first_run = before.last.batch_id if before.last else -1
    base = json.loads(bucket.read_bytes(batch_base_key(checkpoint_key())))["batch_id_base"]
    assert base == reset.batch_id_base == last_first_run + 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("LOST from the speed layer" in m and str(archived[0]) in m for m in errors), errors
    assert any("batch layer is unaffected" in m and old_cluster in m for m in errors), errors

    con = duckdb.connect()
    layout = WarehouseLayout.from_settings(settings)
    engagement = layout.realtime_snapshot("engagement_health_realtime")
    sessions = con.sql(f"SELECT sum(total_sessions) FROM read_parquet('{engagement}')").fetchall()[0][0]
    assert sessions == first.valid + second.valid  # no late events produced: every valid one is a session
    ledger = con.sql(
        f"SELECT batch_id, valid FROM read_parquet('{layout.realtime_snapshot('stream_batches')}')"
    ).fetchall()
    assert len(ledger) == before.batches + after.batches  # no new batch skipped as "already committed"
    assert sum(v for _, v in ledger) == first.valid + second.valid

    speed = bucket.local_path("speed")
    bronze = con.sql(
        f'SELECT count(*), count(DISTINCT (batch_id, "partition", "offset")), min(batch_id) FILTER '
        f"(WHERE batch_id >= {base}) FROM read_parquet('{speed}/bronze/**/*.parquet', hive_partitioning=true)"
    ).fetchall()[0]
    assert bronze[:2] == (FIRST + SECOND, FIRST + SECOND), f"Bronze holds {bronze[:2]} of {FIRST + SECOND}"
    assert bronze[2] == base  # the second run's batches are numbered after the first run's
    dead = con.sql(
        f"SELECT count(*) FROM read_parquet('{speed}/dead_letter/**/*.parquet', hive_partitioning=true)"
    ).fetchall()[0][0]
    assert dead == first.poison_total + second.poison_total
    assert first_files <= parquet_files(bucket), "files of the first run were deleted"


@pytest.mark.slow
def test_real_kafka_is_never_reset(spark: SparkSession, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    plain = Settings(_env_file=None, data_dir=data_dir)
    topics = KafkaCluster.from_settings(plain).topics()
    with EmbeddedBroker.from_settings(plain, record_state=False, topics=topics) as broker:
        settings = stream_settings(data_dir, broker.bootstrap_servers)  # treated as an external cluster
        bucket = Bucket.from_settings(settings)
        write_dimensions(bucket, users=5, movies=5)
        first = publish(settings, 100, seed=3)
        assert stream(settings, spark).valid == first.valid
        committed = sorted(p.name for p in bucket.local_path(f"{checkpoint_key()}/commits").iterdir())
        broker.restart()
        publish(settings, 50, seed=4)
        with pytest.raises(StreamFailedError) as failed:
            stream(settings, spark)
    message = str(failed.value)
    assert "BrokerDataLossError" in message and "lost data this query already consumed" in message
    assert "real Kafka cluster" in message and "cluster id changed" in message
    assert not bucket.exists(ARCHIVED_CHECKPOINTS_KEY) and not bucket.exists(batch_base_key(checkpoint_key()))
    assert sorted(p.name for p in bucket.local_path(f"{checkpoint_key()}/commits").iterdir()) == committed


@pytest.mark.slow
def test_a_python_worker_slow_to_start_restarts_the_query_and_loses_nothing(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a CI run on overloaded cores met, made on purpose: the Kafka source's runner process takes longer
    than Spark's fixed 10 s to connect back, once. (The workers Spark forks from its daemon, such as the one
    that creates the source, have no such limit: slowing them only delays the query.)"""
    marker = tmp_path / "slowed"
    slow_python = tmp_path / "slow-python"
    slow_python.write_text(
        "#!/bin/sh\n"
        'case "$*" in *python_streaming_source_runner*)\n'
        f'  if mkdir "{marker}" 2>/dev/null; then sleep 15; fi;;\n'
        "esac\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    slow_python.chmod(0o755)
    data_dir = tmp_path / "data"
    with EmbeddedBroker(tmp_path / "broker", record_state=False) as broker:
        settings = stream_settings(data_dir, broker.bootstrap_servers)
        write_dimensions(Bucket.from_settings(settings), users=5, movies=5)
        sent = publish(settings, SECOND, seed=5)
        use_python(spark, str(slow_python))
        try:
            with caplog.at_level(logging.WARNING, logger="streaming"):
                summary = stream(settings, spark)
        finally:
            use_python(spark, sys.executable)

    assert marker.is_dir(), "the wrapper never saw the source runner start"
    assert summary.worker_restarts == 1 and summary.broker_resets == 0, summary.describe("watch_events")
    assert summary.elapsed_s > RESTART_PAUSE_S
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("did not connect back within Spark's fixed 10 s" in m for m in warnings), warnings
    assert (summary.rows_in, summary.valid, summary.dead_letters) == (SECOND, sent.valid, sent.poison_total)
    ledger = WarehouseLayout.from_settings(settings).realtime_snapshot("stream_batches")
    totals = duckdb.sql(f"SELECT sum(rows_in), sum(valid) FROM read_parquet('{ledger}')").fetchall()[0]
    assert totals == (SECOND, sent.valid)


def test_archive_moves_every_checkpoint_file_and_the_base_round_trips(any_bucket: Bucket) -> None:
    checkpoint = checkpoint_key()
    files = {f"{checkpoint}/{name}": f"content of {name}".encode() for name in (
        "metadata", "offsets/0", "offsets/1", "offsets/.1.crc", "commits/0", "sources/0/0",
    )}  # fmt: skip
    for key, data in files.items():
        any_bucket.write_bytes(key, data)
    assert read_batch_base(any_bucket, checkpoint) == 0
    archived = archive_checkpoint(any_bucket, checkpoint, "20250101T000000Z")
    assert archived == f"{ARCHIVED_CHECKPOINTS_KEY}/watch_events-20250101T000000Z"
    for key, data in files.items():
        assert any_bucket.read_bytes(key.replace(checkpoint, archived, 1)) == data
    assert not any_bucket.exists(f"{checkpoint}/offsets/0") and not any_bucket.exists(checkpoint)
    write_batch_base(any_bucket, checkpoint, 7, "test")
    assert read_batch_base(any_bucket, checkpoint) == 7
    any_bucket.write_bytes(batch_base_key(checkpoint), b"{not json")
    with pytest.raises(ValueError, match=r"batch_base\.json"):
        read_batch_base(any_bucket, checkpoint)
