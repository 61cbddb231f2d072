"""Fixtures shared across layers: free ports, a GCS emulator, settings rooted in a temp folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.bucket import Bucket
from core.settings import Settings
from tests.emulators.bigquery import BigQueryEmulator, EmulatorUnavailable, ensure_emulator_venv

BIN = Path(sys.executable).parent

# Every JVM the tests start (in-process Spark, `netflix-lambda stream` and Silver subprocesses, the test
# cluster's daemons) compiles with C1 only: they live minutes on inputs of a few thousand rows, where C2's
# compilations are never repaid (the reasoning of silver.job.driver_jvm_options, which makes the same
# choice for small Silver runs in production). Measured on three Spark-heavy files run alone, alternating:
# 578 and 602 CPU-s with both tiers, 438 and 419 with C1 only (docs/benchmarks.md, "Where the suite's
# CPU goes").
# JDK_JAVA_OPTIONS reaches every `java` launch, also through environments that drop NETFLIX_* variables;
# set it yourself (even empty) to test with the JVM's default tiers.
os.environ.setdefault("JDK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process group we started: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gcp-storage-emulator on 127.0.0.1 with bucket `netflix-test`; yields its endpoint URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gcp-storage-emulator"), "start", "-H", "127.0.0.1", "--port", str(port),
             "--default-bucket", "netflix-test", "--in-memory", "-q"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings rooted in a fresh temp folder, sized for a 2-core test machine."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        spark_master="local[2]",
        spark_shuffle_partitions=4,
        spark_driver_memory="2g",
    )


@pytest.fixture(params=["local", "gcs"])
def any_bucket(request: pytest.FixtureRequest, tmp_path: Path) -> Bucket:
    """The same tests on a local folder and on the GCS emulator (the production bucket's protocol)."""
    if request.param == "local":
        return Bucket.from_settings(Settings(_env_file=None, bucket_url=str(tmp_path / "bucket")))
    endpoint = request.getfixturevalue("gcs_emulator")
    return Bucket.from_settings(
        Settings(_env_file=None, bucket_url=f"gs://netflix-test/{tmp_path.name}", gcs_endpoint=endpoint)
    )


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """bqemulator on 127.0.0.1 (its own venv, built from pinned requirements on first use; see
    tests/emulators/bigquery.py). Skips, saying why, only if the venv cannot be built (PyPI unreachable)."""
    try:
        ensure_emulator_venv()
    except EmulatorUnavailable as exc:
        warnings.warn(f"BigQuery emulator tests SKIPPED: {exc}", stacklevel=1)
        pytest.skip(f"BigQuery emulator unavailable, BigQuery paths NOT tested: {exc}")
    with BigQueryEmulator(tmp_path_factory.mktemp("bqemulator")) as emulator:
        yield emulator


def bigquery_settings(emulator: BigQueryEmulator, data_dir: Path, **overrides: object) -> Settings:
    """Settings of a deployment whose warehouse is the emulator (the rest embedded, sized for 2 cores)."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "warehouse": "bigquery",
        "bigquery_project": emulator.project,
        "bigquery_api_endpoint": emulator.endpoint,
        "spark_master": "local[2]",
        "spark_shuffle_partitions": 2,
        "spark_driver_memory": "1g",
        **overrides,
    }
    return Settings(_env_file=None, **values)
