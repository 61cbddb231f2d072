"""The stream counts a re-sent event once: de-duplicated by ``event_id`` within the watermark, drops counted.

Real Tansu broker, real Spark (``local[2]``). A producer retrying without idempotence is simulated twice: the
producer's own ``duplicate_rate`` (the copy follows its original, often in the same micro-batch, sometimes
across a batch boundary) and, after the first run, a raw re-send of already committed messages (only the
de-duplication state of ``realtime.duckdb`` can recognise those). Expectations come from the topic itself
(every copy carries the ``netflix-fault: duplicate`` header), never from the stream.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import Producer
from pyspark.sql import SparkSession

from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.warehouse import WarehouseLayout
from embedded_broker.process import EmbeddedBroker
from producer.publish import DUPLICATE, FAULT_HEADER, LATE, produce
from producer.sources import Catalog, synthetic_source
from tests.spark_fixtures import spark_session_fixture, write_dimensions  # noqa: F401
from tests.test_streaming_broker_restart import stream
from tests.test_streaming_exactly_once import read_topic

pytestmark = pytest.mark.slow

FIRST, PER_TRIGGER, RESENT = 900, 250, 40


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("dedup") / "broker", record_state=False) as running:
        yield running


def test_duplicates_are_dropped_counted_and_accounted(
    spark: SparkSession, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", kafka_bootstrap_servers=broker.bootstrap_servers,
        spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="1g",
        stream_max_events_per_trigger=PER_TRIGGER,
    )  # fmt: skip
    bucket = Bucket.from_settings(settings)
    write_dimensions(bucket, users=20, movies=10)
    conf = broker.client_config()
    report = produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=5),
        rate=0, count=FIRST, poison_rate=0.05, late_rate=0.05, duplicate_rate=0.1, seed=6, client_conf=conf,
    )  # fmt: skip
    assert report.acked == FIRST and report.duplicates > 20, report.summary()
    first = stream(settings, spark)
    assert first.batches >= 4

    # Re-send committed clean messages byte for byte: only the stream's remembered event ids catch these.
    clean = [m for m in read_topic(conf, settings.kafka_topic) if FAULT_HEADER not in m["headers"]]
    resender = Producer({**conf, "enable.idempotence": False})
    for message in clean[:RESENT]:
        resender.produce(settings.kafka_topic, message["value"], headers=[(FAULT_HEADER, DUPLICATE.encode())])
    assert resender.flush(30) == 0
    del resender
    second = stream(settings, spark)

    messages = read_topic(conf, settings.kafka_topic)
    faults = Counter(m["headers"].get(FAULT_HEADER, b"").decode() or None for m in messages)
    assert faults[DUPLICATE] == report.duplicates + RESENT
    poison = sum(n for kind, n in faults.items() if kind not in (None, LATE, DUPLICATE))
    expected_ids = {json.loads(m["value"])["event_id"] for m in messages if FAULT_HEADER not in m["headers"]}
    assert len(expected_ids) == faults[None]  # every clean event has its own id

    assert first.duplicates + second.duplicates == faults[DUPLICATE]
    assert second.duplicates == RESENT and second.valid == 0
    layout = WarehouseLayout.from_settings(settings)
    con = duckdb.connect()
    ledger = f"read_parquet('{layout.realtime_snapshot('stream_batches')}')"
    balance = "rows_in <> valid + dead_letters + late + duplicates"
    assert con.execute(f"SELECT * FROM {ledger} WHERE {balance}").fetchall() == []
    sums = "count(*), sum(rows_in), sum(valid), sum(dead_letters), sum(late), sum(duplicates)"
    totals = con.execute(f"SELECT {sums} FROM {ledger}").fetchall()[0]
    expected = (len(messages), len(expected_ids), poison, faults[LATE], faults[DUPLICATE])
    assert totals == (first.batches + second.batches, *expected)

    silver = f"read_parquet('{bucket.local_path('speed/silver')}/**/*.parquet')"
    silver_ids = [row[0] for row in con.execute(f"SELECT event_id FROM {silver}").fetchall()]
    assert len(silver_ids) == len(set(silver_ids)) and set(silver_ids) == expected_ids
    engagement = layout.realtime_snapshot("engagement_health_realtime")
    sessions = con.execute(f"SELECT sum(total_sessions) FROM read_parquet('{engagement}')").fetchall()[0][0]
    windows = con.execute(
        f"SELECT sum(total_sessions) FROM read_parquet('{layout.realtime_snapshot('active_users_realtime')}')"
    ).fetchall()[0][0]
    assert sessions == windows == len(expected_ids)
    bronze = f"read_parquet('{bucket.local_path('speed/bronze')}/**/*.parquet')"
    # Bronze keeps every copy as received.
    assert con.execute(f"SELECT count(*) FROM {bronze}").fetchall()[0][0] == len(messages)
