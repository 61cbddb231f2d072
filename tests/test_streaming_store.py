"""The realtime warehouse sink on its own (DuckDB only): replays are no-ops, distinct users stay distinct.

Random sessions are split into micro-batches the way the stream hands them over; the expected windows
are computed in plain Python from the sessions themselves.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.settings import Settings
from core.warehouse import WarehouseLayout, connect_serving
from streaming.churn import SEGMENT_KEYS, SESSION_COLUMNS
from streaming.realtime_store import BatchRecord, RealtimeStore, running_owner

T0 = datetime(2026, 1, 5, 12, 0)
SEGMENTS = [
    ("USA", "Drama", "Mobile", "HD", True, "Movie"),
    ("Canada", "Comedy", "Smart TV", "4K", False, "TV Series"),
]


def sessions(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        progress = rng.choice([None, rng.uniform(0, 100)])
        out.append(
            {
                "window_start": T0 + timedelta(minutes=5 * rng.randrange(3)),
                "segment": rng.randrange(len(SEGMENTS)),
                "user_id": f"u{rng.randrange(12)}",
                "minutes": rng.uniform(0, 90),
                "progress": progress,
                "imdb": rng.choice([None, rng.uniform(1, 10)]),
                "low": progress is not None and progress < 20,
                "abandoned": rng.random() < 0.2,
                "downgrade": rng.random() < 0.1,
                "completed": rng.random() < 0.3,
            }
        )
    for s in out:
        s["spend"] = 10.0 + int(s["user_id"][1:])  # one spend per user
    return out


def session_table(batch: list[dict[str, Any]]) -> pa.Table:
    """The batch as the stream hands it to the sink: one row per session (``SESSION_COLUMNS``)."""
    flags = ("low_engagement", "abandoned", "quality_downgrade", "completed", "at_risk")
    rows = [
        {
            "window_start": s["window_start"],
            "segment_id": s["segment"] + 100,
            **dict(zip(SEGMENT_KEYS, SEGMENTS[s["segment"]], strict=True)),
            "user_id": s["user_id"],
            "watch_duration_minutes": s["minutes"],
            "progress_percentage": s["progress"],
            "imdb_rating": s["imdb"],
            "low_engagement": s["low"],
            "abandoned": s["abandoned"],
            "quality_downgrade": s["downgrade"],
            "completed": s["completed"],
            "at_risk": s["low"] or s["abandoned"] or s["downgrade"],
            "monthly_spend": s["spend"],
        }
        for s in batch
    ]
    schema = pa.schema(
        [
            ("window_start", pa.timestamp("us")),
            ("segment_id", pa.int64()),
            *[(k, pa.bool_() if k == "is_netflix_original" else pa.string()) for k in SEGMENT_KEYS],
            ("user_id", pa.string()),
            ("watch_duration_minutes", pa.float64()),
            ("progress_percentage", pa.float64()),
            ("imdb_rating", pa.float64()),
            *[(f, pa.bool_()) for f in flags],
            ("monthly_spend", pa.float64()),
        ]
    )
    assert schema.names == list(SESSION_COLUMNS)
    return pa.Table.from_pylist(rows, schema=schema)


def record(batch_id: int, rows: int, max_event: datetime, watermark: datetime | None = None) -> BatchRecord:
    return BatchRecord(batch_id, rows, rows, 0, 0, watermark, max_event, {"0": [0, rows]}, 0.1)


def expected(all_sessions: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    by_key: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for s in all_sessions:
        by_key[(s["window_start"], *SEGMENTS[s["segment"]])].append(s)
    result = {}
    for key, items in by_key.items():
        users: dict[str, dict[str, Any]] = {}
        for i in items:
            risk = i["low"] or i["abandoned"] or i["downgrade"]
            users.setdefault(i["user_id"], {"spend": i["spend"], "risk": False})["risk"] |= risk
        result[key] = {
            "total_sessions": len(items),
            "unique_users": len(users),
            "low_engagement_count": sum(i["low"] for i in items),
            "revenue_impact": round(sum(u["spend"] for u in users.values() if u["risk"]), 6),
            "avg_subscriber_value": round(sum(u["spend"] for u in users.values()) / len(users), 6),
        }
    return result


def actual(store: RealtimeStore) -> dict[tuple, dict[str, Any]]:
    rows = store.con.execute(
        f"SELECT window_start, {', '.join(SEGMENT_KEYS)}, total_sessions, unique_users, "
        "low_engagement_count, round(revenue_impact, 6), round(avg_subscriber_value, 6) "
        "FROM engagement_health_realtime"
    ).fetchall()
    names = (
        "total_sessions",
        "unique_users",
        "low_engagement_count",
        "revenue_impact",
        "avg_subscriber_value",
    )
    return {tuple(r[:7]): dict(zip(names, r[7:], strict=True)) for r in rows}


def test_replayed_batches_change_nothing_and_distinct_users_are_not_summed(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    layout = WarehouseLayout.from_settings(settings)
    store = RealtimeStore(layout)
    try:
        assert running_owner(layout) is not None  # the sensor sees a live stream owns the warehouse
        first, second = sessions(1, 300), sessions(2, 250)
        end = T0 + timedelta(minutes=15)
        assert store.commit_batch(record(0, len(first), end), session_table(first)) == 3
        assert actual(store) == expected(first)
        assert store.commit_batch(record(1, len(second), end), session_table(second)) == 3
        merged = expected(first + second)
        assert actual(store) == merged
        # Sessions of a user spread over both batches count once in unique_users.
        alone = expected(first), expected(second)
        assert any(
            v["unique_users"] < sum(part.get(k, {}).get("unique_users", 0) for part in alone)
            for k, v in merged.items()
        )

        # Spark replays batch 1 after a crash: the ledger makes it a no-op.
        assert store.commit_batch(record(1, len(second), end), session_table(second)) == 0
        assert actual(store) == merged
        assert store.counts()["batches"] == 2 and store.counts()["rows_in"] == len(first) + len(second)

        # A watermark past the first window drops its per-user state, never its published row.
        store.commit_batch(record(2, 0, end, watermark=T0 + timedelta(minutes=5)), session_table([]))
        open_windows = store.con.execute("SELECT DISTINCT window_start FROM segment_window_users").fetchall()
        assert (T0,) not in open_windows and actual(store) == merged

        store.publish()
        served = connect_serving(settings)
        total = served.execute(
            "SELECT sum(total_sessions) FROM realtime.engagement_health_realtime"
        ).fetchall()
        assert total == [(len(first) + len(second),)]
        assert served.execute("SELECT count(*) FROM realtime.stream_batches").fetchall() == [(3,)]
    finally:
        store.close()
    assert running_owner(layout) is None


def test_a_ledger_from_before_legacy_v0_gains_the_column_and_keeps_its_batches(tmp_path: Path) -> None:
    """``stream_batches`` written by an earlier version (no ``legacy_v0``) is migrated in place on open."""
    layout = WarehouseLayout.from_settings(Settings(_env_file=None, data_dir=tmp_path))
    layout.root.mkdir(parents=True)
    with duckdb.connect(str(layout.realtime_db)) as old:
        old.execute(
            "CREATE TABLE stream_batches (batch_id BIGINT PRIMARY KEY, committed_at TIMESTAMP, "
            "rows_in BIGINT, valid BIGINT, dead_letters BIGINT, late BIGINT, watermark TIMESTAMP, "
            "max_event_time TIMESTAMP, input_offsets VARCHAR, windows_updated BIGINT, processing_s DOUBLE)"
        )
        old.execute("INSERT INTO stream_batches VALUES (0, now(), 10, 10, 0, 0, NULL, ?, '{}', 0, 0.1)", [T0])
    store = RealtimeStore(layout)
    try:
        batch = sessions(3, 40)
        legacy = replace(record(1, len(batch), T0 + timedelta(minutes=15)), legacy_v0=7)
        store.commit_batch(legacy, session_table(batch))
        ledger = store.con.execute("SELECT batch_id, legacy_v0 FROM stream_batches ORDER BY 1").fetchall()
        assert ledger == [(0, 0), (1, 7)]
        assert store.counts()["legacy_v0"] == 7 and store.counts()["rows_in"] == 10 + len(batch)
    finally:
        store.close()
