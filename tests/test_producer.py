"""The producer against the real embedded broker: counts per fault kind, keys, ordering, replay, shutdown.

Expectations are recomputed from what comes back off the topic (consumed with ``assign()``) and from
the raw CSVs read independently with pandas, never copied from the producer's own report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from core.bucket import Bucket
from core.contracts import events
from core.kafka.admin import ensure_topics
from core.kafka.cluster import KafkaCluster
from core.kafka.offsets import end_offsets
from core.processes import free_port
from core.settings import Settings
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from producer.publish import FAULT_HEADER, LATE, POISON_KINDS, produce
from producer.sources import Catalog, replay_source, synthetic_source

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Bucket, EmbeddedBroker]]:
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("producer") / "data")
    bucket = Bucket.from_settings(settings)
    generate(bucket, scale=0.01, seed=3)
    with EmbeddedBroker.from_settings(settings) as broker:
        yield settings, bucket, broker


def _consume_all(conf: dict[str, str], topic: str) -> list[Any]:
    """Every message of ``topic``, read with assign() from offset 0 up to the exact end offsets."""
    ends = end_offsets(conf, topic)
    consumer = Consumer({**conf, "group.id": "test-readback", "enable.auto.commit": False, "log_level": 0})
    consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
    messages: list[Any] = []
    position = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + 60
    try:
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read back stalled at {position} of {ends}"
            for message in consumer.consume(num_messages=5_000, timeout=0.5):
                assert message.error() is None or message.error().code() == KafkaError._PARTITION_EOF
                if message.error() is None:
                    messages.append(message)
                    position[message.partition()] = message.offset() + 1
    finally:
        consumer.close()
    return messages


def _fresh_topic(settings: Settings, broker: EmbeddedBroker, name: str) -> str:
    ensure_topics(broker.client_config(), {name: settings.kafka_partitions})
    return name


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_synthetic_events_with_poison_and_late_come_back_exactly(env: tuple[Settings, Bucket, Any]) -> None:
    settings, bucket, broker = env
    topic = _fresh_topic(settings, broker, "synthetic_faults")
    n = 5_000
    report = produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=9),
        rate=0,
        count=n,
        poison_rate=0.1,
        late_rate=0.1,
        schema_version="mixed",
        seed=9,
        topic=topic,
        client_conf=broker.client_config(),
    )
    assert (report.sent, report.acked, report.failed, report.unflushed) == (n, n, 0, 0)
    assert report.stopped_by == "count"

    messages = _consume_all(broker.client_config(), topic)
    assert len(messages) == n
    kinds = Counter(dict(m.headers() or []).get(FAULT_HEADER, b"").decode() or None for m in messages)
    assert {k: kinds[k] for k in POISON_KINDS} == report.poison
    assert kinds[LATE] == report.late
    assert 350 < report.poison_total < 650 and 350 < report.late < 650  # ~10% each of 5,000
    assert all(report.poison[k] > 0 for k in POISON_KINDS)

    users = set(pd.read_csv(bucket.path("raw/users.csv"), dtype=str)["user_id"].dropna())
    movies = set(pd.read_csv(bucket.path("raw/movies.csv"), dtype=str)["movie_id"].dropna())
    late_by_time = 0
    partition_of_key: dict[bytes, int] = {}
    sequences: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    versions: Counter[int] = Counter()
    for message in messages:
        fault = dict(message.headers() or []).get(FAULT_HEADER, b"").decode() or None
        errors = events.validate_message(message.value())
        assert bool(errors) == (fault in POISON_KINDS), (fault, errors)
        # Keys are the user id, and a key always lands in the same partition.
        assert partition_of_key.setdefault(message.key(), message.partition()) == message.partition()
        if errors:
            continue
        event = json.loads(message.value())
        assert message.key() == event["user_id"].encode()
        assert event["user_id"] in users and event["movie_id"] in movies
        versions[event["schema_version"]] += 1
        assert ("bitrate_kbps" in event) == (event["schema_version"] == 2)
        lag_s = (_ts(event["producer"]["sent_at"]) - _ts(event["event_time"])).total_seconds()
        late_by_time += lag_s >= 30 * 60
        assert (lag_s >= 30 * 60) == (fault == LATE)
        sequences[(message.partition(), message.key())].append(event["producer"]["sequence"])
    assert late_by_time == report.late
    assert sum(versions.values()) == report.valid and set(versions) == {1, 2}
    # Per-key order is preserved: within a partition, each user's events arrive in send order.
    assert all(seq == sorted(seq) for seq in sequences.values())


def _replay_expected_invalid(frame: pd.DataFrame) -> pd.Series:
    """Rows of the raw watch CSV the event schema rejects, decided with pandas alone."""
    duration = pd.to_numeric(frame["watch_duration_minutes"], errors="coerce")
    progress = pd.to_numeric(frame["progress_percentage"], errors="coerce")
    rating = pd.to_numeric(frame["user_rating"], errors="coerce")
    missing = (
        frame[["session_id", "user_id", "movie_id", "action", "quality", "is_download"]].isna().any(axis=1)
    )
    return (
        missing
        | (duration < 0) | (duration > 1440) | (progress < 0) | (progress > 100)
        | (rating < 1) | (rating > 5) | (rating.notna() & (rating % 1 != 0))
        | ~frame["action"].isin(["started", "completed", "stopped", "paused"])
        | ~frame["quality"].isin(["SD", "HD", "4K", "Ultra HD"])
        | ~frame["is_download"].isin(["True", "False"])
    )  # fmt: skip


def test_replay_sends_every_raw_row_keeping_its_values(env: tuple[Settings, Bucket, Any]) -> None:
    settings, bucket, broker = env
    topic = _fresh_topic(settings, broker, "replay")
    raw = pd.read_csv(bucket.path("raw/watch_history.csv"), dtype=str, keep_default_na=False).replace(
        "", None
    )
    report = produce(
        KafkaCluster.from_settings(settings),
        replay_source(bucket, keep_time=True),
        rate=0,
        schema_version=1,
        seed=1,
        topic=topic,
        client_conf=broker.client_config(),
    )
    assert report.stopped_by == "source exhausted"
    assert report.sent == report.acked == len(raw) and report.poison_total == 0 and report.late == 0

    messages = _consume_all(broker.client_config(), topic)
    assert len(messages) == len(raw)
    invalid = sum(bool(events.validate_message(m.value())) for m in messages)
    assert invalid == int(_replay_expected_invalid(raw).sum())
    # Same rows, same values: compare the multiset of rows (the raw file has deliberate duplicates).
    text_columns = [
        "session_id",
        "user_id",
        "movie_id",
        "device_type",
        "action",
        "quality",
        "location_country",
    ]
    number_columns = ["watch_duration_minutes", "progress_percentage", "user_rating"]

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    sent_rows = Counter()
    for message in messages:
        event = json.loads(message.value())
        assert event["event_time"].endswith("T00:00:00Z") and event["schema_version"] == 1
        sent_rows[
            (*(event.get(c) for c in text_columns), *(number(event.get(c)) for c in number_columns),
             event["event_time"][:10], str(event["is_download"]))
        ] += 1  # fmt: skip
    raw_rows = Counter(
        (*(row[c] for c in text_columns), *(number(row[c]) for c in number_columns), row["watch_date"],
         row["is_download"])
        for row in raw.to_dict("records")
    )  # fmt: skip
    assert sent_rows == raw_rows


def test_rate_and_duration_are_honoured(env: tuple[Settings, Bucket, Any]) -> None:
    settings, bucket, broker = env
    report = produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=2),
        rate=40,
        duration_s=1.5,
        topic=_fresh_topic(settings, broker, "paced"),
        client_conf=broker.client_config(),
    )
    assert report.stopped_by == "duration"
    assert 50 <= report.sent <= 65  # 40 ev/s for 1.5 s, +1 for the first event at t=0
    assert report.acked == report.sent


def test_stop_event_flushes_everything_in_flight(env: tuple[Settings, Bucket, Any]) -> None:
    settings, bucket, broker = env
    topic = _fresh_topic(settings, broker, "stopped")
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    report = produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=4),
        rate=200,
        stop=stop,
        topic=topic,
        client_conf=broker.client_config(),
    )
    assert report.stopped_by == "signal" and report.sent > 50
    assert report.acked == report.sent
    assert sum(end_offsets(broker.client_config(), topic).values()) == report.sent


def test_unreachable_broker_leaves_messages_unflushed_not_lost(env: tuple[Settings, Bucket, Any]) -> None:
    settings, bucket, _broker = env
    dead = {"bootstrap.servers": f"127.0.0.1:{free_port()}"}
    report = produce(
        KafkaCluster.from_settings(settings),
        synthetic_source(Catalog.from_bucket(bucket), seed=5),
        rate=0,
        count=20,
        topic="nowhere",
        client_conf=dead,
        create_topics=False,
        flush_timeout_s=1.0,
    )
    assert report.sent == 20 and report.acked == 0
    assert report.unflushed + report.failed == 20


def test_cli_runs_until_sigterm_then_reports(env: tuple[Settings, Bucket, Any]) -> None:
    settings, _bucket, broker = env
    topic = _fresh_topic(settings, broker, "cli")
    environment = {**os.environ, "NETFLIX_DATA_DIR": str(settings.data_dir)}
    process = subprocess.Popen(
        [str(BIN / "netflix-lambda"), "produce", "--rate", "50", "--topic", topic, "--poison-rate", "0.2",
         "--json", "--quiet", "--seed", "8"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while sum(end_offsets(broker.client_config(), topic).values()) < 20:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert report["stopped_by"] == "signal" and report["acked"] == report["sent"] >= 20
    assert sum(end_offsets(broker.client_config(), topic).values()) == report["sent"]
    assert "received SIGTERM" in stderr.decode()


def test_a_broker_restarting_empty_gets_a_new_producer_and_every_message_is_accounted_for(
    env: tuple[Settings, Bucket, Any], tmp_path: Path
) -> None:
    """The embedded broker's supervisor restarts it empty above its memory cap: the old producer would stall
    (or fail for good); a new one carries on, and what the old one held is counted as failed."""
    _, bucket, _ = env
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    with EmbeddedBroker.from_settings(settings) as broker:
        restarted = threading.Event()

        def restart() -> None:
            time.sleep(4)
            broker.restart()
            restarted.set()

        threading.Thread(target=restart, daemon=True).start()
        report = produce(
            KafkaCluster.from_settings(settings),
            synthetic_source(Catalog.from_bucket(bucket), seed=11),
            rate=50,
            duration_s=14,
            seed=11,
            flush_timeout_s=30,
        )
        assert restarted.is_set()
        after = _consume_all(broker.client_config(), settings.kafka_topic)
        partitions = end_offsets(broker.client_config(), settings.kafka_topic)
    # The topic came back as declared, not with the broker's default for a topic a client asked about.
    assert len(partitions) == settings.kafka_partitions
    assert report.renewals == 1 and report.unflushed == 0
    assert report.sent == report.acked + report.failed
    # The new cluster holds exactly what the new producer sent: once each, all of it acknowledged.
    ids = [json.loads(m.value())["event_id"] for m in after]
    assert len(ids) == len(set(ids)) > 0
    assert len(after) <= report.acked
