"""Silver and the stream on a Spark standalone cluster (master + 2 workers on 127.0.0.1) vs local mode.

One run, one machine, the same inputs: the cluster is started from the pyspark package
(``tests/spark_cluster.py``), then each job runs twice in a fresh process, once with
``NETFLIX_SPARK_MASTER=local[2]`` (the baseline) and once with ``spark://127.0.0.1:P`` (two executors of one
core each), alternating which goes first. Silver is ``bench/silver_timing.py``'s measurement (Spark start,
then all six tables with their checks); the stream drains ``--events`` produced events with
``--available-now`` in batches of ``--batch``. Expect the cluster to be slower on 2 cores: three daemon
JVMs and two executor JVMs share the cores with the driver (measured in
/work/notes/spark-cluster-and-postgres.md). The load average is recorded around every measurement.

    .venv/bin/python bench/bench_cluster.py                 # defaults used for docs/benchmarks.md
    .venv/bin/python bench/bench_cluster.py --scale 0.1 --events 20000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.bucket import Bucket  # noqa: E402
from core.kafka.cluster import KafkaCluster  # noqa: E402
from core.settings import Settings  # noqa: E402
from datagen import generate  # noqa: E402
from embedded_broker.process import EmbeddedBroker  # noqa: E402
from producer.publish import produce  # noqa: E402
from producer.sources import Catalog, synthetic_source  # noqa: E402
from tests.spark_cluster import StandaloneCluster, cluster_settings_env  # noqa: E402

SILVER = (
    "import json, sys; sys.path.insert(0, 'bench'); from silver_timing import time_silver; "
    "from core.settings import get_settings; "
    "print('RESULT ' + json.dumps(time_silver(get_settings()).as_dict()))"
)
STREAM_SUMMARY = re.compile(r"stopped \(.*\) after (\d+) s: (\d+) batch\(es\), ([\d,]+) events")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run(argv: list[str], env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("wb") as out:
        code = subprocess.run(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({code}); see {log}")
    return time.perf_counter() - started


def base_env(data_dir: Path, master_env: dict[str, str]) -> dict[str, str]:
    return {
        **Settings(_env_file=None, data_dir=data_dir).subprocess_env(), "NETFLIX_DATA_DIR": str(data_dir),
        "NETFLIX_SPARK_MASTER": "local[2]", "NETFLIX_SPARK_DRIVER_MEMORY": "2g",
        "NETFLIX_SPARK_SHUFFLE_PARTITIONS": "4", **master_env,
    }  # fmt: skip


def silver(work: Path, raw: Path, name: str, master_env: dict[str, str]) -> dict[str, Any]:
    data_dir = work / f"silver-{name}"
    shutil.copytree(raw, data_dir / "bucket" / "raw")
    before = load()
    wall = run([sys.executable, "-c", SILVER], base_env(data_dir, master_env), data_dir / "silver.log")
    [line] = [x for x in (data_dir / "silver.log").read_text().splitlines() if x.startswith("RESULT ")]
    timing = json.loads(line.removeprefix("RESULT "))
    shutil.rmtree(data_dir)
    return {
        "wall_s": round(wall, 1), "spark_start_s": round(timing["spark_start_seconds"], 1),
        "silver_s": round(timing["silver_seconds"], 1), "load_before": before, "load_after": load(),
    }  # fmt: skip


def stream(
    work: Path, raw: Path, broker: EmbeddedBroker, name: str, master_env: dict[str, str], batch: int
) -> dict:
    data_dir = work / f"stream-{name}"
    shutil.copytree(raw, data_dir / "bucket" / "raw")
    env = {**base_env(data_dir, master_env), "NETFLIX_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
           "NETFLIX_STREAM_MAX_EVENTS_PER_TRIGGER": str(batch)}  # fmt: skip
    before = load()
    log = data_dir / "stream.log"
    argv = [sys.executable, "-m", "cli.main", "stream", "--available-now", "--no-dead-letter-topic"]
    wall = run(argv, env, log)
    match = STREAM_SUMMARY.search(log.read_text())
    if match is None:
        raise SystemExit(f"no stream summary in {log}")
    seconds, batches, events = int(match[1]), int(match[2]), int(match[3].replace(",", ""))
    shutil.rmtree(data_dir)
    return {
        "wall_s": round(wall, 1), "query_s": seconds, "batches": batches, "events": events,
        "events_per_s_wall": round(events / wall), "load_before": before, "load_after": load(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generator scale of the raw CSVs (1 = Kaggle)"
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000, help="events per micro-batch")
    args = parser.parse_args()
    results: dict[str, Any] = {"args": vars(args), "load_start": load()}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        work = Path(tmp)
        bucket = Bucket.from_settings(Settings(_env_file=None, bucket_url=str(work / "inputs")))
        generate(bucket, args.scale, seed=1)
        raw = work / "inputs" / "raw"
        started = time.perf_counter()
        with StandaloneCluster(work / "cluster") as cluster:
            results["cluster_start_s"] = round(time.perf_counter() - started, 1)
            modes = {"local[2]": {}, "cluster": cluster_settings_env(cluster.master_url)}
            results["silver"] = {}
            for name in ("local[2]", "cluster", "cluster", "local[2]"):  # ABBA: load drifts during the run
                results["silver"].setdefault(name, []).append(
                    silver(work, raw, name.strip("[]2"), modes[name])
                )
                print(json.dumps({"silver": name, **results["silver"][name][-1]}), flush=True)
            with EmbeddedBroker(work / "broker", record_state=False) as broker:
                settings = Settings(_env_file=None, data_dir=work / "p", bucket_url=str(work / "inputs"),
                                    kafka_bootstrap_servers=broker.bootstrap_servers)  # fmt: skip
                source = synthetic_source(Catalog.from_bucket(bucket), seed=3)
                produce(KafkaCluster.from_settings(settings), source, rate=0, count=args.events,
                        client_conf=broker.client_config())  # fmt: skip
                results["stream"] = {}
                for name in ("local[2]", "cluster", "cluster", "local[2]"):
                    tag = f"{name.strip('[]2')}-{len(results['stream'].get(name, []))}"
                    results["stream"].setdefault(name, []).append(
                        stream(work, raw, broker, tag, modes[name], args.batch)
                    )
                    print(json.dumps({"stream": name, **results["stream"][name][-1]}), flush=True)
    results["load_end"] = load()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
