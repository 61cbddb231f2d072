"""A Lambda run with controlled event times, for the serving tests: what was sent, and truth computed from it.

Events are built by the real producer (``EventFactory``, ``send``) with event times chosen here, so the
stream's watermark and the batch watermark W are known in advance; every message carries the producer's
``netflix-fault`` header when it is not a clean event (``late``, ``duplicate`` or a poison kind). The
expectations (:func:`truth`) are plain DuckDB SQL over the raw CSVs' reference Silver
(``reference/marts.py``, which shares no code with Spark or dbt) and the messages read back from the topic:
never the pipeline's output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from core.kafka.cluster import KafkaCluster
from producer.publish import DUPLICATE, FAULT_HEADER, LATE, EventFactory, Outgoing, ProduceReport, send
from producer.sources import WATCH_FIELDS
from tests.test_streaming_exactly_once import read_topic

SEGMENT = "country, genre_primary, device_type, quality, is_netflix_original, content_type"
COUNTS = ("total_sessions", "completion_count", "low_engagement_count", "abandonment_count",
          "quality_downgrade_count")  # fmt: skip


def at(start: datetime, minutes: float) -> float:
    """Epoch seconds ``minutes`` after ``start`` (the producer's clock)."""
    return (start + timedelta(minutes=minutes)).timestamp()


def spread(
    factory: EventFactory,
    records: Iterator[dict[str, Any]],
    start: datetime,
    begin: float,
    end: float,
    n: int,
) -> list[Outgoing]:
    """``n`` events evenly spread over [begin, end) minutes after ``start``, in time order; with the
    factory's ``duplicate_rate``, some are followed by their re-sent copy (as ``EventFactory.messages``)."""
    out: list[Outgoing] = []
    for i in range(n):
        message = factory.build(next(records), now=at(start, begin + (end - begin) * i / n))
        out.append(message)
        if factory.duplicate_rate and factory.rng.random() < factory.duplicate_rate:
            out.append(message._replace(fault=DUPLICATE))
    return out


def one(
    factory: EventFactory, record: dict[str, Any], start: datetime, minutes: float, fault: str | None = None
):
    message = factory.build(record, now=at(start, minutes))
    return message if fault is None else message._replace(fault=fault)


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """A Silver watch_history row as the producer's record (a CSV session replayed as an event)."""
    record = {name: row.get(name) for name in WATCH_FIELDS}
    record["user_rating"] = None if pd.isna(record["user_rating"]) else int(record["user_rating"])
    for name in ("watch_duration_minutes", "progress_percentage"):
        record[name] = None if pd.isna(record[name]) else float(record[name])
    return {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in record.items()}


def publish(kafka: KafkaCluster, conf: dict[str, str], messages: Iterable[Outgoing]) -> ProduceReport:
    report = send(kafka, list(messages), rate=0, client_conf=conf)
    assert report.failed == 0 and report.unflushed == 0, report.summary()
    return report


@dataclass
class Sent:
    """Every message on the topic, classified by its producer header."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, conf: dict[str, str], topic: str) -> Sent:
        return cls(read_topic(conf, topic))

    def kind(self, message: dict[str, Any]) -> str:
        fault = message["headers"].get(FAULT_HEADER, b"").decode()
        return {"": "on_time", LATE: "late", DUPLICATE: "duplicate"}.get(fault, "dead")

    def count(self, kind: str) -> int:
        return sum(self.kind(m) == kind for m in self.messages)

    def frame(self) -> pd.DataFrame:
        """Valid events (on time, late, duplicate copies) with their kind; dead letters left out."""
        rows = []
        for message in self.messages:
            kind = self.kind(message)
            if kind == "dead":
                continue
            event = json.loads(message["value"])
            rows.append({**{k: event.get(k) for k in ("event_id", "session_id", *WATCH_FIELDS[1:])},
                         "event_time": datetime.fromisoformat(event["event_time"]).astimezone(UTC)
                         .replace(tzinfo=None), "kind": kind})  # fmt: skip
        return pd.DataFrame(rows)


def truth(reference: duckdb.DuckDBPyConnection, sent: Sent) -> duckdb.DuckDBPyConnection:
    """Expected serving tables from the reference Silver and the sent events, in plain DuckDB SQL.

    Tables created on ``reference``: ``x_events`` (valid events), ``x_w`` (W), ``x_master`` (batch facts),
    ``x_speed`` (counted events from W on), ``x_served_5min`` (per window and segment).
    """
    con = reference
    con.register("x_sent", sent.frame())
    con.execute("CREATE OR REPLACE TABLE x_events AS SELECT * FROM x_sent")
    con.unregister("x_sent")
    con.execute(
        """
        CREATE OR REPLACE TABLE x_w AS
        WITH h AS (SELECT max(watch_date)::TIMESTAMP + INTERVAL 1 DAY AS history_end
                   FROM silver_watch_history),
             s AS (SELECT time_bucket(INTERVAL 5 MINUTE, max(event_time) - INTERVAL 10 MINUTE) AS stream_end
                   FROM x_events)
        SELECT greatest(coalesce(history_end, stream_end), coalesce(stream_end, history_end)) AS w FROM h, s
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE x_candidates AS
        SELECT session_id, user_id, movie_id, watch_date::TIMESTAMP AS event_time, device_type,
               round(watch_duration_minutes, 2) AS minutes, progress_percentage AS progress, action, quality,
               location_country, 0 AS priority, NULL AS event_id
        FROM silver_watch_history
        UNION ALL
        SELECT e.session_id, e.user_id, e.movie_id, e.event_time, e.device_type,
               round(e.watch_duration_minutes, 2), e.progress_percentage, e.action, e.quality,
               e.location_country,
               1, e.event_id
        FROM x_events e, x_w
        WHERE e.kind IN ('on_time', 'late') AND e.event_time < x_w.w
          AND e.user_id IN (SELECT user_id FROM silver_users)
          AND e.movie_id IN (SELECT movie_id FROM silver_movies)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE x_master AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT *, row_number() OVER (
                PARTITION BY session_id ORDER BY priority, event_time DESC, event_id) AS rn
            FROM x_candidates) WHERE rn = 1
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE x_speed AS
        SELECT e.session_id, e.user_id, e.movie_id, e.event_time, e.device_type,
               e.watch_duration_minutes AS minutes, e.progress_percentage AS progress, e.action, e.quality,
               e.location_country, 1 AS priority, e.event_id
        FROM x_events e, x_w
        WHERE e.kind = 'on_time' AND time_bucket(INTERVAL 5 MINUTE, e.event_time) >= x_w.w
        """
    )
    flagged = """
        WITH ranks(quality, r) AS (VALUES ('SD', 1), ('HD', 2), ('4K', 3), ('Ultra HD', 3)),
        usual AS (
            SELECT user_id, min(r) FILTER (WHERE n = top) AS usual FROM (
                SELECT user_id, r, n, max(n) OVER (PARTITION BY user_id) AS top FROM (
                    SELECT w.user_id, k.r, count(*) AS n
                    FROM silver_watch_history w JOIN ranks k USING (quality)
                    GROUP BY ALL)) GROUP BY user_id)
        SELECT time_bucket(INTERVAL 5 MINUTE, f.event_time) AS window_start,
               coalesce(u.country, f.location_country, 'Unknown') AS country,
               coalesce(m.genre_primary, 'Unknown') AS genre_primary,
               coalesce(f.device_type, 'Unknown') AS device_type, coalesce(f.quality, 'Unknown') AS quality,
               m.is_netflix_original, coalesce(m.content_type, 'Unknown') AS content_type,
               f.user_id, coalesce(f.minutes, 0) AS minutes,
               f.action = 'completed' AS completed, coalesce(f.progress < 20, false) AS low,
               coalesce(f.action = 'stopped' AND f.progress < 50, false) AS abandoned,
               coalesce(k.r < usual.usual, false) AS downgrade
        FROM {facts} f LEFT JOIN silver_users u USING (user_id) LEFT JOIN silver_movies m USING (movie_id)
        LEFT JOIN ranks k ON k.quality = f.quality LEFT JOIN usual USING (user_id)
    """
    aggregate = f"""
        SELECT window_start, {SEGMENT}, count(*) AS total_sessions,
               count(*) FILTER (WHERE completed) AS completion_count,
               count(*) FILTER (WHERE low) AS low_engagement_count,
               count(*) FILTER (WHERE abandoned) AS abandonment_count,
               count(*) FILTER (WHERE downgrade) AS quality_downgrade_count,
               round(sum(minutes), 2) AS total_watch_minutes, '{{side}}' AS served_from
        FROM ({{rows}}) GROUP BY ALL
    """
    batch = aggregate.format(rows=flagged.format(facts="x_master"), side="batch")
    speed = aggregate.format(rows=flagged.format(facts="x_speed"), side="speed")
    con.execute(f"CREATE OR REPLACE TABLE x_served_5min AS {batch} UNION ALL {speed}")
    return con


def watermark_of(con: duckdb.DuckDBPyConnection) -> datetime:
    return con.execute("SELECT w FROM x_w").fetchall()[0][0]
