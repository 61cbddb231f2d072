"""Benchmark of the Spark Silver layer alone (no Dagster, no dbt) against plain DuckDB on the same CSVs.

For each scale the raw CSVs are generated first (not timed); then, each in a fresh child process:

* **silver**: ``bench.silver_timing.time_silver`` — Spark start, the six tables (rules, Parquet
  writes, the asset checks) with the Settings' Spark master (default ``local[*]``).
* **baseline**: ``reference.marts.build_silver`` — the same rules in plain DuckDB SQL, followed by
  writing its Silver and quarantine tables as Parquet, so both sides end with the same files.

Wall time includes each child's Python imports; peak RSS is the largest sum over the child's process tree.

    .venv/bin/python bench/bench_silver.py --scales 1,10
    .venv/bin/python bench/bench_silver.py --scales 100 --skip-baseline
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # `reference.marts` is the baseline, reused rather than copied
    sys.path.insert(0, str(PROJECT_ROOT))


def settings_for(root: Path, master: str):
    from core.settings import Settings

    return Settings(_env_file=None, data_dir=root / "data", spark_master=master)


def child_silver(root: Path, master: str, workers: int | None) -> dict[str, Any]:
    from bench.silver_timing import time_silver

    return time_silver(settings_for(root, master), workers=workers).as_dict()


def child_baseline(root: Path) -> dict[str, Any]:
    import duckdb

    from core.bucket import Bucket
    from reference.marts import TABLES, build_silver

    bucket = Bucket.from_settings(settings_for(root, "local[*]"))
    out = root / "baseline"
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    counts = build_silver(con, bucket.local_path("raw"))
    cleaned = time.perf_counter()
    for table in TABLES:
        for layer in ("silver", "quarantine"):
            target = out / layer / table
            target.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY {layer}_{table} TO '{target}/data.parquet' (FORMAT parquet)")
    done = time.perf_counter()
    return {"cleaning_seconds": cleaned - started, "write_seconds": done - cleaned, "counts": counts}


def measure(args: list[str]) -> dict[str, Any]:
    """Run this script as a child: its JSON answer plus wall time and peak RSS of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, cwd=PROJECT_ROOT)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    output = proc.stdout.read().decode() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed with exit code {proc.returncode}")
    return {**json.loads(output.strip().splitlines()[-1]), "wall": wall, "peak_rss_mb": round(peak / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1", help="comma-separated generator scales")
    parser.add_argument("--master", default="local[*]", help="Spark master for the Silver child")
    parser.add_argument("--workers", type=int, default=0, help="tables built at once (0: the job's default)")
    parser.add_argument("--scratch", type=Path, default=None, help="where data goes (default: a temp dir)")
    parser.add_argument("--skip-baseline", action="store_true", help="time the Spark side only")
    parser.add_argument("--child", choices=("silver", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        answer = (
            child_silver(args.root, args.master, args.workers or None)
            if args.child == "silver"
            else child_baseline(args.root)
        )
        print(json.dumps(answer, default=str))
        return

    from core.bucket import Bucket
    from datagen import generate

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench-silver-"))
    for scale in (float(s) for s in args.scales.split(",")):
        root = scratch / f"scale-{scale:g}"
        shutil.rmtree(root, ignore_errors=True)
        rows = generate(Bucket.from_settings(settings_for(root, args.master)), scale=scale)
        load = psutil.getloadavg()[0]
        silver = measure(["--child", "silver", "--root", str(root), "--master", args.master,
                          "--workers", str(args.workers)])  # fmt: skip
        baseline = None if args.skip_baseline else measure(["--child", "baseline", "--root", str(root)])
        report = {
            "scale": scale,
            "raw_rows": sum(rows.values()),
            "load_average_before": load,
            "load_average_after": psutil.getloadavg()[0],
            "silver": silver,
            "baseline": baseline,
            "ratio": silver["wall"] / baseline["wall"] if baseline else None,
        }
        print(json.dumps(report, indent=2, default=str), flush=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
