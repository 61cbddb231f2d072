"""The Spark Kafka source against a real Tansu broker: exact offsets, admission control, loud data loss.

Expectations come from what the test produced (message counts per partition, confirmed by the broker's
own delivery reports), never from the source under test.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from streaming.kafka_source import KafkaRange, read_range, source_options, split_limit

TOPIC = "source_test"


# -- pure planning ------------------------------------------------------------------------------------------
def test_split_limit_admits_at_most_the_limit_and_always_progresses() -> None:
    rng = random.Random(7)
    for _ in range(500):
        partitions = rng.randint(1, 6)
        start = {p: rng.randint(0, 1_000) for p in range(partitions)}
        end = {p: start[p] + rng.choice([0, 1, rng.randint(0, 5_000)]) for p in range(partitions)}
        limit = rng.randint(1, 4_000)
        capped = split_limit(start, end, limit)
        backlog = sum(end[p] - start[p] for p in end)
        admitted = sum(capped[p] - start[p] for p in end)
        assert admitted == min(backlog, limit)
        assert all(start[p] <= capped[p] <= end[p] for p in end)


def test_a_batch_is_cut_into_contiguous_ranges_of_about_equal_size() -> None:
    from streaming.kafka_source import MIN_TASK_ROWS, KafkaStreamReader

    rng = random.Random(11)
    for _ in range(300):
        min_tasks = rng.randint(0, 8)
        options = source_options({"bootstrap.servers": "127.0.0.1:9"}, TOPIC, minPartitions=min_tasks)
        reader = KafkaStreamReader({k.lower(): v for k, v in options.items()})
        start = {p: rng.randint(0, 1_000) for p in range(rng.randint(1, 4))}
        end = {
            p: o + rng.choice([0, 1, rng.randint(0, 50_000), rng.randint(0, 400_000)])
            for p, o in start.items()
        }
        offsets = {"offsets": {str(p): o for p, o in start.items()}}
        ranges = reader.partitions(offsets, {"offsets": {str(p): o for p, o in end.items()}})
        for partition in start:  # every offset exactly once, in order
            read = [o for r in ranges if r.partition == partition for o in range(r.start, r.end)]
            assert read == list(range(start[partition], end[partition]))
        total = sum(end[p] - start[p] for p in start)
        sizes = [r.end - r.start for r in ranges]
        if min_tasks and total >= MIN_TASK_ROWS * min_tasks + 10 * min_tasks * len(start):
            assert len(ranges) >= min_tasks
            assert max(sizes) <= -(-total // min_tasks)
        split = [r.end - r.start for r in ranges if sum(q.partition == r.partition for q in ranges) > 1]
        assert all(size >= MIN_TASK_ROWS // 2 for size in split)  # no task too small to pay for itself


# -- against the broker -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from embedded_broker.process import EmbeddedBroker

    with EmbeddedBroker(tmp_path_factory.mktemp("source_broker"), record_state=False) as running:
        yield running


def produce(conf: dict[str, str], topic: str, counts: dict[int, int], linger_ms: int = 5) -> dict[int, int]:
    """Produce ``counts[p]`` messages per partition, in several record batches; returns acks per partition."""
    from confluent_kafka import Producer

    acked: dict[int, int] = dict.fromkeys(counts, 0)

    def on_delivery(error: Any, message: Any) -> None:
        if error is None:
            acked[message.partition()] += 1

    producer = Producer({**conf, "linger.ms": linger_ms, "batch.num.messages": 97, "acks": "all"})
    for partition, count in counts.items():
        for i in range(count):
            value = f"{partition}-{i}".encode()
            producer.produce(
                topic, value=value, key=str(i).encode(), partition=partition, on_delivery=on_delivery
            )
            if i % 500 == 0:
                producer.poll(0)
    assert producer.flush(30) == 0
    return acked


@pytest.mark.slow
def test_read_range_returns_exactly_the_requested_offsets_without_waiting_at_the_tail(broker: Any) -> None:
    from core.kafka.admin import ensure_topics
    from core.kafka.offsets import end_offsets

    conf = broker.client_config()
    ensure_topics(conf, {"ranges": 2})
    acked = produce(conf, "ranges", {0: 1_234, 1: 777})
    assert end_offsets(conf, "ranges") == acked  # the tail-confirmed end, not Tansu's high watermark
    for partition, total in acked.items():
        for start, end in ((0, total), (10, 11), (total - 3, total), (total // 3, 2 * total // 3)):
            began = time.monotonic()
            batches = list(read_range(conf, KafkaRange("ranges", partition, start, end), timeout_s=10))
            took = time.monotonic() - began
            offsets = [o for b in batches for o in b.column("offset").to_pylist()]
            values = [bytes(v).decode() for b in batches for v in b.column("value").to_pylist()]
            assert offsets == list(range(start, end))
            assert values == [f"{partition}-{i}" for i in range(start, end)]
            assert took < 5, f"reading [{start}, {end}) of partition {partition} took {took:.1f} s"


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from core.spark import start_spark

    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("source_spark"), spark_master="local[2]",
        spark_shuffle_partitions=2, spark_driver_memory="1g",
    )  # fmt: skip
    session = start_spark(settings, "test_kafka_source")
    yield session
    session.stop()


def run_query(
    spark: Any, conf: dict[str, str], topic: str, checkpoint: Path, limit: int
) -> list[list[tuple[int, int]]]:
    """Run the source under ``availableNow`` into a collecting foreachBatch; returns each batch's rows."""
    from streaming.kafka_source import register

    register(spark)
    batches: list[list[tuple[int, int]]] = []

    def collect(frame: Any, _batch_id: int) -> None:
        batches.append([(r["partition"], r["offset"]) for r in frame.select("partition", "offset").collect()])

    query = (
        spark.readStream.format("netflix_kafka")
        .options(**source_options(conf, topic, max_per_trigger=limit, readTimeoutSeconds=15))
        .load()
        .writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination(180)
    except Exception as exc:  # StreamingQueryException: the source's error, with the JVM context
        raise RuntimeError(str(exc)) from exc
    finally:
        query.stop()
    return batches


@pytest.mark.slow
def test_available_now_honours_the_per_trigger_limit_and_reads_every_offset_once(
    broker: Any, spark: Any, tmp_path: Path
) -> None:
    from core.kafka.admin import ensure_topics

    conf = broker.client_config()
    ensure_topics(conf, {TOPIC: 3})
    acked = produce(conf, TOPIC, {0: 1_500, 1: 900, 2: 1_100})
    limit = 700
    batches = run_query(spark, conf, TOPIC, tmp_path / "checkpoint", limit)
    seen = [c for batch in batches for c in batch]
    expected = {(p, o) for p, n in acked.items() for o in range(n)}
    assert len(seen) == len(expected) and set(seen) == expected
    assert all(0 < len(batch) <= limit for batch in batches)
    assert len(batches) == math.ceil(len(expected) / limit)

    # New messages after a restart are read from the checkpoint on, never twice.
    more = produce(conf, TOPIC, {0: 10, 1: 0, 2: 25})
    again = [c for batch in run_query(spark, conf, TOPIC, tmp_path / "checkpoint", limit) for c in batch]
    assert sorted(again) == sorted((p, acked[p] + i) for p, n in more.items() for i in range(n))


@pytest.mark.slow
def test_a_broker_that_lost_the_checkpointed_offsets_stops_the_query_loudly(
    broker: Any, spark: Any, tmp_path: Path
) -> None:
    from core.kafka.admin import ensure_topics

    conf = broker.client_config()
    ensure_topics(conf, {"restarts": 2})
    acked = produce(conf, "restarts", {0: 300, 1: 200})
    checkpoint = tmp_path / "checkpoint"
    assert sum(len(b) for b in run_query(spark, conf, "restarts", checkpoint, 0)) == sum(acked.values())

    broker.restart()  # memory-only: every topic is gone
    with pytest.raises(RuntimeError) as gone:
        run_query(spark, conf, "restarts", checkpoint, 0)
    assert "BrokerDataLossError" in str(gone.value) and "'restarts'" in str(gone.value)

    ensure_topics(conf, {"restarts": 2})
    produce(conf, "restarts", {0: 50, 1: 20})  # fewer than the checkpoint already consumed
    with pytest.raises(RuntimeError) as backwards:
        run_query(spark, conf, "restarts", checkpoint, 0)
    message = str(backwards.value)
    assert "'restarts'" in message and "offsets went backwards" in message and "cluster id changed" in message
    for partition, offset in acked.items():
        assert f"partition {partition}: checkpoint offset {offset} > broker end offset" in message
