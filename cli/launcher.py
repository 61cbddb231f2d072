"""``netflix-lambda up``: the whole pipeline on the embedded default, then the Dagster UI, until Ctrl-C.

The launcher is a supervisor, not an ``exec``: it owns every process it starts (the embedded broker, the
steady producer, ``dagster dev``) in its own process group and stops them all, by PID, on Ctrl-C or
SIGTERM. ``dagster dev`` started from a non-interactive shell inherits an *ignored* SIGINT and copies that
disposition onto SIGTERM, after which neither signal stops it; every child therefore starts with SIGINT
and SIGTERM reset to their defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cli.monitor import SupervisedMonitor
from core.bucket import Bucket
from core.contracts.raw import RAW_TABLES, raw_key
from core.kafka.cluster import KafkaCluster
from core.processes import stop_on_signals
from core.settings import PROJECT_ROOT, Settings
from dashboards.links import DASHBOARDS, dashboard_url

log = logging.getLogger("cli.launcher")

BATCH_SELECTION = "group:raw or group:silver or group:gold"
LEFTOVER_GRACE_S = 45.0  # a streaming run finishes its micro-batch (~10 s trigger) and stops Spark
DAGSTER_YAML = """\
# Written by `netflix-lambda up`. Local instance: sqlite storage under this folder.
telemetry:
  enabled: false
concurrency:
  runs:
    # The streaming run is long-lived; leave room for batch runs beside it on 2 cores.
    max_concurrent_runs: 4
  pools:
    # dbt builds DuckDB with a single writer (docs/architecture.md): one run at a time per pool.
    default_limit: 1
"""


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _stop_leftovers(processes: list[psutil.Process], grace_s: float = LEFTOVER_GRACE_S) -> None:
    """SIGTERM what is still running (a streaming run stops after its current micro-batch and records
    its end in Dagster), then SIGKILL whatever has not exited after ``grace_s``."""
    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if not alive:
        return
    log.info(
        "%d process(es) started by Dagster (runs, Spark) still running after the UI stopped; terminating: %s",
        len(alive),
        ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])[:60]}" for p in alive if p.is_running()),
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


def _reset_signals() -> None:
    """Run in the child before exec: default SIGINT/SIGTERM, whatever the parent shell ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Supervisor:
    settings: Settings
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    # On-call (issue 12): children restarted instead of stopping the stack, and hooks run every loop.
    restartable: dict[str, Callable[[int | None], bool]] = field(default_factory=dict)
    every_loop: list[Callable[[], None]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = self.settings.subprocess_env()
        env["DAGSTER_HOME"] = str(self.dagster_home)
        return env

    @property
    def dagster_home(self) -> Path:
        return Path(self.settings.data_dir).resolve() / "dagster_home"

    @property
    def bin_dir(self) -> Path:
        return Path(sys.executable).parent

    def prepare_instance(self) -> None:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)

    def run_step(self, what: str, argv: list[str]) -> None:
        """A foreground step; its failure stops the launch with the step named."""
        log.info("%s: %s", what, " ".join(argv))
        started = time.monotonic()
        completed = subprocess.run(
            argv, env=self.env, cwd=PROJECT_ROOT, preexec_fn=_reset_signals, check=False
        )
        if completed.returncode != 0:
            raise SystemExit(f"{what} failed (exit {completed.returncode}); see the output above")
        log.info("%s: done in %.1f s", what, time.monotonic() - started)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log.info("starting %s: %s", name, " ".join(argv))
        proc = subprocess.Popen(
            argv, env=self.env, cwd=PROJECT_ROOT, preexec_fn=_reset_signals, start_new_session=True
        )
        self.children.append((name, proc))
        return proc

    def stop_all(self) -> None:
        """Stop children newest first (UI, then producer, then broker), SIGKILL after a grace period.

        Runs that ``dagster dev`` launched (the streaming run and its Spark JVM) are its descendants but
        outlive it: they are collected before the stop and terminated afterwards if still there.
        """
        launched = []
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                launched += _descendants(proc.pid)
                log.info("stopping %s (pid %d)", name, proc.pid)
                proc.send_signal(signal.SIGINT if name == "dagster dev" else signal.SIGTERM)
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored the stop signal; killing its process group", name, proc.pid)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.children.clear()
        _stop_leftovers(launched)

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM or until a child dies (which is an outage worth surfacing)."""
        stop = stop_on_signals(log, "stopping everything")
        try:
            while not stop.is_set():
                for name, proc in list(self.children):
                    if proc.poll() is not None:
                        if name in self.restartable and self.restartable[name](proc.returncode):
                            self.children.remove((name, proc))  # its service restarts it
                            continue
                        log.error(
                            "%s exited unexpectedly with code %s; stopping the stack", name, proc.returncode
                        )
                        return 1
                for hook in self.every_loop:
                    hook()
                stop.wait(0.5)
            return 0
        finally:
            self.stop_all()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generator scale when raw/ is empty (1 = Kaggle size)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--regenerate", action="store_true", help="regenerate raw/ even if files are there")
    parser.add_argument("--skip-batch", action="store_true", help="do not run the batch layer before serving")
    parser.add_argument("--no-ui", action="store_true", help="run the pipeline, then exit instead of serving")
    parser.add_argument(
        "--rate", type=float, default=5.0, help="steady producer rate in events/s (0: no producer)"
    )
    parser.add_argument(
        "--poison-rate", type=float, default=0.001, help="share of malformed events the producer injects"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [up] %(message)s")
    sup = Supervisor(settings)
    sup.prepare_instance()
    exe = str(sup.bin_dir / "netflix-lambda")
    dagster = str(sup.bin_dir / "dagster")
    # On-call (issue 12): the SLO monitor, checked first, supervised, its alerts echoed here.
    monitor = SupervisedMonitor(settings, exe, traffic_expected=args.rate > 0, spawn=sup.spawn)
    monitor.check()
    sup.restartable[monitor.NAME] = monitor.exited
    sup.every_loop.append(monitor.poll)
    try:
        bucket = Bucket.from_settings(settings)
        if args.regenerate or not all(bucket.exists(raw_key(t)) for t in RAW_TABLES):
            sup.run_step(
                "generate raw data", [exe, "generate", "--scale", str(args.scale), "--seed", str(args.seed)]
            )
        else:
            log.info("raw files already in %s; keeping them (use --regenerate to replace)", bucket.uri("raw"))
        if not args.skip_batch:
            sup.run_step(
                "materialize the batch layer",
                [
                    dagster,
                    "asset",
                    "materialize",
                    "-m",
                    "netflix_assets.definitions",
                    "--select",
                    BATCH_SELECTION,
                ],
            )
        if args.no_ui:
            return 0
        if settings.embedded_kafka:
            sup.spawn("broker", [exe, "broker"])
            reachable = KafkaCluster.from_settings(settings).wait_until_reachable(timeout_s=60)
            log.info("embedded broker up at %s", reachable)
        else:
            log.info("using the Kafka cluster at %s; no embedded broker", settings.kafka_bootstrap_servers)
        if args.rate > 0:
            sup.spawn(
                "producer",
                [exe, "produce", "--rate", str(args.rate), "--poison-rate", str(args.poison_rate), "--quiet"],
            )
        # -- dashboards (issue 13): one more supervised service; Ctrl-C stops it with the others ------------
        sup.spawn("dashboards", [exe, "dashboards"])
        for dashboard in DASHBOARDS:
            log.info("%s dashboard: %s", dashboard.title, dashboard_url(settings, dashboard))
        # ------------------------------------------------------------------------------------------------
        monitor.start()  # on-call (issue 12)
        sup.spawn(
            "dagster dev",
            [dagster, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(settings.dagster_port)],
        )  # fmt: skip
        log.info(
            "Dagster UI: http://127.0.0.1:%d; the streaming sensor starts the stream within seconds and "
            "engagement_health_realtime fills within a minute (Ctrl-C stops everything)",
            settings.dagster_port,
        )
        return sup.wait()
    finally:
        sup.stop_all()
