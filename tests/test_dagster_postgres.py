"""Dagster on PostgreSQL with the production instance file: the sensor-launched stream beside a batch run.

A real PostgreSQL server (Debian's package, ``tests/postgres_server.py``) on 127.0.0.1,
``deploy/dagster.yaml`` as the instance (queued runs, tag limits, run monitoring, Postgres storage), the
project's ``workspace.yaml``, and ``dagster-daemon`` as the only scheduler: the speed sensor launches the
streaming run on its own when the topic has lag, ``dagster job launch`` queues the batch job, and both must
run at the same time and leave their runs and materializations in Postgres (read back with psycopg2, not
through Dagster). The test skips, naming the package, only where the PostgreSQL server is not installed;
CI installs it (``.ci/system-packages.sh``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster
from core.settings import PROJECT_ROOT, Settings
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from netflix_assets.defs.dbt.schedules import BATCH_JOB
from netflix_assets.defs.speed.jobs import JOB_NAME as STREAM_JOB
from producer.publish import produce
from producer.sources import Catalog, synthetic_source
from tests.postgres_server import PostgresServer, server_binaries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]  # two Spark JVMs and dbt on 2 shared cores
DEADLINE_S = 1800.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL server not installed (/usr/lib/postgresql/*/bin/initdb): Dagster-on-Postgres NOT "
            "tested; install Debian's `postgresql` package (.ci/system-packages.sh does in CI)"
        )
    with PostgresServer(binaries) as server:
        yield server


def _ours(home: Path) -> list[psutil.Process]:
    """Processes started for this test's instance (daemon, code servers, run workers, their JVMs)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("DAGSTER_HOME") == str(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _wait(what: str, condition, log: Path, timeout_s: float = DEADLINE_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{log.read_text()[-4000:]}")


def test_sensor_launched_stream_and_a_batch_run_share_a_postgres_instance(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    data_dir = tmp_path / "data"
    with EmbeddedBroker(data_dir / "broker", record_state=False) as broker:
        settings = Settings(
            _env_file=None, data_dir=data_dir, kafka_bootstrap_servers=broker.bootstrap_servers
        )
        bucket = Bucket.from_settings(settings)
        generate(bucket, 0.01, seed=19)
        source = synthetic_source(Catalog.from_bucket(bucket), seed=2)

        def publish(count: int) -> None:
            kafka = KafkaCluster.from_settings(settings)
            produce(kafka, source, rate=0, count=count, client_conf=broker.client_config())

        publish(1_500)

        env = {
            **settings.subprocess_env(), **postgres.env(), "DAGSTER_HOME": str(home),
            "NETFLIX_DATA_DIR": str(data_dir), "NETFLIX_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "NETFLIX_SPARK_MASTER": "local[2]", "NETFLIX_SPARK_DRIVER_MEMORY": "1g",
            "NETFLIX_SPARK_SHUFFLE_PARTITIONS": "2", "NETFLIX_STREAM_TRIGGER_SECONDS": "5",
        }  # fmt: skip
        for name, value in postgres.env().items():
            monkeypatch.setenv(name, value)
        daemon_log = tmp_path / "daemon.log"
        with daemon_log.open("wb") as out:
            daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        instance = DagsterInstance.from_config(str(home))
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            _wait("the sensor to launch the stream", lambda: _runs(instance, STREAM_JOB), daemon_log)
            # The job's own executor runs its steps in one process (netflix_assets/defs/executors.py).
            launch = subprocess.run(
                [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-j", BATCH_JOB,
                 "-w", "workspace.yaml"],
                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
            batch = _wait("the batch run to finish", lambda: _finished(instance, BATCH_JOB), daemon_log)
            assert batch.status == DagsterRunStatus.SUCCESS, instance.all_logs(batch.run_id)[-5:]
            # Both at once: a stream ran while the batch ran, and one still runs after it. (A stream that
            # fails, e.g. a Spark worker timing out on an overloaded machine, is relaunched by the sensor:
            # the newest run is the one that counts.)
            stream = _wait("a running stream", lambda: _relaunched(instance, lost_run_id=""), daemon_log)
            batch_record = instance.get_run_record_by_id(batch.run_id)
            began, ended = batch_record.start_time, batch_record.end_time
            overlapping = [
                r for r in instance.get_run_records(RunsFilter(job_name=STREAM_JOB))
                if r.start_time < ended and (r.end_time or ended) > began
            ]  # fmt: skip
            assert overlapping, "no streaming run was in progress while the batch ran"
            realtime = lambda: _materializations(postgres, "engagement_health_realtime")  # noqa: E731
            _wait("a realtime materialization", realtime, daemon_log)
            rows = _query(postgres, "SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
            assert (STREAM_JOB, "STARTED") in rows and (BATCH_JOB, "SUCCESS") in rows
            assert _materializations(postgres, "monthly_engagement") >= 1
            tags = dict(_query(postgres, f"SELECT key, value FROM run_tags WHERE run_id = '{stream.run_id}'"))
            assert tags["netflix/layer"] == "speed" and tags["dagster/sensor_name"] == "speed_stream_sensor"
            assert not (home / "history").exists()  # nothing went to the default SQLite storage

            # The code server dies with the stream it runs (a restarted code-location container): the run
            # stays "started" in Postgres until the sensor finds it lost, fails it and launches a new one.
            _kill_code_server_with_its_runs(home)
            publish(300)  # new events: lag for the sensor to act on
            relaunch = lambda: _relaunched(instance, stream.run_id)  # noqa: E731
            relaunched = _wait("the sensor to relaunch the stream", relaunch, daemon_log)
            lost = instance.get_run_by_id(stream.run_id)
            assert lost.status == DagsterRunStatus.FAILURE
            assert any("is lost" in (e.message or "") for e in instance.all_logs(stream.run_id))
            assert instance.run_launcher.terminate(relaunched.run_id)
            stop = lambda: _finished(instance, STREAM_JOB, relaunched.run_id)  # noqa: E731
            stopped = _wait("the stream to stop", stop, daemon_log, 300)
            assert stopped.status == DagsterRunStatus.CANCELED
        finally:
            instance.dispose()
            if daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(60)
            for leftover in _ours(home):  # run workers outlive the daemon by design
                leftover.terminate()
            psutil.wait_procs(_ours(home), timeout=30)


def _runs(instance: DagsterInstance, job: str) -> list:
    return instance.get_runs(RunsFilter(job_name=job))


def _finished(instance: DagsterInstance, job: str, run_id: str | None = None):
    runs = [r for r in _runs(instance, job) if r.is_finished and run_id in (None, r.run_id)]
    return runs[0] if runs else None


def _relaunched(instance: DagsterInstance, lost_run_id: str):
    """The newest streaming run if it is running and is not ``lost_run_id``."""
    runs = [r for r in _runs(instance, STREAM_JOB) if r.run_id != lost_run_id]
    return runs[0] if runs and runs[0].status == DagsterRunStatus.STARTED else None


def _kill_code_server_with_its_runs(home: Path) -> None:
    """SIGKILL the gRPC code server(s) of this instance and everything they started (our processes)."""
    servers = [
        p for p in _ours(home) if "grpc" in " ".join(p.cmdline()) and "dagster" in " ".join(p.cmdline())
    ]
    assert servers, [p.cmdline() for p in _ours(home)]
    victims = [d for s in servers for d in s.children(recursive=True)] + servers
    for victim in victims:
        victim.kill()
    psutil.wait_procs(victims, timeout=30)


def _query(server: PostgresServer, sql: str) -> list[tuple]:
    env = server.env()
    con = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USERNAME"],
        password=env["DAGSTER_PG_PASSWORD"], dbname=env["DAGSTER_PG_DB"],
    )  # fmt: skip
    try:
        with con.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        con.close()


def _materializations(server: PostgresServer, asset: str) -> int:
    [(count,)] = _query(
        server,
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        f"AND asset_key LIKE '%\"{asset}\"%'",
    )
    return int(count)
