"""bqemulator, an offline BigQuery, in its own virtualenv and as its own server on 127.0.0.1.

bqemulator (PyPI, BigQuery's REST API on DuckDB + sqlglot) pins sqlglot and grpcio-tools below this
project's pins, so it never enters ``.venv``: :func:`ensure_emulator_venv` builds ``.venv-bqemulator/`` from
the pinned ``bqemulator-requirements.txt`` (PyPI only, ~30 s the first time, rebuilt when the pins change)
and copies DuckDB's spatial and avro extensions from their PyPI wheels into a private ``HOME`` (the emulator
refuses to start without spatial, and DuckDB would otherwise try to download it).
:class:`BigQueryEmulator` starts one server on free ports of 127.0.0.1 and stops it by PID. The quirks worked
around here and in the tests are measured in ``/work/notes/bigquery-emulator.md`` and listed in
``docs/deployment.md`` ("What the emulator proves").
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from core.processes import LOOPBACK, free_port, pid_alive
from core.settings import PROJECT_ROOT

REQUIREMENTS = Path(__file__).with_name("bqemulator-requirements.txt")
DEFAULT_VENV = PROJECT_ROOT / ".venv-bqemulator"
EXTENSIONS = ("spatial", "avro")
PROJECT = "local-proj"
READY_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 900.0


class EmulatorUnavailable(RuntimeError):
    """The emulator's virtualenv could not be built (e.g. PyPI unreachable); the message says why."""


def _python311() -> str:
    """An interpreter for the emulator's venv: this one when it is 3.11, else ``python3.11`` on PATH."""
    if sys.version_info[:2] == (3, 11):
        return getattr(sys, "_base_executable", sys.executable)
    return "python3.11"


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=INSTALL_TIMEOUT_S
        )
    if result.returncode != 0:
        raise EmulatorUnavailable(f"`{' '.join(command[:4])} …` failed (exit {result.returncode}); see {log}")


def ensure_emulator_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The emulator's venv, built from the pinned requirements if missing or built from other pins.

    A file lock makes concurrent test sessions build it once. Returns the venv folder.
    """
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = venv / ".netflix-requirements"
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == digest:
            return venv
        log = venv.parent / f"{venv.name}-install.log"
        log.write_text("")
        if not (venv / "bin" / "python").exists():
            _run([_python311(), "-m", "venv", str(venv)], log)
        _run(_pip(venv, "install", "--quiet", "-r", str(REQUIREMENTS)), log)
        _run(_pip(venv, "check"), log)
        install_extensions = (
            "import duckdb, duckdb_extensions; c = duckdb.connect()\n"
            f"for name in {EXTENSIONS!r}: duckdb_extensions.import_extension(name, con=c)\n"
        )
        _run([str(venv / "bin" / "python"), "-c", install_extensions], log, env=_emulator_env(venv))
        stamp.write_text(digest)
    return venv


def _pip(venv: Path, command: str, *args: str) -> list[str]:
    """A pip command for ``venv``: uv's from the project's venv (~10 s to install this venv), else the
    venv's own pip (~60 s)."""
    python = str(venv / "bin" / "python")
    if importlib.util.find_spec("uv") is not None:
        compiled = ["--compile-bytecode"] if command == "install" else []  # as pip does
        return [sys.executable, "-m", "uv", "pip", command, "--python", python, *compiled, *args]
    return [python, "-m", "pip", "--disable-pip-version-check", command, *args]


def _emulator_env(venv: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """HOME inside the venv: DuckDB finds the extensions there ($HOME/.duckdb/extensions) and offline."""
    home = venv / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQEMU_", "BIGQUERY_EMULATOR"))}
    env.update(HOME=str(home), PYTHONNOUSERSITE="1", **(extra or {}))
    return env


@dataclass
class BigQueryEmulator:
    """One bqemulator server on 127.0.0.1 (REST and gRPC on free ports), started and stopped by PID.

    ``gcs_root``: a folder whose ``<bucket>/<object>`` files answer ``gs://bucket/object`` URIs in load jobs
    (gcp-storage-emulator's ``-d DIR`` keeps its objects as plain files under ``DIR/.cloudstorage``).
    """

    workdir: Path
    venv: Path = DEFAULT_VENV
    project: str = PROJECT
    gcs_root: Path | None = None
    port: int = 0
    grpc_port: int = 0
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bqemulator.log"

    def start(self) -> BigQueryEmulator:
        ensure_emulator_venv(self.venv)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.grpc_port = free_port(), free_port()
        extra = {"BQEMU_GCS_LOCAL_ROOT": str(self.gcs_root)} if self.gcs_root else {}
        command = [
            str(self.venv / "bin" / "bqemulator"), "start", "--project", self.project,
            "--rest-host", LOOPBACK, "--rest-port", str(self.port),
            "--grpc-host", LOOPBACK, "--grpc-port", str(self.grpc_port),
            "--log-level", "warning",  # at info every 5xx dumps a long traceback
        ]  # fmt: skip
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=_emulator_env(self.venv, extra),
                start_new_session=True, cwd=self.workdir,
            )  # fmt: skip
        self.pid = self._proc.pid
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"bqemulator exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"bqemulator not ready on {self.endpoint} after {READY_TIMEOUT_S:.0f} s")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server (it stops in ~2 s), SIGKILL if it lingers."""
        if self.pid is None or not pid_alive(self.pid):
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            if self._proc is not None:
                self._proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self._proc.wait(15)
        self.pid = None

    def restart(self) -> BigQueryEmulator:
        """A fresh, empty server (the emulator has no reset endpoint)."""
        self.stop()
        return self.start()

    def __enter__(self) -> BigQueryEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
