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

from core.processes import stop_on_signals
from core.settings import Settings
from oncall.definitions import SloFileError, load_slo_book
from oncall.history import HistoryBusy

log = logging.getLogger("oncall.monitor")
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
    alert log, whichever process delivered them (the monitor, or Dagster's watchdog)."""

    NAME = "slo monitor"
    QUICK_DEATH_S = 10.0  # dying sooner than this after a start slows the restarts down (1, 2, 4 … 60 s)

    def __init__(
        self,
        settings: Settings,
        executable: str,
        traffic_expected: bool,
        spawn: Callable[[str, list[str]], object],
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
        self.started_at = 0.0
        self.restart_at: float | None = None

    def check(self) -> None:
        """Fail the launch at once, naming the key, if the SLO file is malformed."""
        try:
            load_slo_book(self.settings)
        except SloFileError as exc:
            raise SystemExit(f"the SLO monitor cannot start: {exc}") from None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.spawn(self.NAME, self.argv)
        log.info("SLO monitor started: alerts go to %s; alert log %s, monitor log %s",
                 ", ".join(self.settings.notifier_names), self.settings.resolved_alert_log_file,
                 self.log_file)  # fmt: skip

    def exited(self, code: int | None) -> bool:
        """The monitor exited: schedule its restart (True), or not when its configuration is wrong."""
        if code == CONFIG_ERROR_EXIT_CODE:
            log.error("the SLO monitor cannot start (its configuration is wrong); see %s", self.log_file)
            return False
        quick = time.monotonic() - self.started_at < self.QUICK_DEATH_S
        self.quick_deaths = self.quick_deaths + 1 if quick else 0
        delay = float(min(2 ** (self.quick_deaths - 1), 60)) if quick else 0.0
        self.restart_at = time.monotonic() + delay
        log.error(
            "the SLO monitor exited with code %s%s; restarting it in %.0f s (restart %d). Nobody watches the "
            "SLOs until it is back; its log: %s",
            code,
            " (one of its samples hung)" if code == STALL_EXIT_CODE else "",
            delay,
            self.restarts + 1,
            self.log_file,
        )
        return True

    def poll(self) -> None:
        """Every supervisor loop: restart when due, echo new alerts."""
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.restart_at = None
            self.restarts += 1
            self.start()
        for entry in self.alerts.new_entries():
            (log.warning if entry.get("action") == "resolve" else log.error)("ALERT %s", entry.get("line"))
