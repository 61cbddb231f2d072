"""`netflix-lambda up` end to end: the UI serves on 127.0.0.1, the stream and the batch layer run as Dagster
runs, realtime fills, nothing of ours listens beyond loopback, the terminal speaks in sentences, and
SIGTERM/SIGINT stop everything it started (the runs' Spark JVMs included); a start after a crash cleans
up the runs the crash left "in progress".

Bounds are generous on purpose: they catch a hang, not a slow machine. How fast each milestone comes is
measured by bench/bench_up.py (docs/benchmarks.md), never asserted here.
"""

from __future__ import annotations

import contextlib
import re
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from core.settings import Settings
from netflix_assets.defs.speed.stream_run import STREAM_ERROR_TAG
from tests.conftest import free_port
from tests.launcher_stack import LauncherStack

# On an idle 2-core machine the first test takes a few minutes; with other jobs on the cores, much longer.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
UI_WITHIN_S = 300.0
REALTIME_WITHIN_S = 900.0  # of the start, with the batch run's Spark beside the stream's
MARTS_WITHIN_S = 1500.0
STOP_WITHIN_S = 300.0
NOISE = re.compile(r"\bDEBUG\b|\w+Warning:|STEP_WORKER|RESOURCE_INIT|LOGS_CAPTURED|Traceback")


def _runs(data_dir: Path) -> dict[str, list[DagsterRunStatus]]:
    """Run statuses per job, read from the instance's storage after everything stopped; runs the hourly
    schedule launched are under ``"<job> (schedule)"`` (a test that crosses the hour gets one)."""
    with DagsterInstance.from_config(str(data_dir / "dagster_home")) as instance:
        runs = instance.get_runs(RunsFilter())
        found: dict[str, list[DagsterRunStatus]] = {}
        for run in runs:
            by_schedule = " (schedule)" if "dagster/schedule_name" in run.tags else ""
            found.setdefault(run.job_name + by_schedule, []).append(run.status)
        return found


def test_up_runs_everything_on_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, dashboards = free_port(), free_port()
    stack = LauncherStack(tmp_path / "data", port, ["--scale", "0.01"], tmp_path / "terminal.txt",
                          extra_env={"NETFLIX_DASHBOARD_PORT": str(dashboards)})  # fmt: skip
    stack.start()
    try:
        stack.wait("UI with the code location loaded", stack.location, UI_WITHIN_S)
        stack.wait("sessions in engagement_health_realtime", lambda: stack.realtime_sessions() > 0,
                   REALTIME_WITHIN_S, every_s=2)  # fmt: skip
        commands = stack.commands()
        for expected in (
            "code-server",
            "dagster-webserver",
            "dagster-daemon",
            "tansu",
            "produce",
            "monitor",
            "java",
            "streamlit",  # the dashboards (issue 13)
        ):
            assert any(expected in c for c in commands), f"no {expected} process in {commands}"
        assert not any(" dev " in c for c in commands), "the superseded `dagster dev` must not be used"
        # The stream's Spark JVM is up (and the batch run's, unless it already finished).
        assert stack.listening_elsewhere() == []
        jvm_niceness: set[int] = set()

        def marts_published() -> bool:  # noting the priority of each Spark JVM meanwhile
            for process in stack.descendants():
                with contextlib.suppress(psutil.Error):
                    if process.name() == "java":
                        jvm_niceness.add(process.nice())
            return stack.marts_published()

        # The run ends a little after it publishes (under load, minutes): stopping before would cancel it.
        batch_done = lambda: marts_published() and "marts published in" in stack.text()  # noqa: E731
        stack.wait("marts published and the batch run finished", batch_done, MARTS_WITHIN_S, every_s=2)
        assert stack.listening_elsewhere() == []
        # The stream's JVM at normal priority, the batch run's yielding the CPU (NETFLIX_BATCH_NICENESS).
        assert jvm_niceness == {0, Settings(_env_file=None).batch_niceness}, jvm_niceness
        stack.stop(signal.SIGTERM, STOP_WITHIN_S)
        assert not stack.api.serving()
        with pytest.raises(OSError):  # Ctrl-C / SIGTERM stops the dashboards too
            urllib.request.urlopen(f"http://127.0.0.1:{dashboards}/_stcore/health", timeout=2)
    finally:
        stack.kill()

    text = stack.text()
    first = text.splitlines()[0]
    logs = ("up.log", "dagster-code-server.log", "dagster-webserver.log", "broker.log", "producer.log",
            "slo-monitor.log", "dashboards.log")  # fmt: skip
    for name in logs:
        assert name in first and (tmp_path / "data" / "logs" / name).exists(), first
    for sentence in (
        "raw data generated",
        "Kafka broker (embedded Tansu) up at 127.0.0.1:",
        "SLO monitor started: alerts go to log",
        f"Dagster UI at http://127.0.0.1:{port}",
        f"Real-time engagement at http://127.0.0.1:{dashboards}/realtime",
        "stream run",
        "first realtime batch committed",
        "Silver built: 6 tables",
        "batch run",
        "marts published in",
        "stopped everything",
    ):
        assert sentence in text, f"{sentence!r} not on the terminal:\n{text}"
    assert NOISE.search(text) is None, f"log noise on the terminal: {NOISE.search(text)}\n{text}"
    # Each run the launcher launched is announced once, as its own, and the sensor launched no second
    # stream beside the first (the hourly schedule may have queued a batch run: it says so).
    assert len(re.findall(r"stream run \w+ launched", text)) == 1, text
    assert len(re.findall(r"batch run \w+ started:", text)) == 1, text
    assert "(by the stream sensor" not in text, text
    statuses = _runs(tmp_path / "data")
    assert statuses["batch_layer"] == [DagsterRunStatus.SUCCESS], statuses
    # A scheduled batch run, if the hour turned meanwhile, ran or was canceled by the stop; it never failed.
    scheduled = set(statuses.get("batch_layer (schedule)", []))
    assert scheduled <= {DagsterRunStatus.SUCCESS, DagsterRunStatus.CANCELED}, statuses
    # Stopping `up` terminates the stream through Dagster: canceled, not failed (the sensor's crash-loop
    # guard counts failures).
    assert statuses["speed_stream_job"][0] == DagsterRunStatus.CANCELED, statuses


def test_a_start_after_a_crash_ends_the_leftover_runs_and_sigint_stops_it(tmp_path: Path) -> None:
    """SIGKILL leaves the stream's run "started" in Dagster's storage with no process behind it; the next
    start ends it (or the run queue would keep the new stream waiting behind it forever). Whoever gets there
    first does it: the launcher marks it canceled once the UI serves, or the stream sensor, which checks
    the code server that launched it, marks it failed as lost; neither counts as the stream failing."""
    port = free_port()
    args = ["--scale", "0.01", "--skip-batch", "--rate", "0"]
    crashed = LauncherStack(tmp_path / "data", port, args, tmp_path / "first.txt")
    crashed.start()
    try:
        crashed.wait("UI", crashed.location, UI_WITHIN_S)
        started = lambda: crashed.api.runs("speed_stream_job", ("STARTED",))  # noqa: E731
        crashed.wait("the stream run started", started, UI_WITHIN_S)
        leftover = started()[0].run_id
    finally:
        crashed.kill()

    again = LauncherStack(tmp_path / "data", port, args, tmp_path / "second.txt")
    again.start()
    try:
        again.wait("UI", again.location, UI_WITHIN_S)
        ended = lambda: not again.api.run(leftover).in_progress  # type: ignore[union-attr]  # noqa: E731
        again.wait("the leftover run ended", ended, UI_WITHIN_S)
        launched = lambda: re.search(r"stream run \w+ launched", again.text()) is not None  # noqa: E731
        again.wait("a new stream run", launched, UI_WITHIN_S)
        assert "raw files already in" in again.text()
        again.stop(signal.SIGINT, STOP_WITHIN_S)
    finally:
        again.kill()
    with DagsterInstance.from_config(str(tmp_path / "data" / "dagster_home")) as instance:
        runs = instance.get_runs(RunsFilter(job_name="speed_stream_job"))
    assert len(runs) == 2, runs
    old, new = (next(r for r in runs if (r.run_id == leftover) == is_old) for is_old in (True, False))
    canceled_here = "left in progress by an earlier start" in again.text()
    expected = DagsterRunStatus.CANCELED if canceled_here else DagsterRunStatus.FAILURE  # the sensor's
    assert old.status == expected, old.status
    assert STREAM_ERROR_TAG not in old.tags, "a lost run is not the stream failing (crash-loop guard)"
    # Stopped right after its launch, the new run may still be starting: canceled, or left "started" when
    # its code server had to be killed (the next start ends it, as above); never failed.
    assert new.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.STARTED), new.status
