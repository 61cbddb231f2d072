"""The Lambda merge end to end: batch truth up to W, the speed layer after, reconciled (issue 13, items 1-4).

Real broker, real Spark stream (in this process), real dbt through Dagster (the gold assets and the
reconciliation check, as the hourly job runs them). Two phases on one topic, with event times chosen by the
test (``tests/serving_scenario.py``). The stream drains each wave of events with ``availableNow`` before the
next is sent, and a wave spans less than the stream's 10-minute watermark delay, so no event is late unless
the test makes it so:

1. a clean run: on-time events only. W is the stream's watermark floored to 5 minutes; the served windows
   equal an independent computation; the reconciliation is exact;
2. faults: re-sent duplicates (the producer's and raw re-sends of committed events), poison, late events, an
   orphan user and an orphan movie, a landed CSV session replayed as an event, two events of one session.
   The served numbers still equal the independent computation, and the reconciliation reports exactly the
   injected causes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetsDefinition, materialize
from pyspark.sql import SparkSession

from core.bigquery import naive_utc
from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster
from core.serving_tables import serving_tables
from core.settings import Settings
from core.warehouse import Warehouse
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from netflix_assets.defs.dbt import definitions as gold
from netflix_assets.defs.serving.reconciliation import CHECK_NAME, speed_layer_matches_batch_truth
from netflix_assets.resources import build_resources
from producer.publish import LATE, EventFactory
from producer.sources import Catalog, synthetic_source
from reference.marts import compute_reference, write_silver_parquet
from tests.serving_scenario import COUNTS, SEGMENT, Sent, one, publish, record_of, spread, truth, watermark_of
from tests.spark_fixtures import spark_session_fixture  # noqa: F401
from tests.test_streaming_broker_restart import stream

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 30, 10, 0)  # after the generated history (2024-2025), before today
WAVES, WAVE_SPAN = (0, 10, 20), 9.5  # minutes after T0: the clean phase, one stream run per wave
LATE_EVENTS, POISON = 12, 10


@dataclass
class Phase:
    settings: Settings
    reference: duckdb.DuckDBPyConnection
    result: Any  # dagster ExecuteInProcessResult of the gold build + reconciliation check
    sent: Sent

    @property
    def check(self) -> Any:
        [evaluation] = [e for e in self.result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
        return evaluation


def build(settings: Settings) -> Any:
    [assets] = [a for a in gold.definitions(settings).assets if isinstance(a, AssetsDefinition)]
    result = materialize(
        [assets, speed_layer_matches_batch_truth], resources=build_resources(settings), raise_on_error=False
    )
    assert result.success, [str(e) for e in result.all_events if e.is_failure]
    return result


def landed_history(settings: Settings) -> duckdb.DuckDBPyConnection:
    """Generated CSVs, and the reference's Silver Parquet in the bucket (the stream's dimensions and the
    batch layer's Silver); returns the reference connection."""
    bucket = Bucket.from_settings(settings)
    generate(bucket, scale=0.02, seed=7)
    reference = compute_reference(bucket.local_path("raw"))
    write_silver_parquet(reference, bucket.local_path("silver"))
    return reference


def stream_clean_waves(settings: Settings, broker: EmbeddedBroker, spark: SparkSession) -> None:
    """The clean phase's on-time events, each wave drained by the stream before the next is sent."""
    records = synthetic_source(Catalog.from_bucket(Bucket.from_settings(settings)), seed=3)
    factory = EventFactory(seed=4)
    for begin in WAVES:
        wave = spread(factory, records, T0, begin, begin + WAVE_SPAN, 75)
        publish(KafkaCluster.from_settings(settings), broker.client_config(), wave)
        stream(settings, spark)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("serving") / "broker", record_state=False) as running:
        yield running


@pytest.fixture(scope="module")
def clean(spark: SparkSession, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Phase:
    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("serving") / "data",
        kafka_bootstrap_servers=broker.bootstrap_servers, spark_master="local[2]", spark_shuffle_partitions=2,
        spark_driver_memory="1g", stream_max_events_per_trigger=150,
    )  # fmt: skip
    reference = landed_history(settings)
    stream_clean_waves(settings, broker, spark)
    result = build(settings)
    return Phase(settings, reference, result, Sent.read(broker.client_config(), settings.kafka_topic))


@pytest.fixture(scope="module")
def faulted(clean: Phase, spark: SparkSession, broker: EmbeddedBroker) -> Phase:
    stream_fault_waves(clean.settings, broker, spark, clean.reference)
    result = build(clean.settings)
    return Phase(
        clean.settings, clean.reference, result, Sent.read(broker.client_config(), clean.settings.kafka_topic)
    )


def stream_fault_waves(
    settings: Settings, broker: EmbeddedBroker, spark: SparkSession, reference: duckdb.DuckDBPyConnection
) -> None:
    """The faulted phase's events (module docstring, item 2), in two stream runs."""
    conf = broker.client_config()
    kafka = KafkaCluster.from_settings(settings)
    bucket = Bucket.from_settings(settings)
    records = synthetic_source(Catalog.from_bucket(bucket), seed=5)
    factory = EventFactory(seed=6, duplicate_rate=0.1)
    template = next(records)
    csv_row = reference.execute("SELECT * FROM silver_watch_history LIMIT 1").df().iloc[0].to_dict()
    wave2 = spread(factory, records, T0, 30, 39.5, 100)
    wave2 += [
        one(factory, {**template, "session_id": "orphan_u", "user_id": "user_not_in_silver"}, T0, 32.5),
        one(factory, {**template, "session_id": "orphan_m", "movie_id": "movie_not_in_silver"}, T0, 33),
        one(factory, record_of(csv_row), T0, 33.5),  # the landed CSV session, replayed as an event
        one(factory, {**template, "session_id": "twice"}, T0, 34),
        one(factory, {**template, "session_id": "twice", "action": "completed", "progress_percentage": 100.0},
            T0, 34.5),
    ]  # fmt: skip
    poisoner = EventFactory(seed=7, poison_rate=1.0)
    wave2 += [poisoner.build(template, now=T0.timestamp()) for _ in range(POISON)]
    publish(kafka, conf, wave2)
    stream(settings, spark)
    late = [one(factory, next(records), T0, 2 + 1.5 * i, fault=LATE) for i in range(LATE_EVENTS)]
    publish(kafka, conf, spread(factory, records, T0, 40, 49.5, 60) + late)
    stream(settings, spark)


def published(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` over the settings' warehouse, each ``{model}`` naming a published model; timestamps
    as naive UTC (BigQuery answers TIMESTAMP with a zone, DuckDB the batch layer's naive UTC)."""
    with serving_tables(Warehouse.from_settings(settings)) as tables:
        models = {name: tables.name(name) for name in re.findall(r"\{(\w+)\}", sql)}
        _, rows = tables.rows(sql.format(**models))
    return [tuple(naive_utc(v) if isinstance(v, datetime) and v.tzinfo else v for v in row) for row in rows]


def served(settings: Settings) -> pd.DataFrame:
    columns = ["window_start", *SEGMENT.split(", "), *COUNTS, "total_watch_minutes", "served_from"]
    rows = published(
        settings,
        f"SELECT window_start, {SEGMENT}, {', '.join(COUNTS)}, round(total_watch_minutes, 2) AS "
        "total_watch_minutes, served_from FROM {serving_engagement_5min}",
    )
    return pd.DataFrame(rows, columns=columns)


def assert_served_equals_truth(phase: Phase) -> datetime:
    con = truth(phase.reference, phase.sent)
    w = watermark_of(con)
    con.register("actual", served(phase.settings))
    columns = f"window_start, {SEGMENT}, {', '.join(COUNTS)}, total_watch_minutes, served_from"
    difference = "SELECT {columns} FROM {left} EXCEPT ALL SELECT {columns} FROM {right}"
    extra = con.execute(difference.format(columns=columns, left="actual", right="x_served_5min")).fetchall()
    missing = con.execute(difference.format(columns=columns, left="x_served_5min", right="actual")).fetchall()
    assert missing == [] and extra == [], (missing[:5], extra[:5])
    batch_end, speed_start = con.execute(
        "SELECT max(window_start) FILTER (WHERE served_from = 'batch'), "
        "min(window_start) FILTER (WHERE served_from = 'speed') FROM actual"
    ).fetchall()[0]
    assert batch_end + timedelta(minutes=5) <= w <= speed_start
    con.unregister("actual")
    return w


def assert_monthly_active_users_exact(phase: Phase) -> None:
    """The month of the stream: distinct viewers across the boundary, each once."""
    con = phase.reference
    expected, batch_side, speed_side = con.execute(
        """
        WITH month AS (SELECT date_trunc('month', w)::DATE AS m FROM x_w),
             b AS (SELECT DISTINCT user_id FROM x_master, month
                   WHERE date_trunc('month', event_time)::DATE = m),
             s AS (SELECT DISTINCT user_id FROM x_speed, month
                   WHERE date_trunc('month', event_time)::DATE = m)
        SELECT (SELECT count(*) FROM (SELECT * FROM b UNION SELECT * FROM s)), (SELECT count(*) FROM b),
               (SELECT count(*) FROM s)
        """
    ).fetchall()[0]
    [(actual, batch_users, speed_only)] = published(
        phase.settings,
        "SELECT sum(monthly_active_users), sum(batch_users), sum(speed_only_users) "
        "FROM {serving_monthly_active_users} WHERE month_start = DATE '2026-11-01'",
    )
    assert actual == expected and batch_users == batch_side and speed_only == expected - batch_side
    assert expected < batch_side + speed_side  # viewers on both sides of W: a sum would count them twice


def test_clean_run_serves_batch_truth_before_w_and_the_speed_layer_after(clean: Phase) -> None:
    w = assert_served_equals_truth(clean)
    assert w == T0 + timedelta(minutes=15)  # newest event 10:29:22, minus 10 minutes, floored to 5 minutes
    [(stored, last_batch)] = published(
        clean.settings, "SELECT batch_watermark, last_batch_id FROM {batch_watermark}"
    )
    assert stored == w and last_batch >= 1
    materializations = clean.result.get_asset_materialization_events()
    assert len(materializations) > 20  # every model of the build carries W
    for event in materializations:
        metadata = event.materialization.metadata
        assert metadata["batch_watermark"].value == w.replace(tzinfo=UTC).timestamp(), event.asset_key
        assert metadata["batch_watermark_detail"].value["batch_watermark"] == "2026-11-30T10:15:00+00:00"
    assert_monthly_active_users_exact(clean)


def test_clean_run_reconciles_exactly(clean: Phase) -> None:
    check = clean.check
    assert check.passed, check.description
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert metadata["windows_compared"] == 3  # 10:00, 10:05, 10:10: every window ending at or before W
    assert set(metadata["differences"].values()) == {0} and metadata["unexplained"] == {}
    assert metadata["late_events"] == metadata["rejected_events"] == metadata["superseded_events"] == 0
    assert metadata["dead_letters"] == metadata["duplicates_dropped_by_stream"] == 0


def test_faults_still_serve_the_truth_and_each_session_once(faulted: Phase) -> None:
    w = assert_served_equals_truth(faulted)
    assert w == T0 + timedelta(minutes=35)
    assert published(
        faulted.settings, f"SELECT count(*) FROM {{fct_watch_sessions}} WHERE event_time >= TIMESTAMP '{w}'"
    ) == [(0,)]
    rows = dict(
        published(
            faulted.settings,
            "SELECT session_id, origin FROM {fct_watch_sessions} "
            "WHERE session_id IN ('twice', 'orphan_u', 'orphan_m')",
        )
    )
    assert rows == {"twice": "stream"}
    [(action,)] = published(
        faulted.settings, "SELECT action FROM {fct_watch_sessions} WHERE session_id = 'twice'"
    )
    assert action == "completed"  # the newer event of the session won
    csv_session = faulted.reference.execute("SELECT session_id FROM silver_watch_history LIMIT 1").fetchall()[
        0
    ][0]
    assert published(
        faulted.settings, f"SELECT origin FROM {{fct_watch_sessions}} WHERE session_id = '{csv_session}'"
    ) == [("history",)]
    quarantine = published(
        faulted.settings, "SELECT session_id, reason FROM {stream_events_quarantine} ORDER BY 1"
    )
    assert quarantine == [("orphan_m", "orphan_movie"), ("orphan_u", "orphan_user")]
    assert_monthly_active_users_exact(faulted)


def test_reconciliation_reports_exactly_the_injected_causes(faulted: Phase) -> None:
    check = faulted.check
    metadata = {k: v.value for k, v in check.metadata.items()}
    duplicates = faulted.sent.count("duplicate")
    assert duplicates >= 5  # the producer's re-sends (10 % of the last two waves)
    assert metadata["late_events"] == LATE_EVENTS
    assert metadata["rejected_events"] == 2 and metadata["superseded_events"] == 2
    assert metadata["dead_letters"] == POISON and faulted.sent.count("dead") == POISON
    assert metadata["duplicates_dropped_by_stream"] == duplicates
    assert metadata["differences"]["sessions"] == LATE_EVENTS - 2 - 2
    assert metadata["unexplained"] == {}
    assert not check.passed and check.severity == AssetCheckSeverity.WARN  # 8 of ~350 sessions: above 1 %
    assert "12 late event(s)" in check.description
