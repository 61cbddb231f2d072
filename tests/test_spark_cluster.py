"""The Silver job and the stream, unchanged, on a Spark standalone cluster (a master and two workers).

The cluster runs on 127.0.0.1 from the pyspark package (``tests/spark_cluster.py``); the jobs run as
separate processes whose only difference from a local run is ``NETFLIX_SPARK_MASTER=spark://127.0.0.1:P``
(plus executor sizing). Silver on the cluster must equal the independent reference row for row, as Silver
on ``local[*]`` does (``tests/test_marts_correctness.py``); the stream, SIGKILLed mid-batch on the cluster
and restarted, must give the independently computed engagement windows
(``tests/test_streaming_exactly_once.py``'s expectation) and every message exactly once. Every listening
socket of the daemons, executors and drivers must be on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psutil
import pytest

from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.warehouse import WarehouseLayout
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from producer.publish import produce
from producer.sources import Catalog, synthetic_source
from reference.marts import compute_reference
from tests.spark_cluster import StandaloneCluster, cluster_settings_env, listening_addresses
from tests.test_marts_correctness import silver_differences
from tests.test_streaming_exactly_once import (
    KEYS,
    expected_engagement,
    fault_counts,
    kill_mid_batch,
    read_topic,
    stream_env,
    write_silver_watch_history,
)

pytestmark = pytest.mark.slow
SILVER_RUNNER = """
import json
from core.bucket import Bucket
from core.settings import get_settings
from core.spark import start_spark
from silver.job import SilverJob
settings = get_settings()
spark = start_spark(settings, "silver-cluster-test")
job = SilverJob(spark, Bucket.from_settings(settings))
out = {t: (r.silver_rows, r.quarantine_rows) for t, r in job.run()}
print("RESULT " + json.dumps({"master": spark.sparkContext.master, "tables": out}))
spark.stop()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    with StandaloneCluster(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster-raw")
    generate(Bucket.from_settings(Settings(_env_file=None, bucket_url=str(root))), 0.02, seed=13)
    return root / "raw"


class SocketWatch:
    """Samples the listening sockets of the cluster and of a driver process tree while a job runs."""

    def __init__(self, cluster: StandaloneCluster, driver_pid: int) -> None:
        self.cluster, self.driver_pid = cluster, driver_pid
        self.seen: set[tuple[str, str, int]] = set()
        self.executors: set[str] = set()  # executor ids seen (one JVM each)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            processes = self.cluster.processes()
            for process in processes:
                command = _cmd(process)
                if "CoarseGrainedExecutorBackend" in " ".join(command) and "--executor-id" in command:
                    self.executors.add(command[command.index("--executor-id") + 1])
            try:
                driver = psutil.Process(self.driver_pid)
                processes += [driver, *driver.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
            self.seen |= listening_addresses(processes)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _cmd(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def run_silver(
    data_dir: Path, raw: Path, extra_env: dict[str, str], cluster: StandaloneCluster
) -> tuple[dict, SocketWatch]:
    shutil.copytree(raw, data_dir / "bucket" / "raw")
    settings = Settings(_env_file=None, data_dir=data_dir)
    env = {
        **settings.subprocess_env(), "NETFLIX_DATA_DIR": str(data_dir), "NETFLIX_SPARK_MASTER": "local[2]",
        "NETFLIX_SPARK_SHUFFLE_PARTITIONS": "2", "NETFLIX_SPARK_DRIVER_MEMORY": "1g", **extra_env,
    }  # fmt: skip
    log = data_dir / "silver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SILVER_RUNNER], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    watch = SocketWatch(cluster, proc.pid)
    try:
        assert proc.wait(900) == 0, log.read_text()[-4000:]
    finally:
        watch.stop()
    [line] = [x for x in log.read_text().splitlines() if x.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT ")), watch


def _parquet(data_dir: Path, key: str) -> str:
    return f"read_parquet('{data_dir / 'bucket' / key}/**/*.parquet', hive_partitioning = true)"


def test_silver_on_the_cluster_equals_the_reference(
    cluster: StandaloneCluster, raw: Path, tmp_path: Path
) -> None:
    """Spark Silver on ``local[*]`` equals the independent DuckDB reference row for row
    (``tests/test_marts_correctness.py``); on the cluster it must too, so both runs give the same tables."""
    on_cluster, watch = run_silver(
        tmp_path / "cluster", raw, cluster_settings_env(cluster.master_url), cluster
    )
    assert on_cluster["master"] == cluster.master_url
    assert len(watch.executors) == 2  # the work ran in the two workers' executors, not in the driver
    reference = compute_reference(raw)
    try:
        assert silver_differences(reference, Bucket.at(str(tmp_path / "cluster" / "bucket"))) == {}
        for table, (silver, quarantined) in on_cluster["tables"].items():
            counts = [reference.execute(f"SELECT count(*) FROM {kind}_{table}").fetchone()[0]
                      for kind in ("silver", "quarantine")]  # fmt: skip
            assert counts == [silver, quarantined], table
    finally:
        reference.close()
    assert {addr for _, addr, _ in watch.seen} == {"127.0.0.1"}, watch.seen
    assert any(port == cluster.port for _, _, port in watch.seen)


def test_the_stream_on_the_cluster_is_exactly_once_through_a_sigkill(
    cluster: StandaloneCluster, raw: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(raw, data_dir / "bucket" / "raw")
    with EmbeddedBroker(data_dir / "broker", record_state=False) as broker:
        settings = Settings(
            _env_file=None, data_dir=data_dir, kafka_bootstrap_servers=broker.bootstrap_servers,
            spark_master=cluster.master_url, spark_shuffle_partitions=2, spark_driver_memory="1g",
            stream_max_events_per_trigger=1_000,
        )  # fmt: skip
        bucket = Bucket.from_settings(settings)
        write_silver_watch_history(bucket)
        conf = broker.client_config()
        source = synthetic_source(Catalog.from_bucket(bucket), seed=5)
        sent = produce(KafkaCluster.from_settings(settings), source, rate=0, count=2_500, poison_rate=0.04,
                       late_rate=0.04, seed=6, client_conf=conf)  # fmt: skip
        env = {**stream_env(settings), **cluster_settings_env(cluster.master_url)}
        logs = [tmp_path / f"stream-{i}.log" for i in range(2)]

        def start(log: Path, *extra: str) -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-m", "cli.main", "stream", "--trigger-seconds", "1", *extra], env=env,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip

        first = start(logs[0])
        watch = SocketWatch(cluster, first.pid)
        killed = kill_mid_batch(settings, first, after_commits=1, once_written=True)
        watch.stop()
        final = start(logs[1], "--available-now")
        assert final.wait(600) == 0, logs[1].read_text()[-5000:]
        assert f"batch {killed}: " not in logs[0].read_text() and f"batch {killed}: " in logs[1].read_text()

        messages = read_topic(conf, settings.kafka_topic)
        assert len(messages) == sent.acked == 2_500
        poison, late, on_time = fault_counts(messages)
        assert len(on_time) == len(messages) - poison - late and poison > 0
        con = duckdb.connect()
        bronze = con.sql(f'SELECT partition, "offset" FROM {_parquet(data_dir, "speed/bronze")}').fetchall()
        assert len(bronze) == len(messages) and set(bronze) == {
            (m["partition"], m["offset"]) for m in messages
        }
        snapshot = WarehouseLayout.from_settings(settings).realtime_snapshot("engagement_health_realtime")
        metrics = ("total_sessions", "unique_users", "total_watch_minutes", "low_engagement_count",
                   "abandonment_count", "quality_downgrade_count", "revenue_impact")  # fmt: skip
        rounded = ", ".join(f"round({m}, 6) AS {m}" for m in metrics)
        con.register("actual_rows", con.sql(f"SELECT {KEYS}, {rounded} FROM read_parquet('{snapshot}')"))
        con.register("expected_rows", expected_engagement(con, bucket, on_time).select(f"{KEYS}, {rounded}"))
        for left, right in (("actual_rows", "expected_rows"), ("expected_rows", "actual_rows")):
            assert con.sql(f"SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right}").fetchall() == []
    assert len(watch.executors) == 2
    assert {addr for _, addr, _ in watch.seen} == {"127.0.0.1"}, watch.seen
