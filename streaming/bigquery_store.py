"""The speed layer's BigQuery sink: exactly once per micro-batch, the counterpart of ``realtime.duckdb``.

Streaming inserts (``insertAll``) de-duplicate on a best-effort basis only, so they cannot give
exactly-once under replays. Each micro-batch instead:

1. loads its sessions into a **staging table named for the batch id** (``staging_sessions_b<id>``), with
   one load job and ``WRITE_TRUNCATE``: a replay of the batch replaces a half-done earlier attempt;
2. runs **one multi-statement script with one transaction** that, unless the ledger already records the
   batch id, sums the staged sessions per window, segment and user, ``MERGE``s them into the open
   windows' state, ``MERGE``s the recomputed windows into ``engagement_health_realtime`` (keyed by window
   and segment) and ``churn_risk_alerts`` (keyed by window, scope, risk and segment or user; alerts that
   no longer hold are deleted), prunes closed windows, and inserts the **ledger row**; a failure
   anywhere rolls all of it back, and BigQuery finishes a submitted script even if this process dies;
3. drops the staging table (leftovers of a crash are dropped at the next start).

The arithmetic is the DuckDB sink's (``streaming.realtime_store``), statement for statement, and the
tables' columns are *derived* from its DDL (:func:`realtime_schema`), so the two sinks cannot drift
apart: a column added to the DuckDB ledger appears here too, and a ledger column this sink cannot fill
fails at start-up. ``tests/test_bigquery_realtime.py`` feeds both sinks the same batches and compares
every table. Quotas this design stays within are listed in ``docs/deployment.md``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.cloud import bigquery

from core.bigquery import JOB_TIMEOUT_S, RETRY, ensure_dataset, literal, naive_utc, quoted, table_id
from core.contracts.speed import (
    ACTIVE_USERS_TABLE,
    ALERTS_TABLE,
    ENGAGEMENT_TABLE,
    LEDGER_TABLE,
    PUBLISHED_TABLES,
    USER_ACTIVITY_TABLE,
)
from core.stopwatch import Stopwatch
from core.warehouse import BigQueryTarget, WarehouseLayout
from streaming.churn import SEGMENT_KEYS, WINDOW_MINUTES
from streaming.realtime_store import (
    ALERT_HIGH_RATE,
    ALERT_MEDIUM_RATE,
    OUTCOME_COLUMNS,
    OUTCOME_COLUMNS_SQL,
    SCHEMA_SQL,
    SEGMENT_ALERT_MIN_SESSIONS,
    SEGMENT_ALERT_RATE,
    SEGMENT_SUMS,
    USER_ALERT_MIN_RISKY_SESSIONS,
    USER_SUMS,
    BatchRecord,
    clear_owner,
    first_unseen_rows,
    write_owner,
)

log = logging.getLogger(__name__)

STAGING_PREFIX = "staging_sessions_b"
DATASET_DESCRIPTION = (
    "The speed layer's realtime tables, ledger and open-window state (netflix-lambda stream)."
)
DUCKDB_TO_BIGQUERY = {
    "BIGINT": "INT64", "INTEGER": "INT64", "DOUBLE": "FLOAT64", "VARCHAR": "STRING", "BOOLEAN": "BOOL",
    "TIMESTAMP": "TIMESTAMP", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "DATE": "DATE",
    "UHUGEINT": "STRING",  # seen_event_keys: BigQuery has no 128-bit integer; the same MD5, in hex
}  # fmt: skip
SEEN_TABLE = "seen_event_keys"
SEEN_KEY = "md5(event_id)"  # DuckDB's spelling of BigQuery's TO_HEX(MD5(event_id)): lowercase hex
ARROW_TO_BIGQUERY = {"int64": "INT64", "int32": "INT64", "double": "FLOAT64", "float": "FLOAT64",
                     "string": "STRING", "large_string": "STRING", "bool": "BOOL"}  # fmt: skip
# Reader-facing tables are partitioned by day and clustered for the MERGE's window filter.
LAYOUT = {
    ENGAGEMENT_TABLE: "PARTITION BY DATE(window_start) CLUSTER BY window_start, segment_id",
    ALERTS_TABLE: "PARTITION BY DATE(window_start) CLUSTER BY window_start, alert_scope",
    LEDGER_TABLE: "CLUSTER BY batch_id",
}
# The ledger's counters kept as running totals: read once at start, then added to per committed batch.
SUMMED_LEDGER_COLUMNS = ("rows_in", "valid", "dead_letters", "late", "duplicates", "legacy_v0")
# Filled by the script itself; the outcome columns start empty and ``record_outcome`` fills them.
COMPUTED_LEDGER_COLUMNS = {
    "committed_at": "CURRENT_TIMESTAMP()",
    "windows_updated": "ARRAY_LENGTH(affected)",
    **dict.fromkeys(OUTCOME_COLUMNS, "NULL"),
}
_WINDOW = f"INTERVAL {WINDOW_MINUTES} MINUTE"


def realtime_schema() -> dict[str, list[tuple[str, str]]]:
    """Every table of the DuckDB sink: its columns in order, in BigQuery types (one schema, two sinks)."""
    con = duckdb.connect()
    try:
        con.execute(SCHEMA_SQL + OUTCOME_COLUMNS_SQL)
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, duck_type in rows:
        if duck_type not in DUCKDB_TO_BIGQUERY:
            raise TypeError(
                f"realtime table {table}.{column} has type {duck_type}, which has no BigQuery type here"
            )
        schema.setdefault(table, []).append((column, DUCKDB_TO_BIGQUERY[duck_type]))
    return schema


def _null_safe(columns: tuple[str, ...] | list[str]) -> str:
    return " AND ".join(f"t.{c} IS NOT DISTINCT FROM s.{c}" for c in columns)


def _keys(prefix: str = "") -> str:
    return ", ".join(f"{prefix}{k}" for k in SEGMENT_KEYS)


def create_tables_sql(target: BigQueryTarget, dataset: str, schema: dict[str, list[tuple[str, str]]]) -> str:
    """One script creating each table of ``schema`` in ``dataset`` unless it exists."""
    statements = []
    for name, columns in schema.items():
        body = ", ".join(f"`{column}` {bq_type}" for column, bq_type in columns)
        table = quoted(table_id(target, dataset, name))
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({body}) {LAYOUT.get(name, '')}")
    return ";\n".join(statements) + ";"


def ensure_realtime_sources(client: bigquery.Client, target: BigQueryTarget) -> None:
    """Create, empty, the realtime tables the batch layer's serving models read, where missing.

    On DuckDB a sink no stream has written yet reads as an empty table (``_speed__sources.yml``); BigQuery
    has no such fallback, so a batch run before the first stream would fail. The tables get the sink's own
    schema (the sink adds columns later, never changes types). The speed layer's event tables are loaded
    from the bucket instead (``streaming.bigquery_speed_events``).
    """
    ensure_dataset(client, target, target.realtime_dataset, DATASET_DESCRIPTION)
    sql = create_tables_sql(target, target.realtime_dataset, realtime_schema())
    client.query(sql, retry=RETRY).result(timeout=JOB_TIMEOUT_S)


class BigQueryRealtimeStore:
    """The realtime tables in a BigQuery dataset; same interface as :class:`RealtimeStore` (DuckDB).

    One stream process at a time writes them (the Dagster sensor launches one run; the local owner file
    tells it a stream is alive). The ledger's totals are read once at start and then kept in memory, so a
    micro-batch costs one load job and one script, not extra queries.
    """

    def __init__(
        self,
        client: bigquery.Client,
        target: BigQueryTarget,
        layout: WarehouseLayout,
        retention_hours: float = 48.0,
    ) -> None:
        self.client, self.target, self.layout = client, target, layout
        self.retention_hours = retention_hours
        self.dataset = target.realtime_dataset
        self.last_timing: dict[str, float] = {}  # seconds per step of the last commit_batch
        self.schema = realtime_schema()
        self._ledger_values = self._ledger_columns()
        ensure_dataset(client, target, self.dataset, DATASET_DESCRIPTION)
        self._create_tables()
        self._drop_staging_tables()
        self._totals = self._read_totals()
        self._seen = self._read_seen()
        layout.root.mkdir(parents=True, exist_ok=True)
        write_owner(layout)

    def close(self) -> None:
        clear_owner(self.layout)
        self._seen.close()
        self.client.close()

    # -- names --------------------------------------------------------------------------------------
    def table(self, name: str) -> str:
        return table_id(self.target, self.dataset, name)

    def _q(self, name: str) -> str:
        return quoted(self.table(name))

    def staging_table(self, batch_id: int) -> str:
        return self.table(f"{STAGING_PREFIX}{batch_id:012d}")

    # -- set-up -------------------------------------------------------------------------------------
    def _ledger_columns(self) -> list[tuple[str, str]]:
        """The ledger's columns; each must come from :class:`BatchRecord` or be computed by the script."""
        fields = set(asdict(BatchRecord(0, 0, 0, 0, 0, None, None, {}, 0.0)))
        columns = self.schema[LEDGER_TABLE]
        missing = [c for c, _ in columns if c not in fields and c not in COMPUTED_LEDGER_COLUMNS]
        if missing:
            raise TypeError(f"ledger column(s) {missing} have no value in BatchRecord: the sinks disagree")
        return columns

    def _run(self, sql: str) -> bigquery.QueryJob:
        job = self.client.query(sql, retry=RETRY)  # a re-run script is a no-op: the ledger guard
        job.result(timeout=JOB_TIMEOUT_S)
        return job

    def _create_tables(self) -> None:
        """Create missing tables; add columns the DuckDB sink gained since a table was created.

        One ``ALTER`` per table that needs it, not one per column: BigQuery allows five metadata updates
        per table in ten seconds.
        """
        self._run(create_tables_sql(self.target, self.dataset, self.schema))
        existing: dict[str, set[str]] = {}
        columns_view = f"`{self.target.project}.{self.dataset}`.INFORMATION_SCHEMA.COLUMNS"
        for table, column in self._run(f"SELECT table_name, column_name FROM {columns_view}").result():
            existing.setdefault(table, set()).add(column)
        for name, columns in self.schema.items():
            added = [
                f"ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in columns if c not in existing.get(name, set())
            ]
            if added:
                self._run(f"ALTER TABLE {self._q(name)} {', '.join(added)}")
                log.warning(
                    "%s: added column(s) %s", self.table(name), ", ".join(a.split()[-2] for a in added)
                )

    def _drop_staging_tables(self) -> None:
        """Staging tables a crashed process left behind (their batches are replayed and staged again)."""
        for item in self.client.list_tables(f"{self.target.project}.{self.dataset}", retry=RETRY):
            if item.table_id.startswith(STAGING_PREFIX):
                self.client.delete_table(item.reference, not_found_ok=True, retry=RETRY)
                log.info("dropped staging table %s left by an earlier, interrupted batch", item.table_id)

    def _read_totals(self) -> dict[str, Any]:
        sums = ", ".join(f"COALESCE(SUM({column}), 0)" for column in SUMMED_LEDGER_COLUMNS)
        [row] = self._run(
            f"SELECT COUNT(*), {sums}, MAX(batch_id), MAX(max_event_time) FROM {self._q(LEDGER_TABLE)}"
        ).result()
        keys = ("batches", *SUMMED_LEDGER_COLUMNS, "last_batch_id", "max_event_time")
        totals = dict(zip(keys, row, strict=True))
        totals["max_event_time"] = naive_utc(totals["max_event_time"])
        return totals

    def _read_seen(self) -> duckdb.DuckDBPyConnection:
        """The de-duplication keys the ledger's batches counted, held in memory like the totals: one
        query at start instead of one per micro-batch."""
        arrow = self.client.query(
            f"SELECT event_key, event_time FROM {self._q(SEEN_TABLE)}", retry=RETRY
        ).to_arrow(create_bqstorage_client=False)
        con = duckdb.connect()
        con.execute(f"CREATE TABLE {SEEN_TABLE} (event_key VARCHAR, event_time TIMESTAMP)")
        if arrow.num_rows:
            con.register("stored_keys", arrow)
            con.execute(f"INSERT INTO {SEEN_TABLE} SELECT event_key, event_time FROM stored_keys")
            con.unregister("stored_keys")
        return con

    # -- reads (RealtimeStore's interface) ----------------------------------------------------------
    def is_committed(self, batch_id: int) -> bool:
        last = self._totals["last_batch_id"]
        if last is None or batch_id > last:
            return False  # ids only grow, and only this process writes the ledger
        [(count,)] = self._run(
            f"SELECT COUNT(*) FROM {self._q(LEDGER_TABLE)} WHERE batch_id = {int(batch_id)}"
        ).result()
        return bool(count)

    def next_batch_id(self) -> int:
        last = self._totals["last_batch_id"]
        return 0 if last is None else int(last) + 1

    def max_event_time(self) -> datetime | None:
        return self._totals["max_event_time"]

    def counts(self) -> dict[str, Any]:
        return {k: v for k, v in self._totals.items() if k != "max_event_time"}

    def record_outcome(
        self,
        batch_id: int,
        published_at: float,
        latency_p50_s: float | None,
        latency_p95_s: float | None,
        dead_by_reason: dict[str, int],
    ) -> None:
        """Latency is known only once the batch is committed: one small ``UPDATE`` of its ledger row.

        A second mutating DML per micro-batch on the ledger only (BigQuery queues up to 20 per table);
        lost if the process dies between commit and this update, like the DuckDB sink's.
        """
        values = {"published_at": published_at, "latency_p50_s": latency_p50_s,
                  "latency_p95_s": latency_p95_s, "dead_by_reason": json.dumps(dead_by_reason)}  # fmt: skip
        types = dict(self.schema[LEDGER_TABLE])
        sets = ", ".join(f"{column} = {literal(value, types[column])}" for column, value in values.items())
        self._run(f"UPDATE {self._q(LEDGER_TABLE)} SET {sets} WHERE batch_id = {int(batch_id)}").result()

    def publish(self) -> dict[str, str]:
        """Readers query the BigQuery tables themselves: nothing to export."""
        return {name: self.table(name) for name in PUBLISHED_TABLES}

    def first_unseen(self, candidates: pa.Table) -> np.ndarray:
        """The DuckDB sink's rule and query (``first_unseen_rows``) over the keys held in memory."""
        return first_unseen_rows(self._seen, candidates, SEEN_KEY)

    # -- the micro-batch ----------------------------------------------------------------------------
    def commit_batch(
        self,
        record: BatchRecord,
        sessions: pa.Table,
        before_commit: Callable[[], None] | None = None,
        counted: pa.Table | None = None,
    ) -> int:
        """Stage, then merge and record the batch in one transaction; returns the windows recomputed (0 if
        the ledger already had the batch). ``before_commit`` runs after staging, before the transaction:
        the stream waits there for its Parquet sinks, and if it raises nothing is committed. ``counted``
        (``event_id``, ``event_time``, one row per session) is staged beside the sessions and its keys
        remembered in the same transaction, so a later copy is a duplicate."""
        lap = Stopwatch(self.last_timing)
        self.last_timing.clear()
        remember = counted is not None and counted.num_rows > 0
        if remember and counted.num_rows != sessions.num_rows:
            raise ValueError(f"batch {record.batch_id}: {counted.num_rows} counted events for "
                             f"{sessions.num_rows} sessions; the stream passes one per session")  # fmt: skip
        if remember:
            sessions = sessions.append_column("event_id", counted.column("event_id"))
            sessions = sessions.append_column("event_time", counted.column("event_time"))
        staged = self._stage(record.batch_id, sessions) if sessions.num_rows else None
        lap("stage")
        try:
            if before_commit is not None:
                before_commit()
            lap("wait_for_sinks")
            job = self._run(self.batch_script(record, staged, remember))
            applied, windows = next(iter(job.result()))
            lap("transaction")
        finally:
            if staged is not None:
                self.client.delete_table(staged, not_found_ok=True, retry=RETRY)
                lap("drop_staging")
        if applied:
            self._count(record)
            self._remember(record, counted if remember else None)
        else:
            log.info(
                "batch %d is already in %s: the replay changed nothing",
                record.batch_id,
                self.table(LEDGER_TABLE),
            )
            self._totals = self._read_totals()
            self._seen.close()
            self._seen = self._read_seen()
        return int(windows) if applied else 0

    def _count(self, record: BatchRecord) -> None:
        totals = self._totals
        totals["batches"] += 1
        for key in SUMMED_LEDGER_COLUMNS:
            totals[key] += getattr(record, key)
        last = totals["last_batch_id"]
        totals["last_batch_id"] = record.batch_id if last is None else max(last, record.batch_id)
        if record.max_event_time is not None:
            totals["max_event_time"] = max(t for t in (record.max_event_time, totals["max_event_time"]) if t)

    def _remember(self, record: BatchRecord, counted: pa.Table | None) -> None:
        """The committed batch's keys in memory, pruned as the script pruned them."""
        if counted is not None:
            self._seen.register("counted_events", counted.select(["event_id", "event_time"]))
            self._seen.execute(f"INSERT INTO {SEEN_TABLE} SELECT {SEEN_KEY}, event_time FROM counted_events")
            self._seen.unregister("counted_events")
        if record.watermark is not None:
            self._seen.execute(f"DELETE FROM {SEEN_TABLE} WHERE event_time < ?", [record.watermark])

    def _stage(self, batch_id: int, sessions: pa.Table) -> str:
        """One load job (resumable upload, WRITE_TRUNCATE) of the batch's sessions; returns the table id."""
        columns, fields = [], []
        for field in sessions.schema:
            if pa.types.is_timestamp(field.type):
                columns.append(pc.cast(sessions.column(field.name), pa.timestamp("us", tz="UTC")))
                fields.append(bigquery.SchemaField(field.name, "TIMESTAMP"))
            else:
                columns.append(sessions.column(field.name))
                fields.append(bigquery.SchemaField(field.name, ARROW_TO_BIGQUERY[str(field.type)]))
        buffer = io.BytesIO()
        pq.write_table(
            pa.Table.from_arrays(columns, names=sessions.column_names), buffer, compression="snappy"
        )
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=fields,
        )
        staging = self.staging_table(batch_id)
        job = self.client.load_table_from_file(buffer, staging, job_config=config)  # no size: resumable
        job.result(timeout=JOB_TIMEOUT_S)
        return staging

    # -- the script ---------------------------------------------------------------------------------
    def batch_script(self, record: BatchRecord, staged: str | None, remember: bool = False) -> str:
        """The whole batch as one BigQuery script: guard, merges, prune, ledger row, one transaction."""
        ledger = self._q(LEDGER_TABLE)
        work = [*self._merge_statements(staged, record.batch_id)] if staged else []
        if staged and remember:
            work.append(f"INSERT INTO {self._q(SEEN_TABLE)} (event_key, event_time) "
                        f"SELECT TO_HEX(MD5(event_id)), event_time FROM {quoted(staged)}")  # fmt: skip
        work += [*self._prune_statements(record), self._ledger_insert(record), "SET applied = TRUE"]
        body = ";\n    ".join(work)
        return (
            "DECLARE affected ARRAY<TIMESTAMP> DEFAULT [];\n"
            "DECLARE applied BOOL DEFAULT FALSE;\n"
            "BEGIN TRANSACTION;\n"
            f"IF NOT EXISTS (SELECT 1 FROM {ledger} WHERE batch_id = {int(record.batch_id)}) THEN\n"
            f"    {body};\n"
            "END IF;\n"
            "COMMIT TRANSACTION;\n"
            "SELECT applied, ARRAY_LENGTH(affected) AS windows;\n"
        )

    def _merge_statements(self, staged: str, batch_id: int) -> list[str]:
        return [
            self._partials(staged),
            "SET affected = ARRAY(SELECT DISTINCT window_start FROM batch_partials)",
            self._merge_segment_state(),
            self._merge_segment_users(),
            self._merge_user_state(),
            self._merge_user_activity(batch_id),
            self._merge_engagement(batch_id),
            *self._recompute_active_users(batch_id),
            self._merge_alerts(batch_id),
        ]

    def _partials(self, staged: str) -> str:
        return f"""CREATE OR REPLACE TEMP TABLE batch_partials AS
    SELECT window_start, segment_id, {_keys()}, user_id,
           COUNT(*) AS sessions, SUM(COALESCE(watch_duration_minutes, 0)) AS watch_minutes,
           SUM(progress_percentage) AS completion_sum, COUNT(progress_percentage) AS completion_n,
           SUM(imdb_rating) AS content_quality_sum, COUNT(imdb_rating) AS content_quality_n,
           COUNTIF(low_engagement) AS low_engagement, COUNTIF(abandoned) AS abandoned,
           COUNTIF(quality_downgrade) AS quality_downgrade, COUNTIF(completed) AS completed,
           COUNTIF(at_risk) AS at_risk_sessions, MAX(monthly_spend) AS monthly_spend
    FROM {quoted(staged)}
    GROUP BY window_start, segment_id, {_keys()}, user_id"""

    def _merge(self, table: str, source: str, keys: list[str], updates: list[str]) -> str:
        columns = [c for c, _ in self.schema[table]]
        return f"""MERGE {self._q(table)} t
    USING ({source}) s
    ON {" AND ".join(f"t.{k} = s.{k}" for k in keys)}
    WHEN MATCHED THEN UPDATE SET {", ".join(updates)}
    WHEN NOT MATCHED THEN INSERT ({", ".join(columns)}) VALUES ({", ".join(f"s.{c}" for c in columns)})"""

    def _merge_segment_state(self) -> str:
        any_keys = ", ".join(f"ANY_VALUE({k}) AS {k}" for k in SEGMENT_KEYS)
        source = f"""SELECT window_start, segment_id, {any_keys},
               SUM(sessions) AS sessions, SUM(watch_minutes) AS watch_minutes,
               COALESCE(SUM(completion_sum), 0) AS completion_sum, SUM(completion_n) AS completion_n,
               COALESCE(SUM(content_quality_sum), 0) AS content_quality_sum,
               SUM(content_quality_n) AS content_quality_n, SUM(low_engagement) AS low_engagement,
               SUM(abandoned) AS abandoned, SUM(quality_downgrade) AS quality_downgrade,
               SUM(completed) AS completed
        FROM batch_partials GROUP BY window_start, segment_id"""
        updates = [f"{c} = t.{c} + s.{c}" for c in SEGMENT_SUMS]
        return self._merge("segment_window_state", source, ["window_start", "segment_id"], updates)

    def _merge_segment_users(self) -> str:
        source = """SELECT window_start, segment_id, user_id, MAX(monthly_spend) AS monthly_spend,
               LOGICAL_OR(at_risk_sessions > 0) AS at_risk
        FROM batch_partials GROUP BY window_start, segment_id, user_id"""
        updates = [
            "at_risk = (t.at_risk OR s.at_risk)",
            "monthly_spend = COALESCE(s.monthly_spend, t.monthly_spend)",
        ]
        return self._merge("segment_window_users", source, ["window_start", "segment_id", "user_id"], updates)

    def _merge_user_state(self) -> str:
        source = """SELECT window_start, user_id, SUM(sessions) AS sessions,
               SUM(at_risk_sessions) AS at_risk_sessions, SUM(low_engagement) AS low_engagement,
               SUM(abandoned) AS abandoned,
               SUM(quality_downgrade) AS quality_downgrade, MAX(monthly_spend) AS monthly_spend
        FROM batch_partials GROUP BY window_start, user_id"""
        updates = [f"{c} = t.{c} + s.{c}" for c in USER_SUMS]
        updates.append("monthly_spend = COALESCE(s.monthly_spend, t.monthly_spend)")
        return self._merge("user_window_state", source, ["window_start", "user_id"], updates)

    def _merge_user_activity(self, batch_id: int) -> str:
        source = f"""SELECT DATE_TRUNC(DATE(window_start), MONTH) AS month_start, user_id,
               MAX(window_start) AS last_window_start, {int(batch_id)} AS last_batch_id
        FROM batch_partials GROUP BY DATE_TRUNC(DATE(window_start), MONTH), user_id"""
        updates = [
            "last_window_start = GREATEST(t.last_window_start, s.last_window_start)",
            "last_batch_id = s.last_batch_id",
        ]
        return self._merge(USER_ACTIVITY_TABLE, source, ["month_start", "user_id"], updates)

    def _recompute_active_users(self, batch_id: int) -> list[str]:
        """Distinct users and sessions per affected window across all segments (the DuckDB sink's)."""
        return [
            f"DELETE FROM {self._q(ACTIVE_USERS_TABLE)} WHERE window_start IN UNNEST(affected)",
            f"""INSERT INTO {self._q(ACTIVE_USERS_TABLE)}
    SELECT window_start, TIMESTAMP_ADD(window_start, {_WINDOW}), u.active_users, s.total_sessions,
           {int(batch_id)}, CURRENT_TIMESTAMP()
    FROM (SELECT window_start, COUNT(DISTINCT user_id) AS active_users
          FROM {self._q("segment_window_users")} WHERE window_start IN UNNEST(affected)
          GROUP BY window_start) u
    JOIN (SELECT window_start, SUM(sessions) AS total_sessions
          FROM {self._q("segment_window_state")} WHERE window_start IN UNNEST(affected)
          GROUP BY window_start) s
      USING (window_start)""",
        ]

    def _merge_engagement(self, batch_id: int) -> str:
        rate = "s.low_engagement / s.sessions"
        source = f"""WITH users AS (
            SELECT window_start, segment_id, COUNT(*) AS unique_users,
                   COALESCE(SUM(IF(at_risk, monthly_spend, NULL)), 0) AS revenue_impact,
                   AVG(monthly_spend) AS avg_subscriber_value
            FROM {self._q("segment_window_users")} WHERE window_start IN UNNEST(affected)
            GROUP BY window_start, segment_id
        )
        SELECT s.window_start, TIMESTAMP_ADD(s.window_start, {_WINDOW}) AS window_end, {_keys("s.")},
               s.sessions AS total_sessions, u.unique_users, s.watch_minutes AS total_watch_minutes,
               s.completion_sum / NULLIF(s.completion_n, 0) AS avg_completion_pct,
               s.content_quality_sum / NULLIF(s.content_quality_n, 0) AS avg_content_quality,
               s.low_engagement AS low_engagement_count, s.abandoned AS abandonment_count,
               s.quality_downgrade AS quality_downgrade_count, s.completed AS completion_count,
               {rate} AS low_engagement_rate, s.abandoned / s.sessions AS abandonment_rate,
               s.completed / s.sessions AS completion_rate, u.revenue_impact, u.avg_subscriber_value,
               CASE WHEN {rate} > {ALERT_HIGH_RATE} THEN 'HIGH'
                    WHEN {rate} > {ALERT_MEDIUM_RATE} THEN 'MEDIUM' ELSE 'LOW' END AS alert_level,
               s.segment_id, {int(batch_id)} AS last_batch_id, CURRENT_TIMESTAMP() AS updated_at
        FROM {self._q("segment_window_state")} s JOIN users u USING (window_start, segment_id)
        WHERE s.window_start IN UNNEST(affected)"""
        keys = ["window_start", "segment_id"]
        updates = [f"{c} = s.{c}" for c, _ in self.schema[ENGAGEMENT_TABLE] if c not in keys]
        return self._merge(ENGAGEMENT_TABLE, source, keys, updates)

    def _merge_alerts(self, batch_id: int) -> str:
        """Alerts of the affected windows recomputed; those that no longer hold are deleted."""
        original = (
            "CASE WHEN is_netflix_original THEN 'Original' WHEN NOT is_netflix_original THEN 'Licensed' "
            "ELSE 'Unknown' END"
        )
        parts = f"country, genre_primary, device_type, quality, {original}, content_type"
        subject = f"ARRAY_TO_STRING([{parts}], ' / ')"  # skips NULLs, as DuckDB's concat_ws
        nulls = ", ".join(f"CAST(NULL AS {t}) AS {k}" for k, t in self._segment_types())
        flagged = (
            "CASE risk_type WHEN 'low_engagement' THEN low_engagement_count "
            "WHEN 'abandonment' THEN abandonment_count ELSE quality_downgrade_count END"
        )
        source = f"""WITH risks AS (
            SELECT e.*, risk_type, {flagged} AS flagged
            FROM {self._q(ENGAGEMENT_TABLE)} e
            CROSS JOIN UNNEST(['low_engagement', 'abandonment', 'quality_downgrade']) AS risk_type
            WHERE e.window_start IN UNNEST(affected) AND e.total_sessions >= {SEGMENT_ALERT_MIN_SESSIONS}
        )
        SELECT window_start, window_end, 'segment' AS alert_scope, {subject} AS subject, risk_type,
               flagged AS flagged_sessions, total_sessions, flagged / total_sessions AS risk_rate,
               {float(SEGMENT_ALERT_RATE)} AS threshold, revenue_impact AS revenue_at_risk,
               IF(flagged / total_sessions > {ALERT_HIGH_RATE}, 'HIGH', 'MEDIUM') AS alert_level,
               {_keys()}, CAST(NULL AS STRING) AS user_id, {int(batch_id)} AS last_batch_id,
               CURRENT_TIMESTAMP() AS updated_at
        FROM risks WHERE flagged / total_sessions > {SEGMENT_ALERT_RATE}
        UNION ALL
        SELECT window_start, TIMESTAMP_ADD(window_start, {_WINDOW}), 'user', user_id, 'repeated_risk',
               at_risk_sessions, sessions, at_risk_sessions / sessions,
               {float(USER_ALERT_MIN_RISKY_SESSIONS)}, monthly_spend,
               IF(at_risk_sessions >= {2 * USER_ALERT_MIN_RISKY_SESSIONS}, 'HIGH', 'MEDIUM'),
               {nulls}, user_id, {int(batch_id)}, CURRENT_TIMESTAMP()
        FROM {self._q("user_window_state")}
        WHERE window_start IN UNNEST(affected) AND at_risk_sessions >= {USER_ALERT_MIN_RISKY_SESSIONS}"""
        keys = ["window_start", "alert_scope", "risk_type", "subject", *SEGMENT_KEYS, "user_id"]
        columns = [c for c, _ in self.schema[ALERTS_TABLE]]
        updates = ", ".join(f"{c} = s.{c}" for c in columns if c not in keys)
        return f"""MERGE {self._q(ALERTS_TABLE)} t
    USING ({source}) s
    ON {_null_safe(keys)}
    WHEN MATCHED THEN UPDATE SET {updates}
    WHEN NOT MATCHED THEN INSERT ({", ".join(columns)}) VALUES ({", ".join(f"s.{c}" for c in columns)})
    WHEN NOT MATCHED BY SOURCE AND t.window_start IN UNNEST(affected) THEN DELETE"""

    def _segment_types(self) -> list[tuple[str, str]]:
        types = dict(self.schema[ALERTS_TABLE])
        return [(k, types[k]) for k in SEGMENT_KEYS]

    def _prune_statements(self, record: BatchRecord) -> list[str]:
        """Drop the state of windows the watermark closed, and published windows past retention."""
        statements = []
        if record.watermark is not None:
            watermark = literal(record.watermark, "TIMESTAMP")
            for table in ("segment_window_state", "segment_window_users", "user_window_state"):
                closed = f"TIMESTAMP_ADD(window_start, {_WINDOW}) <= {watermark}"
                statements.append(f"DELETE FROM {self._q(table)} WHERE {closed}")
            statements.append(f"DELETE FROM {self._q(SEEN_TABLE)} WHERE event_time < {watermark}")
        if record.max_event_time is not None:
            horizon = (
                f"TIMESTAMP_SUB({literal(record.max_event_time, 'TIMESTAMP')}, "
                f"INTERVAL {float(self.retention_hours) * 3600:.0f} SECOND)"
            )
            for table in (ENGAGEMENT_TABLE, ALERTS_TABLE, ACTIVE_USERS_TABLE):
                statements.append(f"DELETE FROM {self._q(table)} WHERE window_end < {horizon}")
            statements.append(
                f"DELETE FROM {self._q(USER_ACTIVITY_TABLE)} "
                f"WHERE TIMESTAMP_ADD(last_window_start, {_WINDOW}) < {horizon}"
            )
        return statements

    def _ledger_insert(self, record: BatchRecord) -> str:
        values = asdict(record)
        values["input_offsets"] = json.dumps(record.input_offsets)
        rendered = [
            COMPUTED_LEDGER_COLUMNS[c] if c in COMPUTED_LEDGER_COLUMNS else literal(values[c], bq_type)
            for c, bq_type in self._ledger_values
        ]
        columns = ", ".join(c for c, _ in self._ledger_values)
        return f"INSERT INTO {self._q(LEDGER_TABLE)} ({columns}) VALUES ({', '.join(rendered)})"
