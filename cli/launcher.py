"""``netflix-lambda up``: the Dagster UI first, then the stream and the batch layer as Dagster runs.

What starts, in what order, and what each says once ready is the list in :func:`stack`; the supervisor
(``cli/services.py``) runs it. Before anything: the SLO file is checked. At once: the Dagster code server,
the embedded broker and (on a first start) the data generator. When the broker is up: the SLO monitor
(restarted with backoff whenever it dies; its alerts echoed on the terminal). When the code server is up:
the webserver and the daemon. When the UI serves:
the streaming run is launched through the webserver's GraphQL API (not left to the sensor's next tick;
the sensor stays as the keeper that relaunches it), then the producer, and the batch layer as a normal
run of ``batch_layer`` that the UI shows while it runs.

Dagster is started as its three services (``dagster code-server start``, ``dagster-webserver``,
``dagster-daemon run``) rather than through ``dagster dev``: that wrapper is superseded, adds a fourth
Python process that pays Dagster's import before anything starts (~4 s), and hides the services' PIDs
and logs behind itself. The code server listens on a Unix socket only; the UI on 127.0.0.1.

Ctrl-C or SIGTERM stops everything: the daemon first (its sensor would relaunch the stream), then runs
in progress are terminated through the API (the stream stops after its current micro-batch and its run
ends CANCELED, not failed), then the other services newest first, then anything they left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cli import terminal
from cli.dagster_api import IN_PROGRESS, DagsterApi, DagsterApiError, Location, Run
from cli.monitor import SupervisedMonitor
from cli.run_reports import BatchReport, RunFollower, RunReport, StreamReport
from cli.services import Action, LogEcho, Service, Supervisor, Unit
from core.bucket import Bucket
from core.contracts.raw import RAW_TABLES, raw_key
from core.kafka.cluster import KafkaCluster, read_state
from core.processes import LOOPBACK, stop_on_signals
from core.settings import PROJECT_ROOT, Settings
from core.warehouse import WarehouseLayout
from dashboards.links import DASHBOARDS, base_url, dashboard_url

log = logging.getLogger("cli.launcher")

CODE_MODULE = "netflix_assets.definitions"
LOCATION = "netflix_assets"
SPEED_JOB = "speed_stream_job"
BATCH_JOB = "batch_layer"
LAUNCHED_BY = {"netflix/launched_by": "netflix-lambda up"}
RUNS_STOP_S = 90.0  # the stream finishes its micro-batch (10 s trigger + the batch) and stops Spark
DAGSTER_YAML = """\
# Written by `netflix-lambda up` at every start. Local instance: sqlite storage under this folder.
telemetry:
  enabled: false
nux:
  enabled: false  # no "join the community" modal in a fresh browser
run_queue:
  dequeue_interval_seconds: 1  # a launched run starts within a second (default 5)
concurrency:
  runs:
    # The streaming run is long-lived; leave room for batch runs beside it on 2 cores.
    max_concurrent_runs: 4
    # One stream and one batch layer at a time, whoever launches them (this launcher, the sensor, the
    # schedule, the UI): a second one waits in the queue instead of fighting over checkpoints and files.
    tag_concurrency_limits:
      - key: netflix/layer
        value: speed
        limit: 1
      - key: netflix/layer
        value: batch
        limit: 1
  pools:
    # dbt builds DuckDB with a single writer (docs/architecture.md): one run at a time per pool.
    default_limit: 1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generator scale when raw/ is empty (1 = Kaggle size)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--regenerate", action="store_true", help="regenerate raw/ even if files are there")
    parser.add_argument("--skip-batch", action="store_true", help="do not launch the batch layer run")
    parser.add_argument(
        "--rate", type=float, default=5.0, help="steady producer rate in events/s (0: no producer)"
    )
    parser.add_argument(
        "--poison-rate", type=float, default=0.001, help="share of malformed events the producer injects"
    )


@dataclass
class Launch:
    """One ``netflix-lambda up``: where things are, and the launcher's own actions on Dagster."""

    args: argparse.Namespace
    settings: Settings
    log_dir: Path
    socket_dir: Path
    started_epoch: float = field(default_factory=time.time)
    location: Location | None = None
    _load_error: str | None = None

    def __post_init__(self) -> None:
        self.api = DagsterApi(self.ui_url)
        self.stream = RunFollower(self.api, SPEED_JOB, self._stream_report, since=self.started_epoch)
        self.batch = RunFollower(self.api, BATCH_JOB, self._batch_report, since=self.started_epoch)
        self.monitor = SupervisedMonitor(self.settings, self.bin("netflix-lambda"), self.args.rate > 0)
        self.supervisor: Supervisor | None = None

    # -- where things are ---------------------------------------------------------------------------
    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.dagster_port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir).resolve()

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    @property
    def workspace(self) -> Path:
        return self.dagster_home / "workspace.yaml"

    @property
    def socket(self) -> Path:
        return self.socket_dir / "code.sock"

    def bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def env(self) -> dict[str, str]:
        env = self.settings.subprocess_env()
        env["DAGSTER_HOME"] = str(self.dagster_home)
        env["PYTHONUNBUFFERED"] = "1"  # log files fill as things happen, not when a buffer does
        return env

    def prepare_instance(self) -> None:
        """Dagster's instance config and a workspace pointing at the code server's socket."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
        self.workspace.write_text(
            "# Written by `netflix-lambda up`: the webserver and the daemon share one code server.\n"
            f"load_from:\n  - grpc_server:\n      socket: {self.socket}\n      location_name: {LOCATION}\n"
        )

    # -- readiness ----------------------------------------------------------------------------------
    def broker_ready(self) -> str | None:
        state = read_state(KafkaCluster.from_settings(self.settings).state_dir)
        return state.bootstrap_servers if state else None

    def code_server_ready(self) -> str | None:
        return "" if self.socket.exists() else None

    def dashboards_ready(self) -> str | None:
        """The dashboards server answers its health check; the detail is where each dashboard is."""
        try:
            with urllib.request.urlopen(f"{base_url(self.settings)}/_stcore/health", timeout=1) as response:
                if response.status != 200:
                    return None
        except OSError:
            return None
        return ", ".join(f"{d.title} at {dashboard_url(self.settings, d)}" for d in DASHBOARDS)

    def ui_ready(self) -> str | None:
        """The UI serves and shows the code location; a load error is said once, with what to do."""
        if not self.api.serving():
            return None
        try:
            location = next((loc for loc in self.api.locations() if loc.name == LOCATION), None)
        except (DagsterApiError, OSError):
            return None
        if location is not None and location.error and location.error != self._load_error:
            self._load_error = location.error
            log.error(
                "the Dagster definitions failed to load: %s. The UI at %s shows the whole error; fix it and "
                "press Reload (Deployment → Code locations). Runs are launched once they load",
                location.error.strip().splitlines()[-1],
                self.ui_url,
            )
        if location is None or not location.loaded:
            return None
        self.location = location
        return self.ui_url

    # -- actions ------------------------------------------------------------------------------------
    def cancel_stale_runs(self) -> str:
        """Runs "in progress" from a start that ended without stopping them (SIGKILL, power loss) have no
        process left; marked canceled so the sensor and the run queue do not wait for them forever."""
        stale = [
            run
            for run in self.api.runs(None, IN_PROGRESS, limit=50)
            if run.created < self.started_epoch and run.status != "QUEUED"
        ]
        canceled = [r for r in stale if self._mark_canceled(r.run_id) == "CANCELED"]
        if not canceled:
            return ""
        runs = ", ".join(f"{r.job} {r.run_id[:8]}" for r in canceled)
        return f"marked {len(canceled)} run(s) left in progress by an earlier start as canceled: {runs}"

    def _mark_canceled(self, run_id: str) -> str:
        """The run's status once marked canceled, or as whoever ended it first left it (the stream sensor
        fails a lost stream run on its own, and may get there between the listing and this call)."""
        try:
            return self.api.terminate(run_id, immediately=True)
        except DagsterApiError:
            run = self.api.run(run_id)
            if run is None or run.in_progress:
                raise
            return run.status

    def launch(self, job: str, follower: RunFollower) -> str:
        """Launch ``job`` unless a run of it is already on its way; the follower reports from then on."""
        assert self.location is not None
        follower.launching()
        run_id, launched_here = None, True
        try:
            active = self.api.runs(job, IN_PROGRESS, limit=1)
            if active:
                run_id, launched_here = active[0].run_id, False
                return f"{job}: run {run_id[:8]} is already {active[0].status.lower()}; not launching another"
            try:
                run_id = self.api.launch(self.location, job, LAUNCHED_BY)
            except TimeoutError:  # the webserver may have created the run before the answer timed out
                created = [r for r in self.api.runs(job, limit=1) if r.created >= self.started_epoch]
                if not created:
                    raise
                run_id = created[0].run_id
            return ""
        finally:
            follower.follow(run_id, launched_here)

    def _stream_report(self, run: Run, launched_here: bool) -> StreamReport:
        return StreamReport(self.ui_url, run, launched_here, self.elapsed)

    def _batch_report(self, run: Run, launched_here: bool) -> BatchReport:
        return BatchReport(self.ui_url, run, launched_here, self.elapsed, marts=self.marts_summary)

    def elapsed(self) -> float:
        return time.time() - self.started_epoch

    def marts_summary(self) -> str:
        if self.settings.warehouse.value != "duckdb":
            return f"marts published to BigQuery dataset {self.settings.bigquery_dataset}"
        return f"marts published in {WarehouseLayout.from_settings(self.settings).batch_published}"

    # -- stopping -----------------------------------------------------------------------------------
    def stop_runs(self) -> None:
        """Terminate runs in progress through the API and wait for them to end (bounded)."""
        RunReport.stopping = True
        try:
            runs = self.api.runs(None, IN_PROGRESS, limit=50)
            for run in runs:
                self.api.terminate(run.run_id)
        except (DagsterApiError, OSError) as exc:
            log.debug("terminating runs through the API: %s", exc)
            return
        if not runs:
            return
        log.info("stopping %d run(s): the stream ends after its current micro-batch (Ctrl-C again: stop at "
                 "once)", len(runs))  # fmt: skip
        deadline = time.monotonic() + RUNS_STOP_S
        while time.monotonic() < deadline:
            self.stream.poll()
            self.batch.poll()
            try:
                if not self.api.runs(None, IN_PROGRESS, limit=1):
                    return
            except (DagsterApiError, OSError):
                return
            time.sleep(1)
        log.warning("runs still in progress after %.0f s; their processes are stopped below", RUNS_STOP_S)


def stack(launch: Launch) -> list[Unit]:
    """Everything ``netflix-lambda up`` starts, in dependency order (``after``), and what it says."""
    args, settings = launch.args, launch.settings
    exe, level = launch.bin("netflix-lambda"), "debug" if settings.log_level == "DEBUG" else "info"
    bucket = Bucket.from_settings(settings)
    units: list[Unit] = []
    if args.regenerate or not all(bucket.exists(raw_key(t)) for t in RAW_TABLES):
        units.append(Service(
            "raw data", [exe, "generate", "--scale", str(args.scale), "--seed", str(args.seed)],
            says=f"raw data generated: {len(RAW_TABLES)} CSVs at scale {args.scale:g} in {bucket.uri('raw')}",
            oneshot=True, log_name="generate.log",
        ))  # fmt: skip
    else:
        raw_note = f"raw files already in {bucket.uri('raw')}; keeping them (--regenerate replaces them)"
        units.append(Action("raw data", lambda: raw_note))
    if settings.embedded_kafka:
        units.append(Service(
            "broker", [exe, "broker"], says="Kafka broker (embedded Tansu) up at {detail}",
            ready=launch.broker_ready,
            hint="If it says a broker is already running (an earlier start that was killed), run "
            "`netflix-lambda broker --stop` and start again",
        ))  # fmt: skip
    else:
        kafka_note = f"using the Kafka cluster at {settings.kafka_bootstrap_servers}; no embedded broker"
        units.append(Action("broker", lambda: kafka_note))
    # On-call (issue 12, docs/slos.md): the SLO monitor once there is a broker to sample (it would page
    # "broker unreachable" otherwise), restarted with backoff whenever it dies, its alerts echoed here.
    units.append(launch.monitor.service(after=("broker",)))
    units += [
        Service(
            "code server",
            [launch.bin("dagster"), "code-server", "start", "--socket", str(launch.socket),
             "--module-name", CODE_MODULE, "--location-name", LOCATION, "--log-level", level],
            says="", ready=launch.code_server_ready, stop_signal=signal.SIGINT,
            log_name="dagster-code-server.log",  # the runs it launches log here too: Spark, dbt
        ),
        Service(
            "ui",
            [launch.bin("dagster-webserver"), "-w", str(launch.workspace), "-h", LOOPBACK,
             "-p", str(settings.dagster_port), "--dagster-log-level", level],
            says="Dagster UI at {detail} (Ctrl-C here stops everything)", ready=launch.ui_ready,
            after=("code server",), stop_signal=signal.SIGINT, log_name="dagster-webserver.log",
        ),
        Service(
            "daemon",
            [launch.bin("dagster-daemon"), "run", "-w", str(launch.workspace), "--log-level", level],
            says="", after=("code server",), stop_signal=signal.SIGINT, log_name="dagster-daemon.log",
        ),
        Action("stale runs", launch.cancel_stale_runs, after=("ui",)),
        Action("stream run", lambda: launch.launch(SPEED_JOB, launch.stream),
               after=("stale runs", "broker", "raw data")),
    ]  # fmt: skip
    if args.rate > 0:
        # After the stream's launch: on a fresh (memory-only) broker the sensor then never sees lag before
        # the launcher's run exists, so it cannot launch a second stream beside it.
        units.append(Service(
            "producer",
            [exe, "produce", "--rate", str(args.rate), "--poison-rate", str(args.poison_rate), "--quiet"],
            says=f"producer sending {args.rate:g} events/s ({args.poison_rate:.1%} malformed) to "
            f"{settings.kafka_topic}",
            after=("stream run",),
        ))  # fmt: skip
    # Serving (issue 13, docs/serving.md): the dashboards read published files only, so they start at once
    # and say "no data yet" until the layers publish; the stack can run without them for a moment.
    units.append(Service(
        "dashboards", [exe, "dashboards"], says="dashboards: {detail}", ready=launch.dashboards_ready,
        restart=True,
    ))  # fmt: skip
    if not args.skip_batch:
        units.append(Action("batch run", lambda: launch.launch(BATCH_JOB, launch.batch),
                            after=("stale runs", "raw data")))  # fmt: skip
    return units


@contextlib.contextmanager
def _single_launcher(data_dir: Path) -> Iterator[IO[str]]:
    """One ``up`` per data folder: a second one would share the broker state, DuckDB files and runs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "up.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise SystemExit(
                f"another `netflix-lambda up` is running on {data_dir} (pid {lock.read().strip() or '?'}); "
                "stop it first, or set NETFLIX_DATA_DIR to another folder"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield lock


def _second_signal_kills(supervisor: Supervisor) -> None:
    """While stopping in order (runs first, which can take a minute), Ctrl-C again kills everything now."""

    def kill(signum: int, _frame: object) -> None:
        killed = supervisor.kill_all()
        log.warning("%s again: killed %d process(es) without waiting", signal.Signals(signum).name, killed)
        os._exit(130)

    signal.signal(signal.SIGINT, kill)
    signal.signal(signal.SIGTERM, kill)


def _port_free(port: int) -> bool:
    """Free for the webserver, which binds with SO_REUSEADDR (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def run(args: argparse.Namespace, settings: Settings) -> int:
    data_dir = Path(settings.data_dir).resolve()
    log_dir = data_dir / "logs"
    terminal.configure(log_dir, settings.log_level)
    if not _port_free(settings.dagster_port):
        log.error(
            "port %d on %s is taken (another Dagster UI, or an earlier `make run` still stopping?): stop "
            "it, or choose another port with NETFLIX_DAGSTER_PORT",
            settings.dagster_port,
            LOOPBACK,
        )
        return 1
    with _single_launcher(data_dir), tempfile.TemporaryDirectory(prefix="netflix-up-") as socket_dir:
        launch = Launch(args, settings, log_dir, Path(socket_dir))
        launch.monitor.check()  # a malformed SLO file stops the launch before anything starts, naming the key
        launch.prepare_instance()
        units = stack(launch)
        files = [f"{u.log_file_name} ({u.name})" for u in units if isinstance(u, Service)]
        log.info("netflix-lambda up: full logs in %s: up.log (this terminal, in detail), %s", log_dir,
                 ", ".join(files))  # fmt: skip
        supervisor = Supervisor(units, launch.env(), PROJECT_ROOT, log_dir)
        supervisor.pollers += [launch.stream.poll, launch.batch.poll, launch.monitor.echo_alerts]
        stop = stop_on_signals(log, "stopping everything")
        if settings.log_level == "DEBUG":
            LogEcho(log_dir, stop).start()
        try:
            while not stop.is_set() and supervisor.failed is None:
                supervisor.step()
                stop.wait(0.25)
            if supervisor.failed:
                log.error("%s; stopping everything", supervisor.failed)
        finally:
            _second_signal_kills(supervisor)
            supervisor.stop("daemon")  # first: its stream sensor would relaunch the stream stopped below
            launch.stop_runs()
            supervisor.stop_all()
            shutil.rmtree(socket_dir, ignore_errors=True)
            log.info("stopped everything netflix-lambda up started")
        return 1 if supervisor.failed else 0
