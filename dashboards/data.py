"""What the dashboards read, and how, so that reading never blocks a writer.

Every refresh opens :func:`core.warehouse.connect_serving` (an in-memory DuckDB that attaches the *published*
``batch.duckdb`` read-only and reads the speed layer's Parquet snapshots) and closes it before rendering:
no dashboard ever opens ``realtime.duckdb`` or ``batch_build.duckdb``, and no connection outlives a refresh,
so a republished warehouse is seen at the next one (``docs/architecture.md``, "Warehouse layout").

The serving views (``docs/serving.md``) merge the layers at the batch watermark W; before the batch layer
has published anything, the real-time page reads the speed layer's snapshots alone (everything is "after
W"). Anything missing (first start, a warehouse being replaced) raises :class:`NoDataYet` with a sentence
for the page, never a stack trace.

The session reads its own links to the snapshots as they were when it opened
(:class:`core.warehouse.PinnedSnapshots`), so the stream replacing one mid-refresh changes nothing under
it. A read that fails anyway (a warehouse replaced while it is being attached) is retried
(:data:`READ_ATTEMPTS`) before the page says anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb
import pandas as pd

from core.contracts.speed import ACTIVE_USERS_TABLE, ALERTS_TABLE, ENGAGEMENT_TABLE, LEDGER_TABLE
from core.warehouse import WarehouseLayout, connect_serving

RECENT_HOURS = 2  # the real-time page's horizon, back from the newest window
READ_ATTEMPTS = 3
RETRY_PAUSE_S = 0.2
TOP_TITLES = 20
ALERT_ORDER = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}


T = TypeVar("T")


class NoDataYet(Exception):
    """Nothing to show yet; the message says what is missing and what fills it."""


class Reader:
    """One refresh's read-only view of both layers."""

    def __init__(self, con: duckdb.DuckDBPyConnection, layout: WarehouseLayout) -> None:
        self.con = con
        self.layout = layout
        catalogs = {row[0] for row in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        self.has_batch = "batch" in catalogs
        self.batch_relations = {
            row[0]
            for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'batch' "
                "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'batch'"
            ).fetchall()
        }
        self.realtime = {
            row[0]
            for row in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE schema_name = 'realtime'"
            ).fetchall()
        }

    def frame(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def require_realtime(self, table: str) -> None:
        if table not in self.realtime:
            raise NoDataYet(
                f"No data yet: the speed layer has not published {table} "
                f"({self.layout.realtime_snapshot(table)}); it appears once the stream starts."
            )

    def serves(self, relation: str) -> bool:
        """Whether the published warehouse has this serving view (a build older than the serving layer
        has none: the real-time page then reads the speed layer alone)."""
        return relation in self.batch_relations

    def require_batch(self) -> None:
        if not self.has_batch:
            raise NoDataYet(
                "No data yet: the batch layer has not published the warehouse "
                f"({self.layout.batch_published}); materialize the batch layer (Dagster job batch_layer)."
            )


@contextmanager
def reader(layout: WarehouseLayout) -> Iterator[Reader]:
    """A read-only session for one refresh (DuckDB errors propagate: :func:`read` retries them)."""
    con = connect_serving(layout)
    try:
        yield Reader(con, layout)
    finally:
        con.close()


def read(layout: WarehouseLayout, what: Callable[[Reader], T]) -> T:
    """``what`` in a fresh session, retried when a file changed under the query; then "no data yet"."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            with reader(layout) as r:
                return what(r)
        except duckdb.Error as exc:
            if attempt == READ_ATTEMPTS:
                raise NoDataYet(
                    f"No data yet: the warehouse cannot be read right now ({exc}); retrying."
                ) from exc
            time.sleep(RETRY_PAUSE_S)
    raise AssertionError("unreachable")


# -- the batch watermark ----------------------------------------------------------------------------------
def watermark(r: Reader) -> dict[str, Any] | None:
    """The published build's batch_watermark row, or None before the first publish."""
    if not r.serves("batch_watermark"):
        return None
    rows = r.frame("SELECT * FROM batch.main.batch_watermark")
    return rows.iloc[0].to_dict() if len(rows) else None


# -- real-time engagement --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Realtime:
    windows: pd.DataFrame  # window_start, window_end, active_users, total_sessions, served_from
    rates: pd.DataFrame  # window_start, rate, value (long form: one row per window and rate)
    segments: pd.DataFrame  # the newest speed window's segments with alert level
    alerts: pd.DataFrame  # churn-risk alerts, newest first
    stream: dict[str, Any]  # ledger totals and the newest commit
    watermark: dict[str, Any] | None
    read_at: datetime

    @property
    def freshness_s(self) -> float | None:
        """Age of the newest committed micro-batch, in seconds."""
        newest = self.stream.get("last_commit")
        if newest is None or pd.isna(newest):
            return None
        return (self.read_at - pd.Timestamp(newest).tz_localize(UTC)).total_seconds()


def _windows_source(r: Reader) -> str:
    if r.serves("serving_active_users_5min"):
        return "batch.main.serving_active_users_5min"
    r.require_realtime(ACTIVE_USERS_TABLE)
    return (
        "(SELECT window_start, window_end, active_users, total_sessions, 'speed' AS served_from "
        f"FROM realtime.{ACTIVE_USERS_TABLE})"
    )


def _engagement_source(r: Reader) -> str:
    if r.serves("serving_engagement_5min"):
        return "batch.main.serving_engagement_5min"
    r.require_realtime(ENGAGEMENT_TABLE)
    return f"realtime.{ENGAGEMENT_TABLE}"


def recent_windows(r: Reader, hours: int = RECENT_HOURS) -> pd.DataFrame:
    """Distinct viewers and sessions per 5-minute window over the last ``hours`` of data, oldest first."""
    source = _windows_source(r)
    return r.frame(
        f"SELECT window_start, window_end, active_users, total_sessions, served_from FROM {source} "
        f"WHERE window_start >= (SELECT max(window_start) FROM {source}) - INTERVAL {int(hours)} HOUR "
        "ORDER BY window_start"
    )


def recent_rates(r: Reader, hours: int = RECENT_HOURS) -> pd.DataFrame:
    """Low-engagement, abandonment and completion rates per window (all segments), long form."""
    source = _engagement_source(r)
    return r.frame(
        f"""
        WITH windows AS (
            SELECT window_start, sum(total_sessions) AS sessions, sum(low_engagement_count) AS low,
                   sum(abandonment_count) AS abandoned, sum(completion_count) AS completed
            FROM {source}
            WHERE window_start >= (SELECT max(window_start) FROM {source}) - INTERVAL {int(hours)} HOUR
            GROUP BY window_start)
        UNPIVOT (SELECT window_start, low / sessions AS "low engagement", abandoned / sessions AS abandonment,
                        completed / sessions AS completion FROM windows)
        ON "low engagement", abandonment, completion INTO NAME rate VALUE value
        ORDER BY window_start, rate
        """
    )


def newest_segments(r: Reader) -> pd.DataFrame:
    """The speed layer's newest window, one row per segment, most alarming first."""
    r.require_realtime(ENGAGEMENT_TABLE)
    frame = r.frame(
        f"""
        SELECT window_start, country, genre_primary, device_type, quality, content_type, total_sessions,
               unique_users, low_engagement_rate, abandonment_rate, completion_rate, alert_level
        FROM realtime.{ENGAGEMENT_TABLE}
        WHERE window_start = (SELECT max(window_start) FROM realtime.{ENGAGEMENT_TABLE})
        """
    )
    order = frame["alert_level"].map(ALERT_ORDER).fillna(len(ALERT_ORDER))
    return frame.assign(_order=order).sort_values(["_order", "total_sessions"], ascending=[True, False])[
        list(frame.columns)
    ]


def churn_alerts(r: Reader, limit: int = 50) -> pd.DataFrame:
    r.require_realtime(ALERTS_TABLE)
    return r.frame(
        f"""
        SELECT window_start, alert_level, alert_scope, subject, risk_type, flagged_sessions, total_sessions,
               round(risk_rate, 3) AS risk_rate, round(revenue_at_risk, 2) AS revenue_at_risk
        FROM realtime.{ALERTS_TABLE}
        ORDER BY window_start DESC, CASE alert_level WHEN 'HIGH' THEN 0 ELSE 1 END, flagged_sessions DESC
        LIMIT {int(limit)}
        """
    )


def stream_health(r: Reader) -> dict[str, Any]:
    """Ledger totals: batches, events in, dead letters, late, duplicates, the newest commit time and the
    newest event time the stream has counted."""
    r.require_realtime(LEDGER_TABLE)
    row = r.frame(
        f"""
        SELECT count(*) AS batches, coalesce(sum(rows_in), 0) AS rows_in, coalesce(sum(valid), 0) AS valid,
               coalesce(sum(dead_letters), 0) AS dead_letters, coalesce(sum(late), 0) AS late,
               coalesce(sum(duplicates), 0) AS duplicates, max(committed_at) AS last_commit,
               max(max_event_time) AS newest_event
        FROM realtime.{LEDGER_TABLE}
        """
    )
    return row.iloc[0].to_dict()


def realtime(layout: WarehouseLayout) -> Realtime:
    """Everything the real-time page shows, read in one session."""

    def everything(r: Reader) -> Realtime:
        return Realtime(
            windows=recent_windows(r),
            rates=recent_rates(r),
            segments=newest_segments(r),
            alerts=churn_alerts(r),
            stream=stream_health(r),
            watermark=watermark(r),
            read_at=datetime.now(UTC),
        )

    return read(layout, everything)


# -- historical trends -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class History:
    monthly_users: pd.DataFrame  # serving_monthly_active_users
    cohorts: pd.DataFrame
    genres: pd.DataFrame
    titles: pd.DataFrame
    watermark: dict[str, Any] | None

    @property
    def current_month(self) -> Any:
        return self.monthly_users["month_start"].max() if len(self.monthly_users) else None


def history(layout: WarehouseLayout, top_titles: int = TOP_TITLES) -> History:
    """Everything the historical page shows, from the published warehouse (merged current month)."""

    def everything(r: Reader) -> History:
        r.require_batch()
        return History(
            monthly_users=r.frame(
                "SELECT * FROM batch.main.serving_monthly_active_users ORDER BY month_start, country, "
                "subscription_plan"
            ),
            cohorts=r.frame(
                "SELECT cohort_month, activity_month, months_since_cohort, active_users, cohort_size, "
                "retention_rate FROM batch.main.cohort_retention ORDER BY cohort_month, activity_month"
            ),
            genres=r.frame("SELECT * FROM batch.main.genre_performance ORDER BY total_views DESC"),
            titles=r.frame(
                "SELECT title, genre_primary, content_type, total_views, completed_views, "
                "total_watch_time_minutes, unique_users, avg_rating "
                "FROM batch.main.content_performance_by_title "
                f"ORDER BY total_views DESC, title LIMIT {int(top_titles)}"
            ),
            watermark=watermark(r),
        )

    return read(layout, everything)
