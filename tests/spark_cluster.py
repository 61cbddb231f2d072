"""A Spark standalone cluster (one master, N workers) on 127.0.0.1, from the pyspark package, by PID.

The pip wheel has no ``sbin/start-master.sh``; ``bin/spark-class`` runs the daemons' main classes and
exec's the JVM, so the PID we start is the daemon's. Everything binds to 127.0.0.1: ``--host`` for the
RPC endpoints, ``SPARK_LOCAL_IP`` for the web UIs (otherwise they listen on every interface), and the
master's REST submission server (a fixed port 6066 by default) is off. Logs, pid files, work and scratch
folders live under the cluster's own folder. Used by ``tests/test_spark_cluster.py`` and
``bench/bench_cluster.py``; measured behaviour in ``/work/notes/spark-cluster-and-postgres.md``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyspark

from core.processes import LOOPBACK, free_port, pid_alive

READY_TIMEOUT_S = 120.0
SPARK_HOME = Path(pyspark.__file__).parent


@dataclass
class StandaloneCluster:
    root: Path
    workers: int = 2
    cores_per_worker: int = 1
    worker_memory: str = "1g"
    port: int = 0
    ui_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(SPARK_HOME),
            SPARK_LOCAL_IP=LOOPBACK,
            SPARK_LOCAL_DIRS=str(self.root / "local"),
            SPARK_LOG_DIR=str(self.root / "logs"),
            SPARK_PID_DIR=str(self.root / "pids"),
            PYSPARK_PYTHON=sys.executable,
        )
        return env

    def _daemon(self, name: str, args: list[str]) -> None:
        for folder in ("logs", "pids", "local"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        with (self.root / "logs" / f"{name}.out").open("ab") as out:
            proc = subprocess.Popen(
                [str(SPARK_HOME / "bin" / "spark-class"), *args], env=self._env(), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
            )  # fmt: skip
        self._procs.append(proc)
        self.pids[name] = proc.pid
        (self.root / "pids" / f"{name}.pid").write_text(str(proc.pid))

    def start(self) -> StandaloneCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        properties = self.root / "spark-daemons.properties"
        properties.write_text("spark.master.rest.enabled false\nspark.ui.reverseProxy false\n")
        self.port, self.ui_port = free_port(), free_port()
        self._daemon("master", ["org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
                                "--port", str(self.port), "--webui-port", str(self.ui_port),
                                "--properties-file", str(properties)])  # fmt: skip
        for n in range(1, self.workers + 1):
            work = self.root / f"work{n}"
            work.mkdir(exist_ok=True)
            self._daemon(f"worker{n}", ["org.apache.spark.deploy.worker.Worker", self.master_url,
                                        "--host", LOOPBACK, "--cores", str(self.cores_per_worker),
                                        "--memory", self.worker_memory, "--work-dir", str(work),
                                        "--webui-port", str(free_port()),
                                        "--properties-file", str(properties)])  # fmt: skip
        self._wait_ready()
        return self

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.ui_port}/json/", timeout=5) as response:
            return json.loads(response.read())

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [name for name, pid in self.pids.items() if not pid_alive(pid)]
            if dead:
                self.stop()
                raise RuntimeError(f"spark {dead} exited at start; logs in {self.root / 'logs'}")
            try:
                status = self.status()
                if status.get("status") == "ALIVE" and status.get("aliveworkers") == self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(
            f"spark master not ALIVE with {self.workers} workers after {READY_TIMEOUT_S:.0f} s"
        )

    def processes(self) -> list[psutil.Process]:
        """The daemons and everything they started (executors and their Python workers)."""
        found = []
        for pid in self.pids.values():
            try:
                daemon = psutil.Process(pid)
                found += [daemon, *daemon.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self) -> None:
        """SIGTERM each daemon (executors go with their worker), SIGKILL what lingers."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def listening_addresses(processes: list[psutil.Process]) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of ``processes``.

    Java listens on IPv6 sockets; an IPv4-mapped address (``::ffff:127.0.0.1``) is reported as the IPv4
    address it stands for, so "only 127.0.0.1" can be asserted as it reads.
    """
    found = set()
    for proc in processes:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    address = ipaddress.ip_address(conn.laddr.ip.split("%")[0])
                    mapped = getattr(address, "ipv4_mapped", None)
                    found.add((proc.name(), str(mapped or address), conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def cluster_settings_env(master_url: str) -> dict[str, str]:
    """The master URL (the one setting that changes) and executor sizing for two 1-core workers."""
    return {
        "NETFLIX_SPARK_MASTER": master_url,
        "NETFLIX_SPARK_EXECUTOR_MEMORY": "640m",
        "NETFLIX_SPARK_CORES_MAX": "2",
        "SPARK_LOCAL_IP": LOOPBACK,
    }
