"""The speed layer's warehouse sink: ``realtime.duckdb`` (owned by the stream alone) plus Parquet snapshots.

Exactly-once comes from one DuckDB transaction per micro-batch that both merges the batch's partial sums
and records the batch id in ``stream_batches``. Spark replays a micro-batch whose commit it did not
record (a crash, SIGKILL, a stop mid-batch) with the same id and offsets; the ledger makes the replay a
no-op if the first attempt committed, and the transaction makes a half-applied batch impossible.

The batch's sessions are first summed per (window, segment, user) (``PARTIALS_SQL``). Per-window
state is additive (sums, counts) except distinct users, which are kept as a set per window
and segment so ``unique_users`` is a real distinct count, not a sum of per-batch distinct counts. State is
only kept for windows still open (their end is after the watermark: later events for them are late and
go to the late sink), so it stays bounded by about 15 minutes of events. The published tables keep
``retention_hours`` of windows.

After each commit every table readers use is exported by write-then-rename
(:meth:`core.warehouse.WarehouseLayout.publish_realtime_snapshot`), so dashboards and dbt read
``realtime/<table>.parquet`` and never open (or block) this file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.warehouse import WarehouseLayout, open_single_writer
from streaming.churn import SEGMENT_KEYS, WINDOW_MINUTES

log = logging.getLogger(__name__)

PUBLISHED_TABLES: tuple[str, ...] = ("engagement_health_realtime", "churn_risk_alerts", "stream_batches")
ALERT_HIGH_RATE = 0.6
ALERT_MEDIUM_RATE = 0.4
SEGMENT_ALERT_MIN_SESSIONS = 5
SEGMENT_ALERT_RATE = 0.4
USER_ALERT_MIN_RISKY_SESSIONS = 2

_KEYS_DDL = ", ".join(f"{k} {'BOOLEAN' if k == 'is_netflix_original' else 'VARCHAR'}" for k in SEGMENT_KEYS)
_KEYS = ", ".join(SEGMENT_KEYS)
_WINDOW = f"INTERVAL {WINDOW_MINUTES} MINUTE"

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS stream_batches (
    batch_id BIGINT PRIMARY KEY, committed_at TIMESTAMP, rows_in BIGINT, valid BIGINT, dead_letters BIGINT,
    late BIGINT, watermark TIMESTAMP, max_event_time TIMESTAMP, input_offsets VARCHAR,
    windows_updated BIGINT, processing_s DOUBLE, legacy_v0 BIGINT DEFAULT 0
);
ALTER TABLE stream_batches ADD COLUMN IF NOT EXISTS legacy_v0 BIGINT DEFAULT 0;
CREATE TABLE IF NOT EXISTS segment_window_state (
    window_start TIMESTAMP, segment_id BIGINT, {_KEYS_DDL},
    sessions BIGINT, watch_minutes DOUBLE, completion_sum DOUBLE, completion_n BIGINT,
    content_quality_sum DOUBLE, content_quality_n BIGINT, low_engagement BIGINT, abandoned BIGINT,
    quality_downgrade BIGINT, completed BIGINT,
    PRIMARY KEY (window_start, segment_id)
);
CREATE TABLE IF NOT EXISTS segment_window_users (
    window_start TIMESTAMP, segment_id BIGINT, user_id VARCHAR, monthly_spend DOUBLE, at_risk BOOLEAN,
    PRIMARY KEY (window_start, segment_id, user_id)
);
CREATE TABLE IF NOT EXISTS user_window_state (
    window_start TIMESTAMP, user_id VARCHAR, sessions BIGINT, at_risk_sessions BIGINT, low_engagement BIGINT,
    abandoned BIGINT, quality_downgrade BIGINT, monthly_spend DOUBLE,
    PRIMARY KEY (window_start, user_id)
);
CREATE TABLE IF NOT EXISTS engagement_health_realtime (
    window_start TIMESTAMP, window_end TIMESTAMP, {_KEYS_DDL},
    total_sessions BIGINT, unique_users BIGINT, total_watch_minutes DOUBLE, avg_completion_pct DOUBLE,
    avg_content_quality DOUBLE, low_engagement_count BIGINT, abandonment_count BIGINT,
    quality_downgrade_count BIGINT, completion_count BIGINT, low_engagement_rate DOUBLE,
    abandonment_rate DOUBLE, completion_rate DOUBLE, revenue_impact DOUBLE, avg_subscriber_value DOUBLE,
    alert_level VARCHAR, segment_id BIGINT, last_batch_id BIGINT, updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS churn_risk_alerts (
    window_start TIMESTAMP, window_end TIMESTAMP, alert_scope VARCHAR, subject VARCHAR, risk_type VARCHAR,
    flagged_sessions BIGINT, total_sessions BIGINT, risk_rate DOUBLE, threshold DOUBLE,
    revenue_at_risk DOUBLE, alert_level VARCHAR, {_KEYS_DDL}, user_id VARCHAR, last_batch_id BIGINT,
    updated_at TIMESTAMP
);
"""
# What is only known once a batch is published (its latency) and what the SLO monitor reads from the
# ledger's snapshot: added after the fact by ``record_outcome``, and to files made before these existed.
OUTCOME_COLUMNS = {"published_at": "DOUBLE", "latency_p50_s": "DOUBLE", "latency_p95_s": "DOUBLE",
                   "dead_by_reason": "VARCHAR"}  # fmt: skip
OUTCOME_COLUMNS_SQL = "".join(
    f"ALTER TABLE stream_batches ADD COLUMN IF NOT EXISTS {column} {duck_type};\n"
    for column, duck_type in OUTCOME_COLUMNS.items()
)


PARTIALS_SQL = f"""
CREATE OR REPLACE TEMP TABLE batch_partials AS
SELECT window_start, segment_id, {_KEYS}, user_id,
       count(*) AS sessions, sum(coalesce(watch_duration_minutes, 0)) AS watch_minutes,
       sum(progress_percentage) AS completion_sum, count(progress_percentage) AS completion_n,
       sum(imdb_rating) AS content_quality_sum, count(imdb_rating) AS content_quality_n,
       count(*) FILTER (WHERE low_engagement) AS low_engagement,
       count(*) FILTER (WHERE abandoned) AS abandoned,
       count(*) FILTER (WHERE quality_downgrade) AS quality_downgrade,
       count(*) FILTER (WHERE completed) AS completed,
       count(*) FILTER (WHERE at_risk) AS at_risk_sessions,
       max(monthly_spend) AS monthly_spend
FROM batch_sessions
GROUP BY window_start, segment_id, {_KEYS}, user_id
"""


@dataclass(frozen=True)
class BatchRecord:
    """What the ledger keeps about one committed micro-batch."""

    batch_id: int
    rows_in: int
    valid: int
    dead_letters: int
    late: int
    watermark: datetime | None
    max_event_time: datetime | None
    input_offsets: dict[str, list[int]]
    processing_s: float
    legacy_v0: int = 0  # accepted legacy v0 events (valid + late)


# State columns a batch adds to (its partial sums), per state table.
SEGMENT_SUMS = (
    "sessions", "watch_minutes", "completion_sum", "completion_n", "content_quality_sum", "content_quality_n",
    "low_engagement", "abandoned", "quality_downgrade", "completed",
)  # fmt: skip
USER_SUMS = ("sessions", "at_risk_sessions", "low_engagement", "abandoned", "quality_downgrade")


def _added(columns: tuple[str, ...]) -> str:
    """The ``SET`` list of an upsert that adds a batch's partial sums to the stored ones."""
    return ", ".join(f"{c} = {c} + EXCLUDED.{c}" for c in columns)


class RealtimeStore:
    """The single read-write connection to ``realtime.duckdb`` (one stream process at a time)."""

    def __init__(self, layout: WarehouseLayout, retention_hours: float = 48.0) -> None:
        self.layout = layout
        self.retention_hours = retention_hours
        owner = "streaming query may own the realtime warehouse (is a stream already running?)"
        self.con = open_single_writer(layout.realtime_db, owner)
        self.con.execute(SCHEMA_SQL)
        self.con.execute(OUTCOME_COLUMNS_SQL)
        write_owner(layout)

    def close(self) -> None:
        self.con.close()
        clear_owner(self.layout)

    # -- reads --------------------------------------------------------------------------------------
    def _row(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
        """One row, fully fetched (DuckDB refuses ``register`` while a result is still open)."""
        return tuple(self.con.execute(sql, params or []).fetchall()[0])

    def is_committed(self, batch_id: int) -> bool:
        return bool(self._row("SELECT count(*) FROM stream_batches WHERE batch_id = ?", [batch_id])[0])

    def next_batch_id(self) -> int:
        """One past the newest batch in the ledger (0 when empty): where a fresh checkpoint's ids start."""
        last = self.counts()["last_batch_id"]
        return 0 if last is None else int(last) + 1

    def max_event_time(self) -> datetime | None:
        """Newest valid event time committed so far (naive UTC), the base of the next watermark."""
        return self._row("SELECT max(max_event_time) FROM stream_batches")[0]

    def counts(self) -> dict[str, Any]:
        """Totals over the ledger (for reports and tests)."""
        row = self._row(
            "SELECT count(*), coalesce(sum(rows_in), 0), coalesce(sum(valid), 0), "
            "coalesce(sum(dead_letters), 0), coalesce(sum(late), 0), max(batch_id), "
            "coalesce(sum(legacy_v0), 0) FROM stream_batches"
        )
        keys = ("batches", "rows_in", "valid", "dead_letters", "late", "last_batch_id", "legacy_v0")
        return dict(zip(keys, row, strict=True))

    # -- the micro-batch transaction ----------------------------------------------------------------
    def commit_batch(
        self, record: BatchRecord, sessions: pa.Table, before_commit: Callable[[], None] | None = None
    ) -> int:
        """Merge one batch's sessions (``streaming.churn.SESSION_COLUMNS``) and record it, atomically.

        Returns the number of windows recomputed. A batch already in the ledger changes nothing (0).
        ``before_commit`` runs inside the transaction, just before COMMIT: the stream waits there for its
        Parquet sinks, so they are written while DuckDB merges, yet the batch only counts as done once
        they are; if it raises, nothing is committed.
        """
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if self.is_committed(record.batch_id):
                con.execute("ROLLBACK")
                return 0
            windows = 0
            if sessions.num_rows:
                con.register("batch_sessions", sessions)
                con.execute(PARTIALS_SQL)
                con.unregister("batch_sessions")
                windows = self._merge(record.batch_id)
            self._prune(record)
            con.execute(
                "INSERT INTO stream_batches (batch_id, committed_at, rows_in, valid, dead_letters, late, "
                "watermark, max_event_time, input_offsets, windows_updated, processing_s, legacy_v0) "
                "VALUES (?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    record.batch_id, record.rows_in, record.valid, record.dead_letters, record.late,
                    record.watermark, record.max_event_time, json.dumps(record.input_offsets), windows,
                    record.processing_s, record.legacy_v0,
                ],
            )  # fmt: skip
            if before_commit is not None:
                before_commit()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return windows

    def _merge(self, batch_id: int) -> int:
        con = self.con
        con.execute(
            f"""
            INSERT INTO segment_window_state
            SELECT window_start, segment_id, {", ".join(f"any_value({k})" for k in SEGMENT_KEYS)},
                   sum(sessions), sum(watch_minutes), coalesce(sum(completion_sum), 0), sum(completion_n),
                   coalesce(sum(content_quality_sum), 0), sum(content_quality_n), sum(low_engagement),
                   sum(abandoned), sum(quality_downgrade), sum(completed)
            FROM batch_partials GROUP BY window_start, segment_id
            ON CONFLICT (window_start, segment_id) DO UPDATE SET {_added(SEGMENT_SUMS)}
            """
        )
        con.execute(
            """
            INSERT INTO segment_window_users
            SELECT window_start, segment_id, user_id, max(monthly_spend), bool_or(at_risk_sessions > 0)
            FROM batch_partials GROUP BY window_start, segment_id, user_id
            ON CONFLICT (window_start, segment_id, user_id) DO UPDATE SET
                at_risk = at_risk OR EXCLUDED.at_risk,
                monthly_spend = coalesce(EXCLUDED.monthly_spend, monthly_spend)
            """
        )
        con.execute(
            f"""
            INSERT INTO user_window_state
            SELECT window_start, user_id, sum(sessions), sum(at_risk_sessions), sum(low_engagement),
                   sum(abandoned), sum(quality_downgrade), max(monthly_spend)
            FROM batch_partials GROUP BY window_start, user_id
            ON CONFLICT (window_start, user_id) DO UPDATE SET {_added(USER_SUMS)},
                monthly_spend = coalesce(EXCLUDED.monthly_spend, monthly_spend)
            """
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE affected AS SELECT DISTINCT window_start FROM batch_partials"
        )
        self._recompute_engagement(batch_id)
        self._recompute_alerts(batch_id)
        return int(self._row("SELECT count(*) FROM affected")[0])

    def _recompute_engagement(self, batch_id: int) -> None:
        con = self.con
        con.execute(
            "DELETE FROM engagement_health_realtime WHERE window_start IN (SELECT window_start FROM affected)"
        )
        con.execute(
            f"""
            INSERT INTO engagement_health_realtime
            WITH users AS (
                SELECT window_start, segment_id, count(*) AS unique_users,
                       coalesce(sum(monthly_spend) FILTER (WHERE at_risk), 0) AS revenue_impact,
                       avg(monthly_spend) AS avg_subscriber_value
                FROM segment_window_users WHERE window_start IN (SELECT window_start FROM affected)
                GROUP BY window_start, segment_id
            )
            SELECT s.window_start, s.window_start + {_WINDOW}, {", ".join(f"s.{k}" for k in SEGMENT_KEYS)},
                   s.sessions, u.unique_users, s.watch_minutes,
                   s.completion_sum / nullif(s.completion_n, 0),
                   s.content_quality_sum / nullif(s.content_quality_n, 0),
                   s.low_engagement, s.abandoned, s.quality_downgrade, s.completed,
                   s.low_engagement / s.sessions, s.abandoned / s.sessions, s.completed / s.sessions,
                   u.revenue_impact, u.avg_subscriber_value,
                   CASE WHEN s.low_engagement / s.sessions > {ALERT_HIGH_RATE} THEN 'HIGH'
                        WHEN s.low_engagement / s.sessions > {ALERT_MEDIUM_RATE} THEN 'MEDIUM'
                        ELSE 'LOW' END,
                   s.segment_id, {int(batch_id)}, now()::TIMESTAMP
            FROM segment_window_state s JOIN users u USING (window_start, segment_id)
            WHERE s.window_start IN (SELECT window_start FROM affected)
            """
        )

    def _recompute_alerts(self, batch_id: int) -> None:
        con = self.con
        con.execute("DELETE FROM churn_risk_alerts WHERE window_start IN (SELECT window_start FROM affected)")
        subject = (
            "concat_ws(' / ', country, genre_primary, device_type, quality, "
            "CASE WHEN is_netflix_original THEN 'Original' WHEN NOT is_netflix_original THEN 'Licensed' "
            "ELSE 'Unknown' END, content_type)"
        )
        con.execute(
            f"""
            INSERT INTO churn_risk_alerts
            WITH risks AS (
                SELECT e.*, r.risk_type,
                       CASE r.risk_type WHEN 'low_engagement' THEN low_engagement_count
                                        WHEN 'abandonment' THEN abandonment_count
                                        ELSE quality_downgrade_count END AS flagged
                FROM engagement_health_realtime e
                CROSS JOIN (VALUES ('low_engagement'), ('abandonment'), ('quality_downgrade')) r(risk_type)
                WHERE e.window_start IN (SELECT window_start FROM affected)
                  AND e.total_sessions >= {SEGMENT_ALERT_MIN_SESSIONS}
            )
            SELECT window_start, window_end, 'segment', {subject}, risk_type, flagged, total_sessions,
                   flagged / total_sessions, {SEGMENT_ALERT_RATE}, revenue_impact,
                   CASE WHEN flagged / total_sessions > {ALERT_HIGH_RATE} THEN 'HIGH' ELSE 'MEDIUM' END,
                   {_KEYS}, NULL, {int(batch_id)}, now()::TIMESTAMP
            FROM risks WHERE flagged / total_sessions > {SEGMENT_ALERT_RATE}
            UNION ALL
            SELECT window_start, window_start + {_WINDOW}, 'user', user_id, 'repeated_risk', at_risk_sessions,
                   sessions, at_risk_sessions / sessions, {USER_ALERT_MIN_RISKY_SESSIONS}, monthly_spend,
                   CASE WHEN at_risk_sessions >= {2 * USER_ALERT_MIN_RISKY_SESSIONS} THEN 'HIGH'
                        ELSE 'MEDIUM' END,
                   {", ".join("NULL" for _ in SEGMENT_KEYS)}, user_id, {int(batch_id)}, now()::TIMESTAMP
            FROM user_window_state
            WHERE window_start IN (SELECT window_start FROM affected)
              AND at_risk_sessions >= {USER_ALERT_MIN_RISKY_SESSIONS}
            """
        )

    def _prune(self, record: BatchRecord) -> None:
        """Drop state of windows the watermark closed, and published windows past retention."""
        con = self.con
        if record.watermark is not None:
            for table in ("segment_window_state", "segment_window_users", "user_window_state"):
                con.execute(f"DELETE FROM {table} WHERE window_start + {_WINDOW} <= ?", [record.watermark])
        if record.max_event_time is not None:
            horizon = f"?::TIMESTAMP - INTERVAL {float(self.retention_hours) * 3600:.0f} SECOND"
            for table in ("engagement_health_realtime", "churn_risk_alerts"):
                con.execute(f"DELETE FROM {table} WHERE window_end < {horizon}", [record.max_event_time])

    def record_outcome(
        self,
        batch_id: int,
        published_at: float,
        latency_p50_s: float | None,
        latency_p95_s: float | None,
        dead_by_reason: dict[str, int],
    ) -> None:
        """Add what is known once the batch is published to its ledger row, and republish the ledger.

        The SLO monitor reads latency and dead-letter reasons from ``realtime/stream_batches.parquet``
        (it must not open this file); ``published_at`` is epoch seconds, free of time-zone conventions.
        """
        self.con.execute(
            "UPDATE stream_batches SET published_at = ?, latency_p50_s = ?, latency_p95_s = ?, "
            "dead_by_reason = ? WHERE batch_id = ?",
            [published_at, latency_p50_s, latency_p95_s, json.dumps(dead_by_reason), batch_id],
        )
        self.layout.publish_realtime_snapshot(self.con, "stream_batches")

    # -- publication --------------------------------------------------------------------------------
    def publish(self) -> dict[str, str]:
        """Export every reader-facing table as a Parquet snapshot (atomic rename)."""
        return {
            table: str(self.layout.publish_realtime_snapshot(self.con, table)) for table in PUBLISHED_TABLES
        }


# -- who owns the realtime warehouse -------------------------------------------------------------------------
def owner_file(layout: WarehouseLayout) -> Path:
    """Names the process holding ``realtime.duckdb``, for the sensor (which must not open the file)."""
    return layout.root / "realtime.owner.json"


def write_owner(layout: WarehouseLayout) -> None:
    target = owner_file(layout)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
    os.replace(tmp, target)


def clear_owner(layout: WarehouseLayout) -> None:
    target = owner_file(layout)
    try:
        if json.loads(target.read_text()).get("pid") == os.getpid():
            target.unlink()
    except (FileNotFoundError, json.JSONDecodeError):
        pass


def running_owner(layout: WarehouseLayout) -> dict[str, Any] | None:
    """The recorded stream process if it is alive on this host (a SIGKILLed stream leaves a stale file)."""
    try:
        owner = json.loads(owner_file(layout).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if owner.get("host") != socket.gethostname():
        return owner  # another machine: cannot check, assume it runs
    try:
        os.kill(int(owner["pid"]), 0)
    except PermissionError:
        return owner  # alive, another user's
    except (ProcessLookupError, ValueError, KeyError):
        return None
    return owner
