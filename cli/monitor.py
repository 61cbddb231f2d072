"""``netflix-lambda monitor``: the SLO monitor in the foreground (``netflix-lambda up`` supervises one).

Exit codes: 0 after SIGINT/SIGTERM, 2 when the SLO file or the notifier settings are wrong (the message
names the key; restarting will not help), 3 when a sample hung (the supervisor restarts it), 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from core.processes import stop_on_signals
from core.settings import Settings
from oncall.definitions import SloFileError, load_slo_book
from oncall.history import HistoryBusy

log = logging.getLogger("oncall.monitor")
CONFIG_ERROR_EXIT_CODE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-file", type=Path, default=None, help="log here instead of the terminal")
    parser.add_argument(
        "--no-traffic-expected",
        action="store_true",
        help="no producer is expected: the input-traffic SLO records samples but never warns",
    )
    parser.add_argument("--check", action="store_true", help="check the SLO file and notifiers, then exit")


def run(args: argparse.Namespace, settings: Settings) -> int:
    handler: logging.Handler = (
        logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    )
    if args.log_file:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
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
