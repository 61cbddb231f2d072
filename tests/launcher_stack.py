"""`netflix-lambda up` observed from outside, the way a user sees it: for tests/test_launcher.py and
bench/bench_up.py.

The launcher is started the way a non-interactive shell starts a background job, with SIGINT ignored
(the condition under which Dagster commands ignore SIGINT and SIGTERM unless the launcher resets them).
Milestones are read from what a user can see: the UI answering with the code location loaded, rows in
the published realtime snapshot, a published ``batch.duckdb`` holding the marts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psutil

from cli.dagster_api import DagsterApi, Location
from core.settings import Settings
from core.warehouse import WarehouseLayout

LOOPBACK_ADDRESSES = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
MART = "monthly_active_users"  # one of the marts: published means the whole dbt build succeeded


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class LauncherStack:
    """One ``netflix-lambda up`` in its own data folder and UI port."""

    data_dir: Path
    port: int
    args: list[str]
    output: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # another checkout of the project (bench/bench_up.py's baseline)
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # time.time() just before the launcher started
    seen: list[psutil.Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.api = DagsterApi(f"http://127.0.0.1:{self.port}")
        settings = Settings(_env_file=None, data_dir=self.data_dir)
        self.layout = WarehouseLayout.from_settings(settings)

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETFLIX_")}
        env.update(NETFLIX_DATA_DIR=str(self.data_dir), NETFLIX_DAGSTER_PORT=str(self.port), **self.extra_env)
        exe = str(Path(sys.executable).parent / "netflix-lambda")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with self.output.open("wb") as out:
            self.started = time.time()
            self.proc = subprocess.Popen(
                [exe, "up", *self.args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd,
                preexec_fn=_ignore_sigint, start_new_session=True,
            )  # fmt: skip

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def since_start(self) -> float:
        return time.time() - self.started

    def alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"launcher exited with {self.proc and self.proc.returncode}:\n{self.text()[-4000:]}"
        )

    def descendants(self) -> list[psutil.Process]:
        """Everything below the launcher now; remembered, so a stop can be checked against all of them."""
        assert self.proc is not None
        try:
            now = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        known = {p.pid for p in self.seen}
        self.seen += [p for p in now if p.pid not in known]
        return now

    def commands(self) -> list[str]:
        """Command lines of the processes below the launcher (gone and zombie ones left out)."""
        found = []
        for process in self.descendants():
            with contextlib.suppress(psutil.Error):
                found.append(" ".join(process.cmdline()))
        return found

    def stop(self, sig: signal.Signals, timeout_s: float) -> float:
        """Send ``sig`` to the launcher; seconds until it and every process seen below it are gone."""
        assert self.proc is not None
        self.descendants()
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"launcher still running {timeout_s:.0f} s after {sig.name}:\n{self.text()[-4000:]}"
            ) from None
        alive = [p for p in self.seen if _alive(p)]
        while alive and time.monotonic() - sent < timeout_s:
            time.sleep(0.5)
            alive = [p for p in alive if _alive(p)]
        assert alive == [], f"still running after the stop: {[p.pid for p in alive]}\n{self.text()[-4000:]}"
        return time.monotonic() - sent

    def kill(self) -> None:
        """Clean-up after a failed test: everything we started, by PID."""
        if self.proc is not None and self.proc.poll() is None:
            self.descendants()
            os.killpg(self.proc.pid, signal.SIGKILL)
        for process in self.seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    # -- what a user sees ---------------------------------------------------------------------------
    def location(self) -> Location | None:
        if not self.api.serving():
            return None
        try:
            return next((loc for loc in self.api.locations() if loc.loaded), None)
        except OSError:
            return None

    def realtime_sessions(self) -> int:
        """Sessions in the ``engagement_health_realtime`` snapshot published since the start (a second start
        finds the previous start's snapshot in place until its stream commits)."""
        snapshot = self.layout.realtime_snapshot("engagement_health_realtime")
        if not snapshot.exists() or snapshot.stat().st_mtime < self.started:
            return 0
        query = f"SELECT coalesce(sum(total_sessions), 0) FROM read_parquet('{snapshot}')"
        return int(duckdb.sql(query).fetchall()[0][0])

    def marts_published(self) -> bool:
        """A ``batch.duckdb`` published since the start, with the marts in it."""
        path = self.layout.batch_published
        if not path.exists() or path.stat().st_mtime < self.started:
            return False
        with duckdb.connect(str(path), read_only=True) as con:
            return bool(con.sql(f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{MART}'")
                        .fetchall()[0][0])  # fmt: skip

    def wait(self, what: str, check: Any, timeout_s: float, every_s: float = 1.0) -> float:
        """Poll ``check`` until it is truthy; seconds since the launcher started. Fails on a hang only."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.alive()
            if check():
                return self.since_start()
            self.descendants()
            time.sleep(every_s)
        raise AssertionError(f"{what}: not after {timeout_s:.0f} s\n{self.text()[-4000:]}")

    def listening_elsewhere(self) -> list[str]:
        """Listening TCP sockets (and bound, unconnected UDP ones) of the launcher's process tree that are
        not on a loopback address."""
        assert self.proc is not None
        wrong = []
        for process in [psutil.Process(self.proc.pid), *self.descendants()]:
            try:
                connections = process.net_connections(kind="inet")
                name = " ".join(process.cmdline()[:3])[:80]
            except psutil.Error:
                continue
            for conn in connections:
                listening = conn.status == psutil.CONN_LISTEN or (
                    conn.status == psutil.CONN_NONE and not conn.raddr
                )
                if listening and conn.laddr and conn.laddr.ip not in LOOPBACK_ADDRESSES:
                    wrong.append(f"pid {process.pid} ({name}) on {conn.laddr.ip}:{conn.laddr.port}")
        return wrong
