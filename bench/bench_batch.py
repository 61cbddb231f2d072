"""Benchmark of the whole batch layer — Spark Silver + dbt, through Dagster — against plain DuckDB.

For each scale the raw CSVs are generated first (not timed), then two measurements run one after the
other, each in a fresh child process:

* **batch layer**: ``dagster.materialize`` of the raw, Silver and gold assets — the graph the hourly job
  runs, checks included — with the Settings defaults (``local[*]`` Spark). Wall time counts from the
  child's start, so Python/Dagster imports, the Spark JVM start and every dbt process start are in it;
  the Dagster step durations give the breakdown.
* **baseline**: ``reference.marts.compute_reference`` — the same cleaning rules and the same seven
  marts as plain DuckDB SQL straight from the CSVs, in one process.

Peak memory is the largest sum of RSS over the child's whole process tree (Python, Spark's JVM and
Python workers, dbt), sampled every 0.2 s. Afterwards the baseline's marts are compared with the
published ones, so the two timings are known to describe the same numbers.

    .venv/bin/python bench/bench_batch.py --scales 1,100
"""

from __future__ import annotations

import argparse
import json
import os
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

SAMPLE_SECONDS = 0.2


def bench_settings(root: Path, driver_memory: str | None):
    from core.settings import Settings

    extra = {"spark_driver_memory": driver_memory} if driver_memory else {}
    return Settings(_env_file=None, data_dir=root / "data", **extra)


# -- what the children run ---------------------------------------------------------------------------
def child_batch(root: Path, driver_memory: str | None, out: Path) -> None:
    started = time.perf_counter()
    from dagster import AssetsDefinition, DagsterInstance, materialize

    from netflix_assets.defs.dbt import definitions as dbt
    from netflix_assets.defs.raw import definitions as raw
    from netflix_assets.defs.silver import definitions as silver
    from netflix_assets.resources import build_resources

    settings = bench_settings(root, driver_memory)
    layers = [raw.definitions(settings), silver.definitions(settings), dbt.definitions(settings)]
    assets = [a for layer in layers for a in layer.assets or [] if isinstance(a, AssetsDefinition)]
    loaded = time.perf_counter()
    instance = DagsterInstance.ephemeral()
    result = materialize(assets, resources=build_resources(settings), instance=instance, raise_on_error=False)
    steps: dict[str, float] = {}
    begun: dict[str, float] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            begun[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in begun:
            steps[event.step_key] = steps.get(event.step_key, 0.0) + entry.timestamp - begun[event.step_key]
    silver_tables = {
        m.asset_key.path[-1]: {
            "seconds": m.metadata["seconds"].value,
            "phases": m.metadata["seconds_by_step"].value,
        }
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
        if m.asset_key.path[0] == "silver" and "seconds" in m.metadata
    }
    checks = result.get_asset_check_evaluations()
    out.write_text(
        json.dumps(
            {
                "success": result.success,
                "load_seconds": loaded - started,
                "steps": steps,
                "silver_tables": silver_tables,
                "checks": len(checks),
                "failed_checks": [
                    f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed
                ],
                "wall": time.perf_counter() - started,
            }
        )
    )


def child_baseline(root: Path, out: Path) -> None:
    started = time.perf_counter()
    import duckdb

    from core.bucket import Bucket
    from reference.marts import MART_SQL, build_marts, build_silver

    raw_dir = Bucket.from_settings(bench_settings(root, None)).local_path("raw")
    con = duckdb.connect(str(root / "baseline.duckdb"))
    con.execute("SET enable_progress_bar = false")
    silver_started = time.perf_counter()
    build_silver(con, raw_dir)
    marts_started = time.perf_counter()
    build_marts(con)
    done = time.perf_counter()
    con.close()
    out.write_text(
        json.dumps(
            {
                "success": True,
                "steps": {
                    "cleaning (Silver rules)": marts_started - silver_started,
                    "marts": done - marts_started,
                },
                "marts": list(MART_SQL),
                "wall": done - started,
            }
        )
    )


# -- measuring -----------------------------------------------------------------------------------------
def measure(args: list[str], log: Path) -> dict[str, Any]:
    """Run this script as a child with ``args``: wall time, peak RSS and CPU time of its process tree.

    CPU is the sum over every process seen of its last sampled user + system time, so a process that
    lives less than one sampling interval, or its last 0.2 s, is missed: a slight under-count.
    """
    out = log.with_suffix(".json")
    started = time.perf_counter()
    peak, cpu, loads = 0, {}, []
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args, "--out", str(out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            sampled = 0
            for process in tree:
                try:
                    with process.oneshot():
                        sampled += process.memory_info().rss
                        times = process.cpu_times()
                        cpu[process.pid] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            peak = max(peak, sampled)
            loads.append(os.getloadavg()[0])
            time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"child {' '.join(args)} failed (exit {proc.returncode}); see {log}")
    return {
        **json.loads(out.read_text()),
        "process_wall": wall,
        "peak_rss_mb": peak / 2**20,
        "cpu": sum(cpu.values()),
        # The machine is shared: the 1-minute load average while this child ran (mean and max of samples).
        "load_mean": sum(loads) / len(loads) if loads else os.getloadavg()[0],
        "load_max": max(loads, default=os.getloadavg()[0]),
    }


def compare(root: Path) -> dict[str, str]:
    import duckdb

    from core.warehouse import WarehouseLayout
    from reference.marts import mart_differences

    published = WarehouseLayout.from_settings(bench_settings(root, None)).batch_published
    con = duckdb.connect(str(root / "baseline.duckdb"), read_only=True)
    try:
        con.execute(f"ATTACH '{published}' AS published (READ_ONLY)")
        return mart_differences(con, "published")
    finally:
        con.close()


def run_scale(scale: float, seed: int, scratch: Path, driver_memory: str | None) -> dict[str, Any]:
    from core.bucket import Bucket
    from core.dbt import dbt_vars
    from core.warehouse import Warehouse
    from datagen import generate
    from netflix_assets.defs.dbt.project import build_dbt_project, parse_manifest
    from netflix_assets.resources import dbt_resource

    root = scratch / f"scale-{scale:g}"
    shutil.rmtree(root, ignore_errors=True)
    settings = bench_settings(root, driver_memory)
    t = time.perf_counter()
    rows = generate(Bucket.from_settings(settings), scale=scale, seed=seed)
    print(
        f"scale {scale:g}: generated {sum(rows.values()):,} raw rows in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    # A deployed code location's runs find the dbt project parsed with their --vars (at load, or kept from
    # the first run: netflix_assets/defs/dbt/project.py), so the measured run re-parses nothing.
    values = dbt_vars(Bucket.from_settings(settings), Warehouse.from_settings(settings))
    parse_manifest(build_dbt_project(settings.warehouse.value, values), dbt_resource(settings), values)
    memory = ["--driver-memory", driver_memory] if driver_memory else []
    batch = measure(["_batch", str(root), *memory], root / "batch.log")
    print(f"  batch layer: {batch['process_wall']:.1f} s, peak {batch['peak_rss_mb']:,.0f} MB", flush=True)
    baseline = measure(["_baseline", str(root)], root / "baseline.log")
    print(
        f"  baseline:    {baseline['process_wall']:.1f} s, peak {baseline['peak_rss_mb']:,.0f} MB", flush=True
    )
    differences = compare(root) if batch["success"] else {"batch layer": "failed, nothing published"}
    return {
        "scale": scale,
        "raw_rows": rows,
        "batch": batch,
        "baseline": baseline,
        "mart_differences": differences,
    }


def report(results: list[dict[str, Any]], command: str, load: tuple[float, float]) -> str:
    lines = [
        f"command: `{command}` — {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB; "
        f"load average {load[0]:.1f} at start, {load[1]:.1f} at end",
        "",
        "| scale | raw rows | batch layer (Silver + dbt): wall | CPU | peak RSS | load (mean/max) "
        "| DuckDB baseline: wall | CPU | peak RSS | load | batch / baseline (wall) | marts equal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        b, d = r["batch"], r["baseline"]
        lines.append(
            f"| {r['scale']:g} | {sum(r['raw_rows'].values()):,} "
            f"| {b['process_wall']:.1f} s | {b['cpu']:.0f} s | {b['peak_rss_mb']:,.0f} MB "
            f"| {b['load_mean']:.1f}/{b['load_max']:.1f} "
            f"| {d['process_wall']:.1f} s | {d['cpu']:.0f} s | {d['peak_rss_mb']:,.0f} MB "
            f"| {d['load_mean']:.1f} | "
            f"{b['process_wall'] / d['process_wall']:.2f}× | {'yes' if not r['mart_differences'] else 'NO'} |"
        )
    lines.append("")
    for r in results:
        b = r["batch"]
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(b["steps"].items(), key=lambda kv: -kv[1]))
        base = ", ".join(f"{k} {v:.1f} s" for k, v in r["baseline"]["steps"].items())
        lines.append(
            f"* scale {r['scale']:g}: success={b['success']}, {b['checks']} checks, "
            f"failed {b['failed_checks']}; definitions load {b['load_seconds']:.1f} s; "
            f"Dagster steps: {steps}. Baseline: {base}."
        )
        for table, timing in b.get("silver_tables", {}).items():
            phases = ", ".join(f"{k} {v:.1f}" for k, v in timing["phases"].items())
            lines.append(f"  * Silver {table}: {timing['seconds']:.1f} s ({phases})")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("_batch", "_baseline"):
        child = argparse.ArgumentParser()
        child.add_argument("mode")
        child.add_argument("root", type=Path)
        child.add_argument("--driver-memory")
        child.add_argument("--out", type=Path, required=True)
        a = child.parse_args()
        if a.mode == "_batch":
            child_batch(a.root, a.driver_memory, a.out)
        else:
            child_baseline(a.root, a.out)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1", help="comma-separated scales, e.g. 1,100")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (default: Settings')")
    parser.add_argument(
        "--dir", default=None, help="scratch folder (default: a temp dir, removed afterwards)"
    )
    args = parser.parse_args()
    command = f".venv/bin/python bench/bench_batch.py --scales {args.scales}" + (
        f" --driver-memory {args.driver_memory}" if args.driver_memory else ""
    )
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="bench-batch-"))
    scratch.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    print(f"{command}\nscratch {scratch}; load average {load_start:.2f}", flush=True)
    try:
        results = [
            run_scale(float(s), args.seed, scratch, args.driver_memory) for s in args.scales.split(",")
        ]
    finally:
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)
    text = report(results, command, (load_start, os.getloadavg()[0]))
    print("\n" + text)
    results_dir = PROJECT_ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"batch-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["batch"]["success"] and not r["mart_differences"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
