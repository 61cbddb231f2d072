"""Processes we start and stop by PID, and the one way our commands turn SIGINT/SIGTERM into a clean stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
STOP_GRACE_S = 5.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the caller binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def process_rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB, from /proc (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def runs_command(pid: int, executable_prefix: str, argument: bytes) -> bool:
    """True if ``pid`` is alive and runs ``executable_prefix…`` with ``argument`` on its command line
    (guards against a recycled PID in a stale state file)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    executable = Path(cmdline[0].decode(errors="replace")).name
    return executable.startswith(executable_prefix) and argument in cmdline


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie; reaps the process first if it is our child."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by a parent that is not us) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(pid: int, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns False if the process was already gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while pid_alive(pid) and time.monotonic() < deadline + grace_s:
        time.sleep(0.05)
    return True


def stop_on_signals(log: logging.Logger, consequence: str) -> threading.Event:
    """An event that SIGINT or SIGTERM sets, after logging ``received SIGTERM: <consequence>``.

    Every long-running command stops the same way: it finishes what it is doing and cleans up, instead of
    dying mid-write on KeyboardInterrupt. Call from the main thread.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: %s", signal.Signals(signum).name, consequence)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop
