"""The launcher's building blocks: services it starts and watches, actions it takes, and the supervisor.

A stack is a plain list of :class:`Service` and :class:`Action`, each naming what must be ready before it
starts (``after``). The supervisor starts whatever has its prerequisites ready, prints each unit's sentence
once it is ready, and stops everything (newest first, by PID) on Ctrl-C, SIGTERM or an unexpected exit.
Adding a supervised process to ``netflix-lambda up`` is one more entry in ``cli.launcher.stack``::

    Service(
        "dashboards",
        [python, "-m", "streamlit", "run", app, "--server.address", "127.0.0.1", "--server.port", port],
        says="Dashboards at {detail}",
        ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
        after=("ui",),
    )

Children start in their own session (Ctrl-C in the terminal reaches only the launcher, which stops them
in order) with SIGINT and SIGTERM reset to their defaults: a process started from a non-interactive shell
inherits an *ignored* SIGINT, and ``dagster`` commands copy that disposition onto SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger("cli.launcher")

Ready = Callable[[], str | None]  # None while not ready; then the text that replaces {detail} in `says`
LEFTOVER_GRACE_S = 45.0
QUICK_DEATH_S = 30.0  # a restarted service that dies sooner than this again counts as crash-looping
MAX_QUICK_DEATHS = 3  # a streaming run finishes its micro-batch (~10 s trigger) and stops Spark


def started() -> str:
    """The default readiness: ready as soon as the process runs."""
    return ""


def http_ready(url: str) -> Ready:
    """Ready once ``url`` answers 200; ``{detail}`` is the URL without its path."""
    base = re.sub(r"^(https?://[^/]+).*$", r"\1", url)

    def check() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return base if response.status == 200 else None
        except OSError:
            return None

    return check


@dataclass(frozen=True)
class Service:
    """A process of the stack.

    ``oneshot`` marks a task (e.g. generating data): it is ready when it exits 0, and a non-zero exit stops
    the launch. Any other service exiting is an outage: the launcher says so and stops the stack, unless
    ``restart`` is set (a helper the stack can run without for a moment): then it is started again, with a
    warning, up to :data:`MAX_QUICK_DEATHS` times in a row if it dies within :data:`QUICK_DEATH_S` of its
    start. A service with a policy of its own (the SLO monitor backs off and never gives up) sets
    ``restart_after`` instead: given the exit code, the seconds to wait before starting it again, or None
    when a restart cannot help (the launch stops); the policy says what happened itself.
    """

    name: str
    argv: Sequence[str]
    says: str
    ready: Ready = started
    after: tuple[str, ...] = ()
    oneshot: bool = False
    stop_signal: signal.Signals = signal.SIGTERM
    ready_warning_s: float = 120.0  # say something if it is not ready by then
    log_name: str = ""  # file under the log folder (default: the name, slugged)
    restart: bool = False
    restart_after: Callable[[int], float | None] | None = None
    hint: str = ""  # what to do when it dies (appended to the error)

    @property
    def log_file_name(self) -> str:
        return self.log_name or re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") + ".log"


@dataclass(frozen=True)
class Action:
    """Something the launcher does itself once ``after`` is ready (e.g. launch a run); ``do`` returns the
    sentence to print, or raises to report a problem (the stack keeps running). It runs in a thread of
    its own: an API call that takes seconds on a busy machine does not hold up the other units."""

    name: str
    do: Callable[[], str]
    after: tuple[str, ...] = ()


Unit = Service | Action


def _reset_signals() -> None:
    """Run in the child before exec: default SIGINT/SIGTERM, whatever the parent shell ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def rotate(path: Path) -> None:
    """Keep the previous start's log as ``<name>.1`` (one generation)."""
    if path.exists():
        os.replace(path, path.with_name(path.name + ".1"))


@dataclass
class _Running:
    service: Service
    proc: subprocess.Popen[bytes]
    started: float
    warned: bool = False
    quick_deaths: int = 0
    restart_at: float | None = None  # exited; started again at this monotonic time


@dataclass
class Supervisor:
    """Starts the units of a stack in dependency order and keeps them running; see the module docstring."""

    units: list[Unit]
    env: dict[str, str]
    cwd: Path
    log_dir: Path
    t0: float = field(default_factory=time.monotonic)
    ready: dict[str, float] = field(default_factory=dict)  # name -> seconds after t0
    running: list[_Running] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # started or finished (never started twice)
    failed: str | None = None
    pollers: list[Callable[[], None]] = field(default_factory=list)
    actions: dict[str, threading.Thread] = field(default_factory=dict)
    _results: queue.Queue[tuple[str, str | None]] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        names = [u.name for u in self.units]
        unknown = {a for u in self.units for a in u.after} - set(names)
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"stack has unknown prerequisites {sorted(unknown)} or duplicate names {names}")

    def log_path(self, service: Service) -> Path:
        return self.log_dir / service.log_file_name

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def mark_ready(self, name: str, sentence: str) -> None:
        self.ready[name] = self.elapsed()
        if sentence:
            log.info("%s", sentence)

    # -- one step of the loop -----------------------------------------------------------------------
    def step(self) -> None:
        """Start what can start, notice what became ready or exited, run the pollers."""
        for unit in self.units:
            if unit.name not in self.done and all(a in self.ready for a in unit.after):
                self.done.add(unit.name)
                self._start(unit)
        for entry in list(self.running):
            self._check(entry)
        while not self._results.empty():
            name, sentence = self._results.get()
            if sentence is not None:
                self.mark_ready(name, sentence)
        for poll in self.pollers:
            poll()

    def _start(self, unit: Unit) -> None:
        if isinstance(unit, Action):
            thread = threading.Thread(target=self._act, args=(unit,), name=unit.name, daemon=True)
            self.actions[unit.name] = thread
            thread.start()
            return
        rotate(self.log_path(unit))
        self.running.append(_Running(unit, self._spawn(unit), time.monotonic()))

    def _spawn(self, service: Service) -> subprocess.Popen[bytes]:
        path = self.log_path(service)
        log.debug("starting %s: %s (log %s)", service.name, " ".join(service.argv), path)
        with path.open("ab") as out:
            return subprocess.Popen(
                list(service.argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_reset_signals,
                start_new_session=True,
            )

    def _act(self, action: Action) -> None:
        try:
            self._results.put((action.name, action.do()))
        except Exception as exc:  # an action that failed is reported; the stack keeps running
            log.error("%s: %s", action.name, exc)
            self._results.put((action.name, None))

    def _check(self, entry: _Running) -> None:
        service, code = entry.service, entry.proc.poll()
        if service.oneshot:
            if code == 0:
                self.running.remove(entry)
                self.mark_ready(service.name, service.says.format(detail=""))
            elif code is not None:
                self.running.remove(entry)
                self.failed = f"{service.name} failed (exit {code}); see {self.log_path(service)}"
            return
        if entry.restart_at is not None:
            if time.monotonic() >= entry.restart_at:
                entry.proc, entry.started, entry.restart_at = self._spawn(service), time.monotonic(), None
            return
        if code is not None:
            self._exited(entry, code)
            return
        if service.name not in self.ready:
            detail = service.ready()
            if detail is not None:
                self.mark_ready(service.name, service.says.format(detail=detail))
            elif not entry.warned and time.monotonic() - entry.started > service.ready_warning_s:
                entry.warned = True
                log.warning(
                    "%s is not ready after %.0f s; still waiting (see %s)",
                    service.name,
                    service.ready_warning_s,
                    self.log_path(service),
                )

    def _exited(self, entry: _Running, code: int) -> None:
        """A service died: restart it (now, or when its policy says) if it may be, else fail the launch."""
        service = entry.service
        delay = service.restart_after(code) if service.restart_after else self._restart_now(entry, code)
        if delay is None:
            self.running.remove(entry)
            hint = f". {service.hint}" if service.hint else ""
            self.failed = (
                f"{service.name} exited unexpectedly (code {code}); see {self.log_path(service)}{hint}"
            )
            return
        entry.restart_at = time.monotonic() + delay

    def _restart_now(self, entry: _Running, code: int) -> float | None:
        """``restart=True``: at once, unless it crash-loops; None without ``restart``."""
        quick = time.monotonic() - entry.started < QUICK_DEATH_S
        entry.quick_deaths = entry.quick_deaths + 1 if quick else 0
        if not entry.service.restart or entry.quick_deaths >= MAX_QUICK_DEATHS:
            return None
        log.warning(
            "%s exited (code %d); starting it again (see %s)",
            entry.service.name,
            code,
            self.log_path(entry.service),
        )
        return 0.0

    # -- stopping -----------------------------------------------------------------------------------
    def descendants(self) -> list[psutil.Process]:
        """Every process below our services (Dagster's run workers and their Spark JVMs included)."""
        found: list[psutil.Process] = []
        for entry in self.running:
            with contextlib.suppress(psutil.NoSuchProcess):
                found += psutil.Process(entry.proc.pid).children(recursive=True)
        return found

    def pids(self) -> list[int]:
        """Our services and everything below them."""
        return [e.proc.pid for e in self.running] + [p.pid for p in self.descendants()]

    def kill_all(self) -> int:
        """SIGKILL everything, at once (a second Ctrl-C); the number of processes killed."""
        victims = [
            *self.descendants(),
            *(psutil.Process(e.proc.pid) for e in self.running if e.proc.poll() is None),
        ]
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.kill()
        return len(victims)

    def stop(self, name: str, grace_s: float = 30.0) -> None:
        """Stop one service ahead of the others (e.g. the Dagster daemon before the runs are terminated:
        its sensor would otherwise relaunch the stream that is being stopped)."""
        for entry in [e for e in self.running if e.service.name == name]:
            self._stop(entry, grace_s)
            self.running.remove(entry)

    def stop_all(self, grace_s: float = 30.0) -> None:
        """Stop services newest first, each with its stop signal, then whatever they left behind."""
        leftovers = self.descendants()
        for entry in reversed(self.running):
            self._stop(entry, grace_s)
        self.running.clear()
        stop_leftovers(leftovers)

    def _stop(self, entry: _Running, grace_s: float) -> None:
        if entry.proc.poll() is not None:
            return
        log.debug("stopping %s (pid %d)", entry.service.name, entry.proc.pid)
        entry.proc.send_signal(entry.service.stop_signal)
        try:
            entry.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s (pid %d) ignored the stop signal for %.0f s; killing its process group",
                entry.service.name,
                entry.proc.pid,
                grace_s,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry.proc.pid, signal.SIGKILL)
            entry.proc.wait(timeout=10)


def stop_leftovers(processes: list[psutil.Process], grace_s: float = LEFTOVER_GRACE_S) -> None:
    """SIGTERM what is still running (a streaming run stops after its current micro-batch), then SIGKILL
    whatever has not exited after ``grace_s``."""
    alive = [p for p in processes if _alive(p)]
    if not alive:
        return
    log.warning(
        "%d process(es) started by Dagster still running after the services stopped; terminating: %s",
        len(alive),
        ", ".join(f"{p.pid} {_command(p)}" for p in alive),
    )
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _gone, stuck = psutil.wait_procs(alive, timeout=grace_s)
    for process in stuck:
        log.warning("pid %d did not stop within %.0f s of SIGTERM; killing it", process.pid, grace_s)
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(stuck, timeout=10)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline()[:3])[:60]
    except psutil.Error:
        return "?"


class LogEcho:
    """NETFLIX_LOG_LEVEL=DEBUG: copy every new line of the services' log files to the terminal."""

    def __init__(self, log_dir: Path, stop: threading.Event) -> None:
        self.log_dir, self.stop = log_dir, stop
        self.offsets: dict[Path, int] = {}
        self.thread = threading.Thread(target=self._run, name="log-echo", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        echo = logging.getLogger("cli.services")
        while not self.stop.wait(0.5):
            for path in sorted(self.log_dir.glob("*.log")):
                if path.name == "up.log":
                    continue
                with contextlib.suppress(OSError), path.open("rb") as handle:
                    handle.seek(self.offsets.get(path, 0))
                    for line in handle:
                        echo.debug("[%s] %s", path.stem, line.decode(errors="replace").rstrip())
                    self.offsets[path] = handle.tell()
