"""The realtime sink on BigQuery (bqemulator) against the DuckDB sink: same batches in, same tables out.

Random sessions (``tests/test_streaming_store.py``'s generator) and a handful of crafted ones that raise a
segment alert and then clear it are committed to both sinks, replays included; every table of the
BigQuery dataset must then equal the DuckDB file's table row for row. Exactly-once through real SIGKILLs
of a real stream is in ``tests/test_streaming_bigquery.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from google.cloud import bigquery

from core.bigquery import bigquery_client
from core.contracts.speed import ALERTS_TABLE, ENGAGEMENT_TABLE, LEDGER_TABLE
from core.warehouse import BigQueryTarget, WarehouseLayout
from streaming import bigquery_store
from streaming.bigquery_store import STAGING_PREFIX, BigQueryRealtimeStore, realtime_schema
from streaming.realtime_store import RealtimeStore, running_owner
from tests.emulators.bigquery import BigQueryEmulator
from tests.test_streaming_store import T0, record, session_table, sessions

CLOCK_COLUMNS = {"committed_at", "updated_at", "processing_s"}  # wall-clock values differ between sinks


def alert_sessions(low: bool, n: int, minute: int = 0) -> list[dict[str, Any]]:
    """``n`` sessions of segment 0 in the window starting ``minute`` after T0, all low-engagement or none."""
    start = T0 + timedelta(minutes=minute)
    return [
        {"window_start": start, "segment": 0, "user_id": f"a{i % 3}", "minutes": 10.0,
         "progress": 5.0 if low else 90.0, "imdb": 7.0, "low": low, "abandoned": False, "downgrade": False,
         "completed": not low, "spend": 11.0 + i % 3}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def sinks(
    bigquery_emulator: BigQueryEmulator, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[RealtimeStore, BigQueryRealtimeStore]]:
    layout = WarehouseLayout(tmp_path / "warehouse")
    dataset = f"rt_{request.node.name[:40].replace('[', '_').replace(']', '_')}"
    target = BigQueryTarget(project=bigquery_emulator.project, realtime_dataset=dataset,
                            api_endpoint=bigquery_emulator.endpoint)  # fmt: skip
    duck = RealtimeStore(layout)
    bq = BigQueryRealtimeStore(bigquery_client(target), target, WarehouseLayout(tmp_path / "bq-owner"))
    try:
        yield duck, bq
    finally:
        duck.close()
        bq.close()


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, float):
        return round(value, 9)
    return value


def duckdb_rows(store: RealtimeStore, table: str) -> list[tuple]:
    columns = [c for c, _ in realtime_schema()[table] if c not in CLOCK_COLUMNS]
    rows = store.con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return sorted((tuple(_normalise(v) for v in row) for row in rows), key=repr)


def bigquery_rows(store: BigQueryRealtimeStore, table: str) -> list[tuple]:
    columns = [c for c, _ in realtime_schema()[table] if c not in CLOCK_COLUMNS]
    arrow = store.client.query(f"SELECT {', '.join(columns)} FROM `{store.table(table)}`").to_arrow(
        create_bqstorage_client=False
    )
    rows = duckdb.from_arrow(arrow).fetchall()
    return sorted((tuple(_normalise(v) for v in row) for row in rows), key=repr)


def assert_same_tables(duck: RealtimeStore, bq: BigQueryRealtimeStore) -> None:
    for table in realtime_schema():
        assert bigquery_rows(bq, table) == duckdb_rows(duck, table), table
    assert bq.counts() == duck.counts()
    assert bq.next_batch_id() == duck.next_batch_id()
    assert bq.max_event_time() == duck.max_event_time()


def commit_both(duck: RealtimeStore, bq: BigQueryRealtimeStore, batch_id: int, batch: list[dict[str, Any]],
                end: datetime, watermark: datetime | None = None) -> tuple[int, int]:  # fmt: skip
    rec = record(batch_id, len(batch), end, watermark)
    return duck.commit_batch(rec, session_table(batch)), bq.commit_batch(rec, session_table(batch))


def test_both_sinks_hold_the_same_tables_through_replays_alerts_and_pruning(
    sinks: tuple[RealtimeStore, BigQueryRealtimeStore],
) -> None:
    duck, bq = sinks
    end = T0 + timedelta(minutes=15)
    first, second = sessions(1, 300), sessions(2, 250)
    assert commit_both(duck, bq, 0, first, end) == (3, 3)
    assert commit_both(duck, bq, 1, second, end) == (3, 3)
    for store in (duck, bq):  # what is known once the batch is published: latency, dead letters' reasons
        store.record_outcome(1, 1_800_000_000.25, 0.5, 1.5, {"invalid_json": 2})
    assert_same_tables(duck, bq)

    assert commit_both(duck, bq, 1, second, end) == (0, 0)  # a replay: no-op in both
    assert_same_tables(duck, bq)

    # A segment that crosses the alert threshold in one batch and falls back under it in the next.
    assert commit_both(duck, bq, 2, alert_sessions(low=True, n=40, minute=20), end) == (1, 1)
    segment_alerts = [r for r in bigquery_rows(bq, ALERTS_TABLE) if r[2] == "segment"]
    assert segment_alerts, "the crafted batch must raise a segment alert"
    assert_same_tables(duck, bq)
    commit_both(duck, bq, 3, alert_sessions(low=False, n=400, minute=20), end)
    assert len([r for r in bigquery_rows(bq, ALERTS_TABLE) if r[2] == "segment"]) < len(segment_alerts)
    assert_same_tables(duck, bq)

    # The watermark closes the first window: its state goes, its published row stays; an empty batch.
    assert commit_both(duck, bq, 4, [], end, watermark=T0 + timedelta(minutes=5)) == (0, 0)
    assert_same_tables(duck, bq)
    state_windows = {r[0] for r in bigquery_rows(bq, "segment_window_users")}
    assert T0 not in state_windows and T0 in {r[0] for r in bigquery_rows(bq, ENGAGEMENT_TABLE)}
    assert bq.counts()["batches"] == 5 and bq.counts()["rows_in"] == 300 + 250 + 40 + 400


def test_a_failure_before_the_transaction_commits_nothing_and_a_crash_leaves_no_staging(
    sinks: tuple[RealtimeStore, BigQueryRealtimeStore], tmp_path: Path
) -> None:
    _, bq = sinks
    end = T0 + timedelta(minutes=15)

    def sinks_failed() -> None:
        raise OSError("bronze write failed")

    with pytest.raises(OSError, match="bronze write failed"):
        bq.commit_batch(record(0, 10, end), session_table(sessions(3, 10)), before_commit=sinks_failed)
    assert bigquery_rows(bq, LEDGER_TABLE) == [] and bigquery_rows(bq, ENGAGEMENT_TABLE) == []
    assert not _staging_tables(bq.client, bq)

    # A process killed after staging a batch: the next sink drops the leftover; the replay commits once.
    bq._stage(0, session_table(sessions(3, 10)))
    assert _staging_tables(bq.client, bq)
    restarted = BigQueryRealtimeStore(bq.client, bq.target, WarehouseLayout(tmp_path / "restart"))
    assert not _staging_tables(bq.client, bq)
    assert restarted.commit_batch(record(0, 10, end), session_table(sessions(3, 10))) > 0
    assert restarted.commit_batch(record(0, 10, end), session_table(sessions(3, 10))) == 0
    assert restarted.counts()["batches"] == 1
    assert running_owner(WarehouseLayout(tmp_path / "restart")) is not None  # the sensor sees a stream


def _staging_tables(client: bigquery.Client, store: BigQueryRealtimeStore) -> list[str]:
    return [t.table_id for t in client.list_tables(f"{store.target.project}.{store.dataset}")
            if t.table_id.startswith(STAGING_PREFIX)]  # fmt: skip


def test_the_bigquery_tables_have_the_duckdb_sinks_columns(
    sinks: tuple[RealtimeStore, BigQueryRealtimeStore],
) -> None:
    duck, bq = sinks
    for table, columns in realtime_schema().items():
        duck_columns = [r[0] for r in duck.con.execute(f"DESCRIBE {table}").fetchall()]
        assert [c for c, _ in columns] == duck_columns
        assert [f.name for f in bq.client.get_table(bq.table(table)).schema] == duck_columns


def test_a_column_the_duckdb_sink_gained_is_added_to_existing_tables(
    bigquery_emulator: BigQueryEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset created by an older release gets the new ledger column (filled from BatchRecord) in place."""
    target = BigQueryTarget(project=bigquery_emulator.project, realtime_dataset="rt_grown",
                            api_endpoint=bigquery_emulator.endpoint)  # fmt: skip
    BigQueryRealtimeStore(bigquery_client(target), target, WarehouseLayout(tmp_path / "a")).close()
    grown = bigquery_store.SCHEMA_SQL.replace("rows_in BIGINT,", "rows_in BIGINT, valid_copy BIGINT,")
    monkeypatch.setattr(bigquery_store, "SCHEMA_SQL", grown)
    monkeypatch.setattr(bigquery_store, "COMPUTED_LEDGER_COLUMNS",
                        {**bigquery_store.COMPUTED_LEDGER_COLUMNS, "valid_copy": "7"})  # fmt: skip
    store = BigQueryRealtimeStore(bigquery_client(target), target, WarehouseLayout(tmp_path / "b"))
    try:
        store.commit_batch(record(0, 3, T0), session_table(sessions(5, 3)))
        [(value,)] = store.client.query(f"SELECT valid_copy FROM `{store.table(LEDGER_TABLE)}`").result()
        assert value == 7
    finally:
        store.close()


def test_a_ledger_column_the_sink_cannot_fill_fails_at_start(
    bigquery_emulator: BigQueryEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the DuckDB ledger grows a column BatchRecord does not carry, the BigQuery sink refuses to start."""
    drifted = bigquery_store.SCHEMA_SQL.replace(
        "processing_s DOUBLE", "processing_s DOUBLE, replayed_from BIGINT"
    )
    monkeypatch.setattr(bigquery_store, "SCHEMA_SQL", drifted)
    target = BigQueryTarget(project=bigquery_emulator.project, realtime_dataset="rt_drift",
                            api_endpoint=bigquery_emulator.endpoint)  # fmt: skip
    with pytest.raises(TypeError, match=r"replayed_from"):
        BigQueryRealtimeStore(bigquery_client(target), target, WarehouseLayout(tmp_path))


def test_the_script_is_one_guarded_transaction(sinks: tuple[RealtimeStore, BigQueryRealtimeStore]) -> None:
    _, bq = sinks
    script = bq.batch_script(record(7, 3, T0, T0), bq.staging_table(7))
    assert script.count("BEGIN TRANSACTION") == 1 and script.count("COMMIT TRANSACTION") == 1
    guard = f"IF NOT EXISTS (SELECT 1 FROM `{bq.table(LEDGER_TABLE)}` WHERE batch_id = 7) THEN"
    assert (
        script.index(guard) < script.index("MERGE") < script.index(f"INSERT INTO `{bq.table(LEDGER_TABLE)}`")
    )
    assert pa is not None
