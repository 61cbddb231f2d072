"""The realtime sink's cost per micro-batch: BigQuery (against bqemulator) vs DuckDB, same batches.

Each batch is a session table as the stream hands it to the sink (``streaming.churn.SESSION_COLUMNS``):
``--sessions`` rows spread over a few 5-minute windows, 300 segments and 5,000 users, windows advancing
batch by batch like a live stream (so state is pruned and alerts recomputed as in production). Both sinks
commit the same ``--batches`` batches; the BigQuery sink's time is split into staging (Parquet upload as
a load job), the transaction script, and dropping the staging table. The first batch (table creation,
warm-up) is reported apart.

The emulator runs on this machine (DuckDB inside), so its numbers are the *client's and the protocol's*
cost plus a local engine, not BigQuery's: real BigQuery adds seconds of job scheduling per load and per
script (docs/deployment.md, "Quotas and costs").

    .venv/bin/python bench/bench_bigquery_sink.py                     # defaults used for docs/benchmarks.md
    .venv/bin/python bench/bench_bigquery_sink.py --sessions 1000,10000 --batches 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.bigquery import bigquery_client  # noqa: E402
from core.warehouse import BigQueryTarget, WarehouseLayout  # noqa: E402
from streaming.bigquery_store import BigQueryRealtimeStore  # noqa: E402
from streaming.churn import SEGMENT_KEYS, SESSION_COLUMNS  # noqa: E402
from streaming.realtime_store import BatchRecord, RealtimeStore  # noqa: E402
from tests.emulators.bigquery import BigQueryEmulator  # noqa: E402

T0 = datetime(2026, 1, 5, 12, 0)
COUNTRIES, GENRES, DEVICES = ("USA", "Canada"), ("Drama", "Comedy", "Action", "Horror", "Documentary"), (
    "Mobile", "Smart TV", "Laptop", "Tablet", "Desktop",
)  # fmt: skip


def session_batch(rng: random.Random, batch: int, rows: int) -> tuple[pa.Table, datetime]:
    """``rows`` sessions in the 3 windows around this batch's time; returns the table and its newest time."""
    newest = T0 + timedelta(minutes=2 * batch)
    segments = [
        (c, g, d, q, o, t)
        for c in COUNTRIES for g in GENRES for d in DEVICES for q in ("SD", "HD", "4K") for o in (True, False)
        for t in ("Movie",)
    ][:300]  # fmt: skip
    data: dict[str, list[Any]] = {name: [] for name in SESSION_COLUMNS}
    for _ in range(rows):
        start = newest - timedelta(minutes=5 * rng.randrange(3))
        start -= timedelta(minutes=start.minute % 5, seconds=start.second)
        seg = rng.randrange(len(segments))
        progress = rng.uniform(0, 100)
        flags = {"low_engagement": progress < 20, "abandoned": rng.random() < 0.2,
                 "quality_downgrade": rng.random() < 0.1, "completed": rng.random() < 0.3}  # fmt: skip
        values = {
            "window_start": start, "segment_id": seg, **dict(zip(SEGMENT_KEYS, segments[seg], strict=True)),
            "user_id": f"u{rng.randrange(5000)}", "watch_duration_minutes": rng.uniform(1, 120),
            "progress_percentage": progress, "imdb_rating": rng.uniform(1, 10), **flags,
            "at_risk": flags["low_engagement"] or flags["abandoned"] or flags["quality_downgrade"],
            "monthly_spend": 10.0 + rng.randrange(20),
        }  # fmt: skip
        for name in SESSION_COLUMNS:
            data[name].append(values[name])
    return pa.table(data), newest


def measure(store: Any, batches: list[tuple[pa.Table, datetime]], offset: int) -> list[dict[str, float]]:
    timings = []
    for i, (table, newest) in enumerate(batches):
        record = BatchRecord(offset + i, table.num_rows, table.num_rows, 0, 0, newest - timedelta(minutes=10),
                             newest, {"0": [0, table.num_rows]}, 0.0)  # fmt: skip
        started = time.perf_counter()
        store.commit_batch(record, table)
        timing = {"total": time.perf_counter() - started, **getattr(store, "last_timing", {})}
        timings.append(timing)
    return timings


def summary(timings: list[dict[str, float]]) -> dict[str, Any]:
    steady = timings[1:] or timings
    keys = sorted({k for t in steady for k in t})
    return {
        "first_batch_s": round(timings[0]["total"], 4),
        **{f"median_{k}_s": round(statistics.median(t.get(k, 0.0) for t in steady), 4) for k in keys},
        "p90_total_s": round(sorted(t["total"] for t in steady)[int(0.9 * (len(steady) - 1))], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1000,10000,50000", help="sessions per batch, comma-separated")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[str, Any] = {"load_before": [round(x, 2) for x in load_before], "sizes": {}}
    with (
        tempfile.TemporaryDirectory(prefix="bench-bq-sink-") as tmp,
        BigQueryEmulator(Path(tmp) / "emu") as emu,
    ):
        for size in (int(s) for s in args.sessions.split(",")):
            rng = random.Random(size)
            batches = [session_batch(rng, b, size) for b in range(args.batches)]
            target = BigQueryTarget(
                project=emu.project, realtime_dataset=f"bench_{size}", api_endpoint=emu.endpoint
            )
            bq = BigQueryRealtimeStore(
                bigquery_client(target), target, WarehouseLayout(Path(tmp) / f"o{size}")
            )
            duck = RealtimeStore(WarehouseLayout(Path(tmp) / f"duck{size}"))
            try:
                results["sizes"][size] = {"bigquery_emulator": summary(measure(bq, batches, 0)),
                                          "duckdb": summary(measure(duck, batches, 0))}  # fmt: skip
            finally:
                bq.close()
                duck.close()
            print(json.dumps({size: results["sizes"][size]}), flush=True)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
