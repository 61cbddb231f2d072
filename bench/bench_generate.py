"""Benchmark of the Kaggle-shaped generator: rows/s per table and overall, wall and CPU time, peak RSS.

Baselines measured in the same run, on the same disk:
* writer ceiling: ``pyarrow.csv.write_csv`` of a pre-built, typed Arrow table with the first 1M rows of the
  generated watch_history (what writing alone costs when the data already exists in memory);
* disk ceiling: writing the same number of bytes as the generated watch_history with plain ``write``.

Each measurement runs in a fresh child process so peak RSS is its own.

    .venv/bin/python bench/bench_generate.py --scale 100 --workers 1,2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

BASELINE_ROWS = 1_000_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_generator(root: str, scale: float, seed: int, workers: int) -> dict[str, Any]:
    from core.bucket import Bucket
    from datagen import generate_tables

    cpu, started = _cpu_seconds(), time.perf_counter()
    tables = [vars(r) for r in generate_tables(Bucket(root), scale, seed, workers=workers)]
    return {
        "tables": tables,
        "wall": time.perf_counter() - started,
        "cpu": _cpu_seconds() - cpu,
        "rss_mb": _peak_rss_mb(),
    }


def run_writer_ceiling(source: str, target: str) -> dict[str, Any]:
    import pyarrow.csv as pacsv

    with pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=64 << 20)) as reader:
        batches, rows = [], 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows >= BASELINE_ROWS:
                break
    import pyarrow as pa

    table = pa.Table.from_batches(batches).slice(0, BASELINE_ROWS)
    cpu, started = _cpu_seconds(), time.perf_counter()
    pacsv.write_csv(table, target)
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {"rows": table.num_rows, "bytes": os.path.getsize(target), "wall": wall, "cpu": cpu}


def run_disk_ceiling(size: int, target: str) -> dict[str, Any]:
    block = os.urandom(1 << 20) * 16  # 16 MB, written repeatedly
    started = time.perf_counter()
    with open(target, "wb") as handle:
        left = size
        while left > 0:
            handle.write(block[: min(left, len(block))])
            left -= len(block)
    return {"bytes": size, "wall": time.perf_counter() - started}


def in_child(func: Any, *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", default="2", help="comma-separated thread counts to measure, e.g. 1,2")
    parser.add_argument(
        "--dir", default=None, help="scratch folder (default: a temp dir, removed afterwards)"
    )
    args = parser.parse_args()

    scratch = Path(args.dir or tempfile.mkdtemp(prefix="bench-generate-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f}; scratch {scratch}"
    )
    print(
        f"command: .venv/bin/python bench/bench_generate.py --scale {args.scale:g} --workers {args.workers}\n"
    )
    try:
        watch_csv, watch_bytes = None, 0
        for workers in (int(w) for w in args.workers.split(",")):
            root = scratch / f"gen-w{workers}"
            shutil.rmtree(root, ignore_errors=True)
            result = in_child(run_generator, str(root), args.scale, args.seed, workers)
            total_rows = sum(t["rows"] for t in result["tables"])
            total_bytes = sum(t["bytes"] for t in result["tables"])
            print(f"generator, {workers} worker thread(s), scale {args.scale:g}, seed {args.seed}")
            print("| table | rows | MB | seconds | rows/s |\n|---|---:|---:|---:|---:|")
            for t in result["tables"]:
                print(f"| {t['table']} | {t['rows']:,} | {t['bytes'] / 1e6:,.0f} | {t['seconds']:.1f} "
                      f"| {t['rows'] / t['seconds']:,.0f} |")  # fmt: skip
            print(f"| **all** | {total_rows:,} | {total_bytes / 1e6:,.0f} | {result['wall']:.1f} "
                  f"| **{total_rows / result['wall']:,.0f}** |")  # fmt: skip
            print(f"wall {result['wall']:.1f} s, CPU {result['cpu']:.1f} s "
                  f"({total_rows / result['cpu']:,.0f} rows per CPU-second), "
                  f"peak RSS {result['rss_mb']:,.0f} MB, "
                  f"load average now {os.getloadavg()[0]:.2f}\n")  # fmt: skip
            watch = next(t for t in result["tables"] if t["table"] == "watch_history")
            watch_csv, watch_bytes = root / "raw" / "watch_history.csv", watch["bytes"]
            watch_rate = watch["rows"] / watch["seconds"]
            all_cpu_rate = total_rows / result["cpu"]
            for other in scratch.glob("gen-w*"):
                if other != root:
                    shutil.rmtree(other, ignore_errors=True)

        assert watch_csv is not None
        ceiling = in_child(run_writer_ceiling, str(watch_csv), str(scratch / "ceiling.csv"))
        ceiling_rate, ceiling_cpu_rate = ceiling["rows"] / ceiling["wall"], ceiling["rows"] / ceiling["cpu"]
        print(
            f"writer ceiling: pyarrow.csv.write_csv of a pre-built, typed {ceiling['rows']:,}-row "
            f"watch_history table ({ceiling['bytes'] / 1e6:,.0f} MB): {ceiling['wall']:.2f} s wall, "
            f"{ceiling['cpu']:.2f} s CPU = {ceiling_rate:,.0f} rows/s, "
            f"{ceiling_cpu_rate:,.0f} rows per CPU-second"
        )
        print(
            f"ratio (last generator run): watch_history {watch_rate:,.0f} rows/s = "
            f"{watch_rate / ceiling_rate:.2f}x the ceiling's wall rate; all tables "
            f"{all_cpu_rate:,.0f} rows per CPU-second = "
            f"{all_cpu_rate / ceiling_cpu_rate:.2f}x the ceiling's CPU rate"
        )
        disk = in_child(run_disk_ceiling, watch_bytes, str(scratch / "disk.bin"))
        print(f"disk ceiling: plain write of {disk['bytes'] / 1e6:,.0f} MB: {disk['wall']:.2f} s = "
              f"{disk['bytes'] / 1e6 / disk['wall']:,.0f} MB/s")  # fmt: skip
    finally:
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
