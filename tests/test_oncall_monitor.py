"""The monitor without a broker (it must say so, not crash), what Dagster shows of it, and how
``netflix-lambda up`` supervises it: real processes, real DuckDB/SQLite, a real Dagster materialization."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    materialize,
)

from cli.monitor import CONFIG_ERROR_EXIT_CODE, SupervisedMonitor
from cli.services import Supervisor
from core.settings import Settings
from core.warehouse import WarehouseLayout, connect_serving
from netflix_assets.defs.oncall.assets import build_slo_status
from netflix_assets.defs.oncall.context import Oncall
from netflix_assets.defs.oncall.sensors import evaluate_failure_sensor, evaluate_status_sensor
from netflix_assets.defs.oncall.status import EVENTS_CHECK, MONITOR_CHECK
from netflix_assets.defs.speed.jobs import JOB_NAME as STREAM_JOB
from netflix_assets.defs.speed.sensors import CRASH_LOOP_RUNS
from netflix_assets.defs.speed.stream_run import STREAM_ERROR_TAG
from oncall.monitor import BROKER_FAILURES_TO_PAGE, Monitor
from oncall.notifiers.alert_log import AlertLogFollower

EXE = str(Path(sys.executable).parent / "netflix-lambda")


def test_an_unreachable_broker_is_recorded_paged_and_shown_in_dagster(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # embedded, and no broker running
    monitor = Monitor(settings)
    try:
        for _ in range(BROKER_FAILURES_TO_PAGE):
            statuses = monitor.tick()
        monitor.dispatcher.drain()
    finally:
        monitor.close()
    freshness = next(s for s in statuses if s.slo.name == "speed_freshness")
    assert (
        freshness.sample.good is None and "embedded broker not running" in freshness.sample.details["error"]
    )
    entries = AlertLogFollower(settings.resolved_alert_log_file, from_start=True).new_entries()
    assert [(e["key"], e["action"]) for e in entries] == [("broker_unreachable", "trigger")]
    assert entries[0]["runbook"].endswith("/docs/runbooks/broker-down.md")
    history = connect_serving(WarehouseLayout.from_settings(settings))
    rows = history.execute("SELECT slo, count(*), count(good) FROM oncall.slo_samples GROUP BY 1 ORDER BY 1")
    assert rows.fetchall() == [
        ("batch_freshness", 3, 0), ("input_traffic", 3, 0), ("speed_freshness", 3, 0),
        ("speed_latency", 3, 0), ("validation_rate", 3, 0),
    ]  # fmt: skip

    oncall = Oncall.from_settings(settings)
    result = materialize([build_slo_status(oncall)], instance=DagsterInstance.ephemeral())
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {*oncall.slos.slos, MONITOR_CHECK, EVENTS_CHECK}
    assert not checks[EVENTS_CHECK].passed and checks[EVENTS_CHECK].severity is AssetCheckSeverity.ERROR
    assert "unreadable for" in (checks[EVENTS_CHECK].description or "")
    assert checks["speed_freshness"].passed, "no data is not a breach"
    assert not checks[MONITOR_CHECK].passed  # ticks by hand write no heartbeat: nobody is sampling
    metadata = result.asset_materializations_for_node("slo_status")[0].metadata
    assert "speed_freshness" in metadata["slos"].value

    with build_sensor_context(instance=DagsterInstance.ephemeral()) as context:
        report = evaluate_status_sensor(context, oncall)
    assert report.asset_events and report.cursor
    with build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=report.cursor) as context:
        quiet = evaluate_status_sensor(context, oncall)
    assert not quiet.asset_events, "nothing changed: no new materialization within the minute"


def test_the_run_command_restarts_a_dead_monitor_says_so_and_echoes_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETFLIX_")}
    env["NETFLIX_DATA_DIR"] = str(settings.data_dir)
    started: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(argv, env=env, start_new_session=True))
        return started[-1]

    service = SupervisedMonitor(settings, EXE, traffic_expected=True, spawn=spawn)
    try:
        with caplog.at_level(logging.INFO):
            service.start()
            time.sleep(3)
            started[0].send_signal(signal.SIGKILL)
            code = started[0].wait(timeout=30)
            assert service.exited(code) is True
            deadline = time.monotonic() + 60
            while len(started) < 2 and time.monotonic() < deadline:
                service.poll()
                time.sleep(0.2)
        assert len(started) == 2 and started[1].poll() is None, "restarted"
        said = [r.message for r in caplog.records if r.levelno == logging.ERROR]
        assert any("the SLO monitor exited with code -9" in m and "restarting it" in m for m in said), said

        deadline = time.monotonic() + 60
        while not settings.resolved_alert_log_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)  # the restarted monitor pages the missing broker after 3 samples (15 s)
        with caplog.at_level(logging.ERROR):
            while time.monotonic() < deadline:
                service.poll()
                if any("ALERT PAGE [broker_unreachable]" in r.message for r in caplog.records):
                    break
                time.sleep(0.5)
        assert any("ALERT PAGE [broker_unreachable]" in r.message for r in caplog.records)
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    assert service.exited(CONFIG_ERROR_EXIT_CODE) is False, "a wrong configuration is not restarted"


def test_netflix_lambda_up_supervises_the_monitor_as_a_service_with_its_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The launcher's own supervisor (cli/services.py) runs the monitor's Service: started, restarted after
    a SIGKILL with the monitor's error line, stopped by PID with the rest."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETFLIX_")}
    env["NETFLIX_DATA_DIR"] = str(settings.data_dir)
    monitor = SupervisedMonitor(settings, EXE, traffic_expected=False)
    supervisor = Supervisor([monitor.service()], env=env, cwd=tmp_path, log_dir=tmp_path / "logs")
    (tmp_path / "logs").mkdir()

    def step_until(done: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            supervisor.step()
            time.sleep(0.1)

    try:
        with caplog.at_level(logging.INFO):
            step_until(lambda: SupervisedMonitor.NAME in supervisor.ready)
            first = supervisor.pids()[0]
            time.sleep(2)
            os.kill(first, signal.SIGKILL)
            step_until(lambda: supervisor.pids()[:1] not in ([], [first]))
        second = supervisor.pids()[0]
        assert second != first and "monitor" in psutil.Process(second).cmdline()
        said = [r.getMessage() for r in caplog.records]
        assert monitor.started_sentence() in said
        assert any("the SLO monitor exited with code -9" in m and "restarting it" in m for m in said), said
        assert "--no-traffic-expected" in psutil.Process(second).cmdline()
        assert supervisor.failed is None
    finally:
        supervisor.stop_all()
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE


def test_the_crash_loop_guard_giving_up_pages_and_a_clean_run_resolves_it(tmp_path: Path) -> None:
    """The speed sensor's guard (3 runs in a row whose stream failed) pages, through the same store."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    oncall = Oncall.from_settings(settings)
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster_home"))  # run-sharded, as dagster dev's
    for i in range(CRASH_LOOP_RUNS):
        instance.add_run(DagsterRun(job_name=STREAM_JOB, run_id=f"{i}" * 36, status=DagsterRunStatus.FAILURE,
                                    tags={STREAM_ERROR_TAG: "StreamFailedError"}))  # fmt: skip
    with build_sensor_context(instance=instance) as context:
        said = evaluate_failure_sensor(context, oncall)
    assert "stopped relaunching" in said.skip_reason.skip_message
    book = oncall.book()
    oncall.dispatcher(book).drain()
    instance.add_run(DagsterRun(job_name=STREAM_JOB, run_id="c" * 36, status=DagsterRunStatus.CANCELED))
    with build_sensor_context(instance=instance, cursor=said.cursor) as context:
        evaluate_failure_sensor(context, oncall)
    oncall.dispatcher(book).drain()
    entries = AlertLogFollower(settings.resolved_alert_log_file, from_start=True).new_entries()
    assert [(e["key"], e["action"]) for e in entries] == [
        ("stream_crash_loop", "trigger"),
        ("stream_crash_loop", "resolve"),
    ]
    assert entries[0]["runbook"].endswith("/docs/runbooks/stream-crash-loop.md")
    assert entries[0]["details"]["runs"][0] == f"{CRASH_LOOP_RUNS - 1}" * 36  # newest first
