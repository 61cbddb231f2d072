"""Exactly-once into BigQuery through two SIGKILLs mid-batch: real broker, real Spark, bqemulator.

The stream runs as ``netflix-lambda stream`` with ``NETFLIX_WAREHOUSE=bigquery`` pointed at the emulator.
It is SIGKILLed once while a batch is being read and once the moment a batch's staging table exists
(the sessions are loaded; the transaction is about to run, or running server-side), then restarted until
the backlog is done. Expectations are computed as in ``tests/test_streaming_exactly_once.py``: from the
messages on the topic and the raw CSVs, in plain DuckDB, never from the stream.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from google.cloud import bigquery

from core.bigquery import bigquery_client
from core.bucket import Bucket
from core.contracts.speed import ENGAGEMENT_TABLE, LEDGER_TABLE
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.warehouse import Warehouse
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from oncall.bigquery_reader import BigQueryWarehouse
from oncall.definitions import load_slo_book
from oncall.indicators import SLIS, Context
from oncall.readings import Readings
from producer.publish import produce
from producer.sources import Catalog, synthetic_source
from streaming.bigquery_store import STAGING_PREFIX
from tests.conftest import bigquery_settings
from tests.emulators.bigquery import BigQueryEmulator
from tests.test_oncall_warehouse import count_queries
from tests.test_streaming_exactly_once import (
    KEYS,
    expected_engagement,
    fault_counts,
    kill_mid_batch,
    read_topic,
    stream_env,
    write_silver_watch_history,
)
from tests.test_streaming_exactly_once import start_stream as start_exactly_once_stream

pytestmark = pytest.mark.slow
FIRST_WAVE, SECOND_WAVE = 3_000, 1_000
METRICS = (
    "total_sessions", "unique_users", "total_watch_minutes", "avg_completion_pct", "avg_content_quality",
    "low_engagement_count", "abandonment_count", "quality_downgrade_count", "completion_count",
    "revenue_impact", "avg_subscriber_value",
)  # fmt: skip


@pytest.fixture(scope="module")
def stack(
    bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, EmbeddedBroker]]:
    data_dir = tmp_path_factory.mktemp("stream-bq") / "data"
    with EmbeddedBroker(data_dir / "broker", record_state=False) as broker:
        settings = bigquery_settings(
            bigquery_emulator, data_dir, kafka_bootstrap_servers=broker.bootstrap_servers,
            bigquery_realtime_dataset="realtime_killed", stream_max_events_per_trigger=1_000,
        )  # fmt: skip
        bucket = Bucket.from_settings(settings)
        generate(bucket, 0.02, seed=11)
        write_silver_watch_history(bucket)
        yield settings, broker


def bigquery_env(settings: Settings) -> dict[str, str]:
    env = stream_env(settings)
    env.update(
        NETFLIX_WAREHOUSE="bigquery",
        NETFLIX_BIGQUERY_PROJECT=settings.bigquery_project or "",
        NETFLIX_BIGQUERY_API_ENDPOINT=settings.bigquery_api_endpoint or "",
        NETFLIX_BIGQUERY_REALTIME_DATASET=settings.bigquery_realtime_dataset,
    )
    return env


def start_stream(settings: Settings, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return start_exactly_once_stream(settings, log, *extra, env=bigquery_env(settings))


def is_staged(client: bigquery.Client, settings: Settings) -> Callable[[int], bool]:
    """Whether a batch's staging table exists: its sessions are loaded, its transaction is next."""
    dataset = f"{settings.bigquery_project}.{settings.bigquery_realtime_dataset}"

    def exists(batch: int) -> bool:
        return f"{STAGING_PREFIX}{batch:012d}" in {t.table_id for t in client.list_tables(dataset)}

    return exists


def test_two_sigkills_mid_batch_leave_exact_totals_in_bigquery(
    stack: tuple[Settings, EmbeddedBroker], tmp_path: Path
) -> None:
    settings, broker = stack
    bucket = Bucket.from_settings(settings)
    conf = broker.client_config()
    client = bigquery_client(Warehouse.from_settings(settings).bigquery)
    source = synthetic_source(Catalog.from_bucket(bucket), seed=4)
    waves = {"count": FIRST_WAVE, "poison_rate": 0.05, "late_rate": 0.05, "client_conf": conf, "rate": 0}
    first = produce(KafkaCluster.from_settings(settings), source, seed=8, schema_version="mixed", **waves)
    assert first.acked == FIRST_WAVE

    logs = [tmp_path / f"stream-{i}.log" for i in range(3)]
    killed = [kill_mid_batch(settings, start_stream(settings, logs[0]), after_commits=1, once_written=False)]
    second = produce(KafkaCluster.from_settings(settings), source, seed=9, **{**waves, "count": SECOND_WAVE})
    second_run = start_stream(settings, logs[1])
    killed.append(
        kill_mid_batch(settings, second_run, killed[0] + 1, False, ready=is_staged(client, settings))
    )
    final = start_stream(settings, logs[2], "--available-now")
    assert final.wait(300) == 0, logs[2].read_text()[-5000:]
    assert f"batch {killed[0]}: " not in logs[0].read_text() and f"batch {killed[0]}: " in logs[1].read_text()
    assert f"batch {killed[1]}: " not in logs[1].read_text()
    # The staged batch was either committed by the emulator after the kill (the replay then skips it)
    # or not (the replay stages and commits it): exactly once either way.
    replayed = logs[2].read_text()
    assert f"batch {killed[1]}: already committed" in replayed or f"batch {killed[1]}: " in replayed

    messages = read_topic(conf, settings.kafka_topic)
    total = FIRST_WAVE + SECOND_WAVE
    poison, late, on_time = fault_counts(messages)
    assert poison == first.poison_total + second.poison_total and late == first.late + second.late

    ledger = f"`{settings.bigquery_project}.{settings.bigquery_realtime_dataset}.{LEDGER_TABLE}`"
    [row] = client.query(
        f"SELECT COUNT(*), COUNT(DISTINCT batch_id), MIN(batch_id), MAX(batch_id), SUM(rows_in), SUM(valid), "
        f"SUM(dead_letters), SUM(late) FROM {ledger}"
    ).result()
    batches, distinct, low, high, rows_in, valid, dead, late_rows = row
    assert batches == distinct == high - low + 1  # one ledger row per batch, none missing, none twice
    assert (rows_in, valid, dead, late_rows) == (total, len(on_time), poison, late)

    engagement = f"`{settings.bigquery_project}.{settings.bigquery_realtime_dataset}.{ENGAGEMENT_TABLE}`"
    actual = client.query(f"SELECT * FROM {engagement}").to_arrow(create_bqstorage_client=False)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("actual_arrow", actual)
    rounded = ", ".join(f"round({m}, 6) AS {m}" for m in METRICS)
    con.execute(
        f"CREATE TABLE actual_rows AS SELECT window_start::TIMESTAMP AS window_start, "
        f"{KEYS.replace('window_start, ', '')}, {rounded} FROM actual_arrow"
    )
    assert con.sql("SELECT sum(total_sessions) FROM actual_rows").fetchall()[0][0] == len(on_time)
    con.register("expected_rows", expected_engagement(con, bucket, on_time).select(f"{KEYS}, {rounded}"))
    only_actual = con.sql("SELECT * FROM actual_rows EXCEPT ALL SELECT * FROM expected_rows").fetchall()
    only_expected = con.sql("SELECT * FROM expected_rows EXCEPT ALL SELECT * FROM actual_rows").fetchall()
    assert only_actual == [] and only_expected == [], (only_actual[:5], only_expected[:5])

    bronze = con.sql(
        f"SELECT partition, \"offset\" FROM read_parquet('{bucket.local_path('speed/bronze')}/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert len(bronze) == total and set(bronze) == {(m["partition"], m["offset"]) for m in messages}
    dataset = f"{settings.bigquery_project}.{settings.bigquery_realtime_dataset}"
    staged = [t for t in client.list_tables(dataset) if t.table_id.startswith(STAGING_PREFIX)]
    assert staged == []  # every staging table was dropped
    assert not (settings.warehouse_dir / "realtime.duckdb").exists()  # nothing fell back to DuckDB
    _the_monitor_reads_this_ledger(settings, client, ledger)


def _the_monitor_reads_this_ledger(settings: Settings, client: bigquery.Client, ledger: str) -> None:
    """The SLO monitor's validation rate on BigQuery: over every batch whose outcome the stream recorded
    (one the emulator committed after the kill is in the ledger without ``published_at``, so not counted)."""
    [(published, consumed, dead, unpublished)] = client.query(
        f"SELECT COUNTIF(published_at IS NOT NULL), SUM(IF(published_at IS NULL, 0, rows_in)), "
        f"SUM(IF(published_at IS NULL, 0, dead_letters)), COUNTIF(published_at IS NULL) FROM {ledger}"
    ).result()
    assert unpublished <= 1 and consumed > 0
    slo = load_slo_book(settings).slos["validation_rate"]
    slo = replace(slo, window_s=time.time())  # every batch of the test
    reader = BigQueryWarehouse(Warehouse.from_settings(settings).bigquery)
    queries = count_queries(reader)
    context = Context(monitor_started_at=0.0, traffic_expected=True)
    try:
        samples = []
        for _ in range(2):  # two samples, as the monitor takes them a few seconds apart
            readings = Readings(None, reader)  # type: ignore[arg-type]  # the topic is not read here
            samples.append(SLIS[slo.sli](slo, readings, context))
            time.sleep(0.5)
    finally:
        reader.close()
    assert len(queries) == 1, queries  # the second sample is served from the refresh's result
    sample = samples[-1]
    assert sample.details == samples[0].details
    details = sample.details
    assert (details["batches"], details["consumed"], details["dead_letters"]) == (published, consumed, dead)
    assert sample.value == pytest.approx((consumed - dead) / consumed)
    assert 0 < sum(details["top_dead_letter_reasons"].values()) <= dead
