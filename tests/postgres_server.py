"""A throw-away PostgreSQL server on 127.0.0.1 from Debian's ``postgresql`` package, stopped by PID.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` OS user (the package
creates it) from a folder that user owns; as any other user it runs as that user. The superuser connects
through the Unix socket in the server's folder (trust); clients connect over TCP with a password
(scram-sha-256). CI installs the package from ``.ci/system-packages.sh``; without it the tests that need a
server skip and say so. Measured behaviour: ``/work/notes/spark-cluster-and-postgres.md``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.processes import LOOPBACK, free_port, pid_alive


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, or None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    bin_dir: Path
    database: str = "dagster"
    username: str = "dagster"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    port: int = 0
    root: Path | None = None
    pid: int | None = None

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_root:  # the server and its tools must not run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        # Not under pytest's tmp folder: that one is private to root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="netflix-pg-"))
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.port = free_port()
        data, log = self.root / "data", self.root / "server.log"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
        self._run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
                  "-o", f"-h {LOOPBACK} -p {self.port} -k {self.root}")  # fmt: skip
        self.pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        self._run("psql", "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                  "-v", "ON_ERROR_STOP=1",
                  "-c", f"CREATE ROLE {self.username} LOGIN PASSWORD '{self.password}'",
                  "-c", f"CREATE DATABASE {self.database} OWNER {self.username}")  # fmt: skip
        return self

    def env(self) -> dict[str, str]:
        """What deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": LOOPBACK,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.username,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), then the folder goes."""
        if self.pid is not None and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
