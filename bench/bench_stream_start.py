"""Where the stream's first minute goes: the start-up of one streaming run, phase by phase.

Each repetition is a fresh Python process doing what a streaming run does after Dagster launched it, with
a timestamp and the CPU seconds of its process tree (driver JVM and Python workers included) at each step:

1. ``import``: the code location (``netflix_assets.definitions``), which every run process loads first;
2. ``spark``: the SparkSession from the project's configuration (``core.spark.spark_config``);
3. ``dimensions``: users and movies the stream joins (from Silver, or the raw CSVs when the batch layer has
   not run yet: ``--dims raw`` hides Silver from the run);
4. ``query start``: from ``writeStream.start()`` to the first micro-batch being handed over;
5. ``first batch`` / ``second batch``: their processing (Spark job, sinks, warehouse commit).

The topic holds ``--events`` events when the query starts (what the producer sent while Spark started).
CPU seconds are the stable number on a shared machine; wall seconds are what a user waits.

    .venv/bin/python bench/bench_stream_start.py --data-dir data --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.checkout import env_for, export_ref  # noqa: E402

PHASES = ("import", "spark", "dimensions", "query_start", "first_batch", "second_batch")


def _cpu() -> float:
    """CPU seconds of this process and every live descendant (the JVM, Spark's Python workers)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def child(data_dir: Path, dims: str, events: int) -> dict[str, Any]:
    """One stream start in this process; returns {phase: [wall s, cpu s]}."""
    marks: list[tuple[str, float, float]] = [("start", time.monotonic(), _cpu())]

    def mark(name: str) -> None:
        marks.append((name, time.monotonic(), _cpu()))

    import netflix_assets.definitions  # noqa: F401  (what every run process loads first)

    mark("import")
    from pyspark.sql import SparkSession

    import streaming.dimensions as dimensions
    import streaming.micro_batch as micro_batch
    from core.bucket import Bucket
    from core.kafka.cluster import KafkaCluster
    from core.settings import Settings
    from core.spark import spark_config, use_python
    from core.warehouse import WarehouseLayout
    from embedded_broker.process import EmbeddedBroker
    from producer.publish import produce
    from producer.sources import Catalog, synthetic_source
    from streaming.job import StreamOptions, run_stream

    work = Path(tempfile.mkdtemp(prefix="bench-stream-start-"))
    for folder in ("raw", "silver"):  # a copy: the stream writes its sinks and checkpoint into the bucket
        if (data_dir / "bucket" / folder).exists():
            shutil.copytree(data_dir / "bucket" / folder, work / "bucket" / folder)
    settings = Settings(_env_file=None, data_dir=work)
    bucket = Bucket.from_settings(settings)
    kafka = KafkaCluster.from_settings(settings)
    with EmbeddedBroker(kafka.state_dir, topics=kafka.topics()):
        produce(kafka, synthetic_source(Catalog.from_bucket(bucket), seed=1), rate=0, count=events)
        builder = SparkSession.builder
        for key, value in spark_config(settings).items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        use_python(spark, settings.pyspark_python)
        mark("spark")
        if dims == "raw":  # as on a first start: the batch layer has not written Silver yet
            dimensions._has_silver = lambda *_: False
        loader = micro_batch.load_dimensions

        def timed_load(*args: Any) -> Any:
            loaded = loader(*args)
            mark("dimensions")
            return loaded

        micro_batch.load_dimensions = timed_load  # type: ignore[assignment]
        process = micro_batch.MicroBatchProcessor.__call__

        def timed_call(self: Any, *args: Any) -> None:
            mark("batch_started")
            process(self, *args)

        micro_batch.MicroBatchProcessor.__call__ = timed_call  # type: ignore[method-assign]
        stop = threading.Event()
        batches: list[Any] = []

        def on_batch(metrics: Any) -> None:
            mark("batch_committed")
            batches.append(metrics)
            if len(batches) == 2:
                stop.set()
            else:  # something for the second batch
                produce(kafka, synthetic_source(Catalog.from_bucket(bucket), seed=2), rate=0, count=events)

        options = StreamOptions.from_settings(settings, trigger_seconds=1.0, publish_dead_letters=False)
        run_stream(spark, bucket, WarehouseLayout.from_settings(settings), kafka, options, stop_event=stop,
                   on_batch=on_batch)  # fmt: skip
        spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return _phases(marks)


def _phases(marks: list[tuple[str, float, float]]) -> dict[str, Any]:
    at = {}
    for name, wall, cpu in marks:
        at.setdefault(name, []).append((wall, cpu))
    steps = [
        ("import", at["start"][0], at["import"][0]),
        ("spark", at["import"][0], at["spark"][0]),
        ("dimensions", at["spark"][0], at["dimensions"][0]),
        ("query_start", at["dimensions"][0], at["batch_started"][0]),
        ("first_batch", at["batch_started"][0], at["batch_committed"][0]),
        ("second_batch", at["batch_started"][1], at["batch_committed"][1]),
    ]
    return {name: [round(end[0] - begin[0], 2), round(end[1] - begin[1], 2)] for name, begin, end in steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="a data folder with bucket/raw (+ silver)"
    )
    parser.add_argument("--dims", choices=("silver", "raw"), default="silver")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-ref", default=None, help="also measure this commit's code, interleaved")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.data_dir.resolve(), args.dims, args.events)))
        return
    checkouts: dict[str, Path | None] = {"this branch": None}
    if args.baseline_ref:
        checkouts = {args.baseline_ref: export_ref(args.baseline_ref), **checkouts}
    try:
        runs = measure(args, checkouts)
    finally:
        for checkout in checkouts.values():
            if checkout is not None:
                shutil.rmtree(checkout, ignore_errors=True)
    print(f"\nstream start, dimensions from {args.dims}, {args.events} events per batch; medians\n")
    print("| phase | " + " | ".join(f"{label}: wall s | CPU s" for label in runs) + " |")
    print("|---|" + "---:|---:|" * len(runs))
    for phase in PHASES:
        cells = [
            f"{statistics.median(r[phase][index] for r in rows):.1f}"
            for rows in runs.values()
            for index in (0, 1)
        ]
        print(f"| {phase} | " + " | ".join(cells) + " |")


def measure(args: argparse.Namespace, checkouts: dict[str, Path | None]) -> dict[str, list[dict[str, Any]]]:
    """``--repeats`` child runs per checkout, interleaved so that both see the same load."""
    envs = {label: _child_env(checkout) for label, checkout in checkouts.items()}
    for label, checkout in checkouts.items():  # a first load parses the dbt project: not a run's cost
        subprocess.run([sys.executable, "-c", "import netflix_assets.definitions"], env=envs[label],
                       cwd=checkout or PROJECT_ROOT, check=True, capture_output=True)  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in checkouts}
    data_dir = str(args.data_dir.resolve())
    argv = [sys.executable, "-m", "bench.bench_stream_start", "--child", "--data-dir", data_dir,
            "--dims", args.dims, "--events", str(args.events)]  # fmt: skip
    for index in range(args.repeats):
        for label, checkout in checkouts.items():
            load = os.getloadavg()[0]
            done = subprocess.run(argv, capture_output=True, text=True, check=True, env=envs[label],
                                  cwd=checkout or PROJECT_ROOT)  # fmt: skip
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{label} #{index + 1} (load {load:.1f}): {json.dumps(runs[label][-1])}", flush=True)
    return runs


def _child_env(checkout: Path | None) -> dict[str, str]:
    """Imports come from ``checkout`` first (``python -m`` also puts the working folder first); this
    benchmark's own module from here."""
    env = {**os.environ, **env_for(checkout)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(PROJECT_ROOT)) if p)
    return env


if __name__ == "__main__":
    main()
