"""The launcher's supervisor (cli/services.py) with small real processes: dependency order, readiness
sentences, a failed task or a dying service stopping the launch, and stops newest first, by PID.

This is the mechanism another service joins `netflix-lambda up` through (one `Service` entry in
`cli.launcher.stack`), so it is tested on its own, in seconds, without Dagster or Spark.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import psutil
import pytest

from cli.services import Action, Service, Supervisor, Unit

PY = sys.executable


def _sleeper(tag: str) -> list[str]:
    """A service that records its start and its SIGTERM in its log, then exits cleanly on SIGTERM."""
    code = (
        "import signal, sys, time\n"
        f"print('start {tag}', time.monotonic(), flush=True)\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (print('stop {tag}', time.monotonic(), flush=True), "
        "sys.exit(0)))\n"
        "time.sleep(600)\n"
    )
    return [PY, "-c", code]


def _run(supervisor: Supervisor, until: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:  # type: ignore[operator]
        supervisor.step()
        time.sleep(0.05)


def _stamp(log: Path, word: str) -> float:
    line = next(line for line in log.read_text().splitlines() if line.startswith(word))
    return float(line.split()[-1])


def test_units_start_in_dependency_order_say_when_ready_and_stop_newest_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flag = tmp_path / "ready.flag"
    units: list[Unit] = [
        Service("late", _sleeper("late"), says="late up", after=("task", "first")),
        Service("first", _sleeper("first"), says="first up at {detail}",
                ready=lambda: "the flag" if flag.exists() else None),
        Service("task", [PY, "-c", "print('generated')"], says="task done", oneshot=True),
        Action("action", lambda: "action ran after late", after=("late",)),
    ]  # fmt: skip
    supervisor = Supervisor(units, env={}, cwd=tmp_path, log_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="cli.launcher"):
        _run(supervisor, lambda: "task" in supervisor.ready and len(supervisor.running) == 1)
        assert "late" not in supervisor.done, "started before its prerequisite `first` was ready"
        flag.touch()
        _run(supervisor, lambda: "action" in supervisor.ready)
    assert [r.getMessage() for r in caplog.records if r.name == "cli.launcher"] == [
        "task done", "first up at the flag", "late up", "action ran after late",
    ]  # fmt: skip
    pids = supervisor.pids()
    assert len(pids) == 2
    supervisor.stop_all()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert _stamp(tmp_path / "late.log", "stop") < _stamp(tmp_path / "first.log", "stop")
    assert (tmp_path / "task.log").read_text() == "generated\n"


def test_a_failing_task_or_a_dying_service_stops_the_launch(tmp_path: Path) -> None:
    failing = Supervisor(
        [Service("generate", [PY, "-c", "raise SystemExit(3)"], says="", oneshot=True)],
        env={}, cwd=tmp_path, log_dir=tmp_path,
    )  # fmt: skip
    _run(failing, lambda: failing.failed)
    assert failing.failed == f"generate failed (exit 3); see {tmp_path / 'generate.log'}"

    dying = Supervisor(
        [Service("ui", [PY, "-c", "import time; time.sleep(0.5)"], says="", ready=lambda: None)],
        env={}, cwd=tmp_path, log_dir=tmp_path,
    )  # fmt: skip
    _run(dying, lambda: dying.failed)
    assert dying.failed is not None and "ui exited unexpectedly (code 0)" in dying.failed


def test_a_restartable_service_is_started_again_until_it_crash_loops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = tmp_path / "starts"
    code = f"open({str(counter)!r}, 'a').write('x'); raise SystemExit(2)"
    supervisor = Supervisor([Service("monitor", [PY, "-c", code], says="", restart=True)],
                            env={}, cwd=tmp_path, log_dir=tmp_path)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="cli.launcher"):
        _run(supervisor, lambda: supervisor.failed)
    assert counter.read_text() == "xxx"  # the first start and two restarts
    assert [r.getMessage() for r in caplog.records].count(
        f"monitor exited (code 2); starting it again (see {tmp_path / 'monitor.log'})"
    ) == 2
    assert supervisor.failed is not None and "monitor exited unexpectedly (code 2)" in supervisor.failed


def test_a_service_with_its_own_restart_policy_waits_as_told_and_stops_the_launch_when_told(
    tmp_path: Path,
) -> None:
    """The policy gets each exit code: 1 -> start again after 0.5 s, anything else -> give up."""
    counter = tmp_path / "starts"
    code = (
        "import pathlib, time\n"
        "print('start', time.monotonic(), flush=True)\n"
        f"p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1)); raise SystemExit(1 if n < 2 else 4)"
    )
    exits: list[tuple[int, float]] = []

    def policy(exit_code: int) -> float | None:
        exits.append((exit_code, time.monotonic()))
        return 0.5 if exit_code == 1 else None

    supervisor = Supervisor([Service("monitor", [PY, "-c", code], says="", restart_after=policy)],
                            env={}, cwd=tmp_path, log_dir=tmp_path)  # fmt: skip
    _run(supervisor, lambda: supervisor.failed)
    assert counter.read_text() == "xxx" and [c for c, _ in exits] == [1, 1, 4]
    restarted = [started - exits[i][1] for i, started in enumerate(_starts(tmp_path / "monitor.log")[1:])]
    assert all(wait >= 0.5 for wait in restarted), restarted
    assert supervisor.failed is not None and "monitor exited unexpectedly (code 4)" in supervisor.failed


def _starts(log: Path) -> list[float]:
    """Monotonic start times the services printed (``start <t>``)."""
    return [float(line.split()[-1]) for line in log.read_text().splitlines() if line.startswith("start")]


def test_one_service_stops_ahead_of_the_others(tmp_path: Path) -> None:
    """What the launcher does with the Dagster daemon before terminating the runs."""
    units: list[Unit] = [Service(name, _sleeper(name), says="") for name in ("daemon", "ui")]
    supervisor = Supervisor(units, env={}, cwd=tmp_path, log_dir=tmp_path)
    _run(supervisor, lambda: {"daemon", "ui"} <= set(supervisor.ready))
    time.sleep(1)  # both installed their SIGTERM handler
    supervisor.stop("daemon")
    assert [e.service.name for e in supervisor.running] == ["ui"]
    assert "stop daemon" in (tmp_path / "daemon.log").read_text()
    assert "stop ui" not in (tmp_path / "ui.log").read_text() and supervisor.running[0].proc.poll() is None
    supervisor.stop_all()
    assert "stop ui" in (tmp_path / "ui.log").read_text()


def test_a_stack_with_an_unknown_prerequisite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown prerequisites"):
        Supervisor([Action("a", lambda: "", after=("nope",))], env={}, cwd=tmp_path, log_dir=tmp_path)
