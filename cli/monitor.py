"""``netflix-lambda monitor``: the SLO monitor in the foreground (``netflix-lambda up`` supervises one).

Exit codes: 0 after SIGINT/SIGTERM, 2 when the SLO file or the notifier settings are wrong (the message
names the key; restarting will not help), 3 when a sample hung (the supervisor restarts it), 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

from cli.services import Service
from core.processes import stop_on_signals
from core.settings import Settings
from oncall.definitions import SloFileError, load_slo_book
from oncall.history import HistoryBusy

log = logging.getLogger("oncall.monitor")
supervision = logging.getLogger("cli.monitor")  # the launcher's terminal shows its cli.* loggers
CONFIG_ERROR_EXIT_CODE = 2
STALL_EXIT_CODE = 3  # oncall.monitor.STALL_EXIT_CODE (not imported here: it loads DuckDB and Kafka)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-file", type=Path, default=None, help="log here instead of the terminal")
    parser.add_argument(
        "--no-traffic-expected",
        action="store_true",
        help="no producer is expected: the input-traffic SLO records samples but never warns",
    )
    parser.add_argument("--check", action="store_true", help="check the SLO file and notifiers, then exit")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.log_file:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler = (
        logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if args.no_traffic_expected:
        settings = settings.model_copy(update={"slo_traffic_expected": False})
    try:
        slos = load_slo_book(settings)
    except SloFileError as exc:
        log.error("the SLO monitor cannot start: %s", exc)
        return CONFIG_ERROR_EXIT_CODE
    if args.check:
        log.info("SLO file %s: %d SLOs, %d event alerts; notifiers %s", slos.source, len(slos.slos),
                 len(slos.events), ", ".join(settings.notifier_names))  # fmt: skip
        return 0
    from oncall.monitor import Monitor  # Kafka client, DuckDB: only when really monitoring

    stop = stop_on_signals(log, "stopping the SLO monitor")
    try:
        monitor = Monitor(settings, slos)
    except HistoryBusy as exc:
        log.error("%s", exc)
        return 1
    return monitor.run(stop)


class SupervisedMonitor:
    """The SLO monitor as one service of ``netflix-lambda up``: checked before anything starts, restarted
    (with an ERROR line saying so) when it dies, and its alerts echoed on the launcher's terminal from the
    alert log, whichever process delivered them (the monitor, or Dagster's watchdog).

    The launcher runs it as a :class:`cli.services.Service` (:meth:`service`): the supervisor starts the
    process, asks :meth:`restart_delay` when it exits and calls :meth:`echo_alerts` every loop. A caller
    with a ``spawn`` of its own drives it with :meth:`start`, :meth:`exited` and :meth:`poll` instead.
    """

    NAME = "slo monitor"
    QUICK_DEATH_S = 10.0  # dying sooner than this after a start slows the restarts down (1, 2, 4 … 60 s)

    def __init__(
        self,
        settings: Settings,
        executable: str,
        traffic_expected: bool,
        spawn: Callable[[str, list[str]], object] | None = None,
    ) -> None:
        from oncall.notifiers.alert_log import AlertLogFollower

        self.settings = settings
        self.spawn = spawn
        self.log_file = settings.oncall_dir / "monitor.log"
        self.argv = [executable, "monitor", "--log-file", str(self.log_file)]
        if not traffic_expected:
            self.argv.append("--no-traffic-expected")
        self.alerts = AlertLogFollower(settings.resolved_alert_log_file)
        self.restarts = 0
        self.quick_deaths = 0
        self.started_at = time.monotonic()
        self.restart_at: float | None = None

    def check(self) -> None:
        """Fail the launch at once, naming the key, if the SLO file is malformed."""
        try:
            load_slo_book(self.settings)
        except SloFileError as exc:
            raise SystemExit(f"the SLO monitor cannot start: {exc}") from None

    def started_sentence(self) -> str:
        return (
            f"SLO monitor started: alerts go to {', '.join(self.settings.notifier_names)}; alert log "
            f"{self.settings.resolved_alert_log_file}, monitor log {self.log_file}"
        )

    def service(self, after: tuple[str, ...] = ()) -> Service:
        """This monitor as a unit of the launcher's stack (its output, tracebacks included, in
        ``slo-monitor.log`` beside the others; its own log where :attr:`log_file` says)."""
        return Service(
            self.NAME, self.argv, says=self.started_sentence(), after=after,
            restart_after=self.restart_delay, log_name="slo-monitor.log",
        )  # fmt: skip

    def start(self) -> None:
        assert self.spawn is not None, "start() needs a spawn; the launcher's supervisor starts the service"
        self.started_at = time.monotonic()
        self.spawn(self.NAME, self.argv)
        supervision.info("%s", self.started_sentence())

    def restart_delay(self, code: int | None) -> float | None:
        """The monitor exited: seconds until it starts again (said as an error: nobody watches the SLOs
        meanwhile), or None when its configuration is wrong (restarting cannot help)."""
        if code == CONFIG_ERROR_EXIT_CODE:
            supervision.error(
                "the SLO monitor cannot start (its configuration is wrong); see %s", self.log_file
            )
            return None
        quick = time.monotonic() - self.started_at < self.QUICK_DEATH_S
        self.quick_deaths = self.quick_deaths + 1 if quick else 0
        delay = float(min(2 ** (self.quick_deaths - 1), 60)) if quick else 0.0
        self.restarts += 1
        self.started_at = time.monotonic() + delay  # when the next process starts
        supervision.error(
            "the SLO monitor exited with code %s%s; restarting it in %.0f s (restart %d). Nobody watches the "
            "SLOs until it is back; its log: %s",
            code,
            " (one of its samples hung)" if code == STALL_EXIT_CODE else "",
            delay,
            self.restarts,
            self.log_file,
        )
        return delay

    def exited(self, code: int | None) -> bool:
        """The monitor exited: schedule its restart (True), or not when its configuration is wrong."""
        delay = self.restart_delay(code)
        if delay is None:
            return False
        self.restart_at = time.monotonic() + delay
        return True

    def poll(self) -> None:
        """Every loop of a caller's own supervision: restart when due, echo new alerts."""
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.restart_at = None
            self.start()
        self.echo_alerts()

    def echo_alerts(self) -> None:
        """New lines of the alert log on the terminal: pages as errors, resolves as warnings."""
        for entry in self.alerts.new_entries():
            (supervision.warning if entry.get("action") == "resolve" else supervision.error)(
                "ALERT %s", entry.get("line")
            )
