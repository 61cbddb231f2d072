"""A Spark start with and without the driver's class archive (``NETFLIX_SPARK_CLASS_ARCHIVE``), interleaved.

Each measurement is a fresh Python process that starts a SparkSession from the project's configuration
(``core.spark.start_spark``), runs one small query, and reports the session's start (wall), the query's
wall time, and the driver JVM's CPU seconds by then (from /proc, so JIT and class-loading threads count).
The archive is the one ``make setup`` wrote (``netflix-lambda spark-classes``); "without" empties the
setting. Runs alternate so both see the same load.

    .venv/bin/python bench/bench_spark_start.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, os, time
from core.settings import get_settings
from core.spark import start_spark
started = time.perf_counter()
spark = start_spark(get_settings(), "bench-spark-start")
up = time.perf_counter()
spark.range(100_000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
done = time.perf_counter()
pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
jvm_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
spark.stop()
print(json.dumps({"start_s": up - started, "first_query_s": done - up, "jvm_cpu_s": jvm_cpu}))
"""


def measure(archive: str | None, data_dir: Path) -> dict[str, float]:
    env = {**os.environ, "NETFLIX_DATA_DIR": str(data_dir)}
    if archive is None:
        env["NETFLIX_SPARK_CLASS_ARCHIVE"] = ""
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bench-spark-start"))
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_ROOT))
    from core.settings import get_settings

    archive = get_settings().spark_class_archive
    if not archive or not Path(archive).is_file():
        sys.exit(f"no class archive at {archive!r}: run `netflix-lambda spark-classes` first")
    results: dict[str, list[dict[str, float]]] = {"without archive": [], "with archive": []}
    for index in range(args.runs):
        for label, path in (("without archive", None), ("with archive", archive)):
            load = os.getloadavg()[0]
            results[label].append(measure(path, args.data_dir))
            print(f"{label} #{index + 1} (load {load:.1f}): {json.dumps(results[label][-1])}", flush=True)
    print(f"\nSpark start, medians of {args.runs}; load average now {os.getloadavg()[0]:.1f}\n")
    print("| | session start s | first query s | driver JVM CPU s |\n|---|---:|---:|---:|")
    for label, rows in results.items():
        cells = [statistics.median(r[k] for r in rows) for k in ("start_s", "first_query_s", "jvm_cpu_s")]
        print(f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
