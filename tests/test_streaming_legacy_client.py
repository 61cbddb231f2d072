"""A client that is not ours: the original pipeline's events, published with kafka-python, through the stream.

The test writes a JSON-lines export the way the original producer wrote its events (``json.dumps`` of
pandas records: bare ``NaN``, ``timestamp``, no ``event_id`` or ``schema_version``), with the dirt real
exports hold, publishes every line with kafka-python (its default settings, no key) to the embedded Tansu
broker over TCP, and runs the real stream (``streaming.job.run_stream``, the function behind Dagster's job
and ``netflix-lambda stream``). Every expectation comes from the file the test wrote: each line's fate
(Silver, late or dead letter with its reason) is known from how it was written, and the Silver values
from the record itself (:func:`tests.legacy_fixtures.expected_event`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from kafka import KafkaProducer

from core.bucket import Bucket
from core.contracts.speed import BRONZE_KEY, DEAD_LETTER_KEY, LATE_KEY, SILVER_KEY
from core.kafka.admin import ensure_topics
from core.kafka.cluster import KafkaCluster
from core.kafka.offsets import end_offsets
from core.settings import Settings
from core.spark import start_spark
from core.warehouse import WarehouseLayout
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from netflix_assets.defs.speed.stream_run import batch_metadata
from producer.sources import Catalog
from streaming.job import StreamOptions, StreamSummary, run_stream
from streaming.micro_batch import BatchMetrics
from tests.legacy_fixtures import INF, NAN, expected_event, legacy_line, legacy_record

pytestmark = pytest.mark.slow

VALID, LATE = 40, 10


@dataclass
class Export:
    """The JSON-lines file and what each of its lines must become."""

    path: Path
    lines: list[str] = field(default_factory=list)
    fate: list[str] = field(default_factory=list)  # "silver", "late" or the dead-letter reason
    records: dict[str, tuple[dict[str, Any], datetime]] = field(default_factory=dict)  # line → record

    def add(self, line: str, fate: str, record: dict[str, Any] | None = None, moment: Any = None) -> None:
        self.lines.append(line)
        self.fate.append(fate)
        if record is not None:
            self.records[line] = (record, moment)


def write_export(path: Path, catalog: Catalog) -> Export:
    """Valid events of the last minutes (NaN in nullable fields, an Infinity, a T/Z/fraction timestamp, one
    line sent twice), a replayed year-old export (late), and the dirt of real exports (dead letters)."""
    rng = random.Random(41)
    users, movies = list(catalog.user_ids), list(catalog.movie_ids)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    export = Export(path)
    for i in range(VALID):
        moment = now - timedelta(seconds=5 * i)
        extra: dict[str, Any] = {"watch_duration_minutes": INF} if i % 10 == 5 else {}
        if i == 7:
            moment = moment.replace(microsecond=250_000)
            extra["timestamp"] = f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z"
        record = legacy_record(rng, i, moment, users, movies, **extra)
        export.add(legacy_line(record), "silver", record, moment)
    export.add(export.lines[0], "silver")  # re-sent: the same event again (de-duplication is issue 13)
    for i in range(LATE):
        moment = now - timedelta(days=365, minutes=i)
        record = legacy_record(rng, 1_000 + i, moment, users, movies)
        export.add(legacy_line(record), "late", record, moment)
    dirt = {
        "missing_is_download": {"is_download": NAN},
        "missing_user_id": {"user_id": NAN},
        "missing_quality": {"quality": INF},
        "missing_timestamp": {"timestamp": ...},
        "invalid_timestamp": {"timestamp": "2025-02-30 10:00:00"},
        "invalid_user_rating": {"user_rating": 4.5},
    }
    for n, (reason, change) in enumerate(dirt.items()):
        record = legacy_record(rng, 2_000 + n, now, users, movies, **change)
        export.add(legacy_line({k: v for k, v in record.items() if v is not ...}), reason)
    export.add(legacy_line(legacy_record(rng, 2_100, now, users, movies))[:57], "invalid_json")
    path.write_text("\n".join(export.lines) + "\n")  # a JSON-lines file, as the original exports
    return export


def publish_with_kafka_python(bootstrap: str, topic: str, path: Path) -> None:
    """Every line of the file as one message: kafka-python's defaults, no key."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        with path.open() as lines:
            futures = [producer.send(topic, line.rstrip("\n").encode()) for line in lines if line.strip()]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)  # raises if the broker refused a message
    finally:
        producer.close(timeout=10)


@dataclass
class Stack:
    broker: EmbeddedBroker
    spark: Any
    root: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("legacy_client")
    with EmbeddedBroker(root / "broker", record_state=False) as broker:
        spark = start_spark(deployment(root / "spark", broker), "test_streaming_legacy_client")
        try:
            yield Stack(broker, spark, root)
        finally:
            spark.stop()


def deployment(data_dir: Path, broker: EmbeddedBroker, **extra: Any) -> Settings:
    return Settings(
        _env_file=None, data_dir=data_dir, kafka_bootstrap_servers=broker.bootstrap_servers,
        spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="1g", **extra,
    )  # fmt: skip


def run(stack: Stack, name: str, **extra: Any) -> tuple[Settings, Export, StreamSummary, list[BatchMetrics]]:
    """Write the export, publish it with kafka-python to a topic of its own, stream it to the end."""
    settings = deployment(stack.root / name, stack.broker, kafka_topic=f"{name}_events", **extra)
    bucket = Bucket.from_settings(settings)
    generate(bucket, 0.02, seed=11)
    export = write_export(stack.root / f"{name}.jsonl", Catalog.from_bucket(bucket))
    conf = stack.broker.client_config()
    ensure_topics(conf, {settings.kafka_topic: settings.kafka_partitions})
    publish_with_kafka_python(stack.broker.bootstrap_servers, settings.kafka_topic, export.path)
    assert sum(end_offsets(conf, settings.kafka_topic).values()) == len(export.lines)
    batches: list[BatchMetrics] = []
    summary = run_stream(
        stack.spark, bucket, WarehouseLayout.from_settings(settings), KafkaCluster.from_settings(settings),
        StreamOptions.from_settings(settings, available_now=True), on_batch=batches.append,
    )  # fmt: skip
    return settings, export, summary, batches


def sink(settings: Settings, key: str) -> duckdb.DuckDBPyRelation | None:
    folder = Bucket.from_settings(settings).local_path(key)
    files = sorted(str(p) for p in folder.rglob("*.parquet")) if folder.exists() else []
    return duckdb.read_parquet(files, hive_partitioning=False) if files else None


def rows(relation: duckdb.DuckDBPyRelation | None, columns: str) -> list[tuple[Any, ...]]:
    return [] if relation is None else relation.select(columns).fetchall()


def ledger(settings: Settings) -> dict[str, int]:
    path = WarehouseLayout.from_settings(settings).realtime_snapshot("stream_batches")
    table = duckdb.read_parquet(str(path))
    names = [
        c
        for c in ("rows_in", "valid", "dead_letters", "late", "legacy_v0", "duplicates")
        if c in table.columns
    ]
    values = table.select(", ".join(f"sum({c})::BIGINT" for c in names)).fetchall()[0]
    return dict(zip(names, values, strict=True))


def test_legacy_events_from_kafka_python_land_in_exactly_one_place(stack: Stack) -> None:
    settings, export, summary, batches = run(stack, "accept")
    fates = Counter(export.fate)
    dead_reasons = Counter(f for f in export.fate if f not in ("silver", "late"))

    # Bronze: every line of the file, once, with its Kafka coordinates.
    bronze = rows(sink(settings, BRONZE_KEY), 'partition, "offset", value')
    assert sorted(v.decode() for _, _, v in bronze) == sorted(export.lines)
    coordinates = {(p, o) for p, o, _ in bronze}
    assert len(coordinates) == len(export.lines)
    text_at = {(p, o): v.decode() for p, o, v in bronze}

    # Each message in exactly one of Silver, late, dead letter.
    silver = sink(settings, SILVER_KEY)
    silver_rows = silver.select("*").fetchall() if silver else []
    silver_names = silver.columns if silver else []
    late = rows(sink(settings, LATE_KEY), 'partition, "offset", event_time')
    dead = rows(sink(settings, DEAD_LETTER_KEY), 'partition, "offset", reason, errors')
    places = [
        {(r[silver_names.index("partition")], r[silver_names.index("offset")]) for r in silver_rows},
        {(p, o) for p, o, _ in late},
        {(p, o) for p, o, _, _ in dead},
    ]
    placed = set().union(*places)
    assert sum(len(place) for place in places) == len(placed) and placed <= coordinates
    counts = ledger(settings)
    # Lines whose content maps to an event already counted are one event (the id derives from content):
    # counted as duplicates, in no sink; each is the same event as a line Silver holds.
    duplicates = counts["duplicates"]
    assert len(coordinates - placed) == duplicates
    kept = [expected_event(*export.records[text_at[c]]) for c in places[0]]
    assert all(expected_event(*export.records[text_at[c]]) in kept for c in coordinates - placed)
    assert counts["rows_in"] == len(bronze) == len(silver_rows) + len(late) + len(dead) + duplicates
    assert len(silver_rows) == fates["silver"] - duplicates and len(late) == fates["late"]
    assert Counter(reason for _, _, reason, _ in dead) == dead_reasons
    assert all(errors for _, _, _, errors in dead)

    # Silver holds each valid line as its record says, as version 0, with an id derived from its content.
    seen_ids: dict[str, str] = {}
    for row in silver_rows:
        event = dict(zip(silver_names, row, strict=True))
        text = text_at[(event["partition"], event["offset"])]
        record, moment = export.records[text]
        want = expected_event(record, moment)
        want["device_type"] = want["device_type"] or "Unknown"  # Silver's device_type is a segment key
        got = {k: event[k] for k in want}
        got["event_time"] = got["event_time"].astimezone(UTC).replace(tzinfo=None)
        assert got == want, text
        assert seen_ids.setdefault(text, event["event_id"]) == event["event_id"]  # re-sent: same id
    assert len(set(seen_ids.values())) == len(seen_ids) == VALID
    assert all(t.astimezone(UTC) < datetime.now(UTC) - timedelta(days=300) for _, _, t in late)

    # The warehouse has them, and every report counts the legacy events it took.
    realtime = WarehouseLayout.from_settings(settings).realtime_snapshot("engagement_health_realtime")
    sessions = duckdb.read_parquet(str(realtime)).select("sum(total_sessions)::BIGINT").fetchall()[0][0]
    assert sessions == len(silver_rows)
    accepted = (
        len(silver_rows) + len(late) + duplicates
    )  # every line here is v0; a re-send is taken, then dropped
    assert counts["legacy_v0"] == accepted == summary.legacy_v0
    assert counts["dead_letters"] == len(dead) and counts["late"] == len(late)
    assert sum(batch_metadata(m)["legacy_v0"] for m in batches if not m.skipped) == accepted
    assert all(f"{m.legacy_v0:,} legacy v0 accepted" in m.summary() for m in batches if not m.skipped)


def test_strict_schemas_send_every_legacy_event_to_the_dead_letter_sink(stack: Stack) -> None:
    settings, export, summary, _ = run(stack, "strict", stream_accept_v0=False)
    dead = rows(sink(settings, DEAD_LETTER_KEY), "reason, errors")
    assert len(dead) == len(export.lines) == summary.dead_letters
    assert Counter(r for r, _ in dead) == {"legacy_v0_disabled": len(export.lines) - 1, "invalid_json": 1}
    assert all("v0 mapping is turned off" in errors[0] for reason, errors in dead if reason != "invalid_json")
    assert sink(settings, SILVER_KEY) is None and sink(settings, LATE_KEY) is None
    assert ledger(settings)["legacy_v0"] == 0
