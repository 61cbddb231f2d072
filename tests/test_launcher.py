"""`netflix-lambda up` serves the UI on 127.0.0.1, fills the realtime KPIs within a minute, and really stops,
children included (the sensor-launched streaming run too), on SIGTERM/SIGINT.

The launcher is started the way a non-interactive shell starts a background job, with SIGINT ignored:
that is the condition under which a bare `dagster dev` ignores both SIGINT and SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow
REALTIME_WITHIN_S = 60.0


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _wait_for_ui(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (
            f"launcher exited early with {proc.returncode}:\n{log.read_text()[-3000:]}"
        )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Dagster UI not up on 127.0.0.1:{port} after {timeout}s")


def _wait_for_realtime_sessions(data_dir: Path, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Sessions in the published ``engagement_health_realtime`` within ``timeout`` s of the UI serving.

    The README promises a newcomer sees the realtime KPIs fill within a minute of start: the sensor
    launches the streaming run, the producer's 5 ev/s reach the warehouse snapshot readers use.
    """
    import duckdb

    from core.settings import Settings
    from core.warehouse import WarehouseLayout

    snapshot = WarehouseLayout.from_settings(Settings(_env_file=None, data_dir=data_dir)).realtime_snapshot(
        "engagement_health_realtime"
    )
    started = time.monotonic()
    sessions = 0
    while time.monotonic() - started < timeout:
        assert proc.poll() is None, f"launcher exited early:\n{log.read_text()[-3000:]}"
        if snapshot.exists():
            query = f"SELECT coalesce(sum(total_sessions), 0) FROM read_parquet('{snapshot}')"
            sessions = duckdb.sql(query).fetchall()[0][0]
            if sessions > 0:
                return
        time.sleep(2)
    raise AssertionError(
        f"engagement_health_realtime had {sessions} sessions {timeout:.0f} s after the UI came up "
        f"({snapshot}):\n{log.read_text()[-3000:]}"
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_launcher_serves_ui_and_stops_all_children(tmp_path: Path, stop_signal: signal.Signals) -> None:
    port, dashboards = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETFLIX_")}
    env.update(NETFLIX_DATA_DIR=str(tmp_path / "data"), NETFLIX_DAGSTER_PORT=str(port))
    env.update(NETFLIX_DASHBOARD_PORT=str(dashboards))  # the dashboards server (issue 13)
    exe = str(Path(sys.executable).parent / "netflix-lambda")
    log_path = tmp_path / "launcher.log"
    log = log_path.open("wb")
    descendants: list[psutil.Process] = []
    proc = subprocess.Popen(
        [exe, "up", "--scale", "0.01", "--skip-batch"],
        env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigint, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_ui(port, proc, log_path)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in descendants]
        for expected in ("dagster", "tansu", "produce", "streamlit"):
            assert any(expected in command for command in commands), f"no {expected} process in {commands}"
        assert f"http://127.0.0.1:{dashboards}/realtime" in log_path.read_text()  # printed for the user
        assert (tmp_path / "data" / "bucket" / "raw" / "users.csv").exists()
        if stop_signal == signal.SIGTERM:  # once is enough: the stream's start-up costs ~a minute of CPU
            _wait_for_realtime_sessions(tmp_path / "data", proc, log_path, timeout=REALTIME_WITHIN_S)
            descendants = psutil.Process(proc.pid).children(recursive=True)  # now with the streaming run
        proc.send_signal(stop_signal)
        proc.wait(timeout=120)
        _gone, alive = psutil.wait_procs(descendants, timeout=30)
        assert alive == [], f"still running after stop: {[p.cmdline() for p in alive]}"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{dashboards}/_stcore/health", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for child in descendants:
            if child.is_running():
                child.kill()
        log.close()
