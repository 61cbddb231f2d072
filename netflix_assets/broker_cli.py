"""``netflix-lambda broker``: run the embedded Tansu broker in the foreground and keep it within bounds.

The supervisor starts Tansu on 127.0.0.1, creates the event and dead-letter topics, records itself in
``<data_dir>/broker/broker.json`` (how the producer, the stream and Dagster find it) and then watches it:

* Tansu keeps every message in memory and never frees it (about 370 MB after 1.4 M events). Above
  ``NETFLIX_EMBEDDED_BROKER_MAX_RSS_MB`` the supervisor restarts it **empty**, on the same port, with a new
  cluster id; the stream sees the new id and, instead of silently reading from the wrong offsets, logs
  the loss at ERROR, archives its checkpoint and starts over from the new topic (``streaming.broker_reset``).
  At the run command's 5 events/s that is a restart every week or so.
* If Tansu dies, it is restarted the same way and the restart is logged as an error.

``--status`` prints what the state file says (and the live RSS); ``--stop`` stops a running supervisor.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict

from netflix_assets.broker import (
    EmbeddedBroker,
    default_topics,
    process_rss_mb,
    read_state,
    state_file,
    stop_pid,
)
from netflix_assets.settings import Settings

log = logging.getLogger("netflix_assets.broker")
STATUS_EVERY_S = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="print the running broker's state and exit")
    action.add_argument("--stop", action="store_true", help="stop the running broker (and its supervisor)")
    parser.add_argument(
        "--port", type=int, default=None, help="port on 127.0.0.1 (default: settings, 0 = free)"
    )
    parser.add_argument(
        "--max-rss-mb",
        type=int,
        default=None,
        help="restart the broker empty above this RSS (default: settings)",
    )
    parser.add_argument("--check-interval", type=float, default=5.0, help="seconds between health/RSS checks")


def supervise(
    settings: Settings,
    *,
    port: int | None = None,
    max_rss_mb: float | None = None,
    check_interval_s: float = 5.0,
    stop: threading.Event | None = None,
) -> int:
    """Run the broker until ``stop`` is set; restart it (empty) when it dies or outgrows ``max_rss_mb``."""
    stop = stop or threading.Event()
    cap = max_rss_mb if max_rss_mb is not None else settings.embedded_broker_max_rss_mb
    running = read_state(settings)
    if running is not None:
        log.error(
            "an embedded broker is already running on %s (pid %d, supervisor %s); stop it with "
            "`netflix-lambda broker --stop` first",
            running.bootstrap_servers,
            running.pid,
            running.supervisor_pid,
        )
        return 1
    topics = default_topics(settings)
    broker = EmbeddedBroker(settings, port=port, supervisor_pid=os.getpid(), topics=topics)
    broker.start()
    log.info(
        "broker supervisor running: bootstrap %s, topics %s, RSS cap %d MB (checked every %.0f s); "
        "Ctrl-C stops it",
        broker.bootstrap_servers,
        ", ".join(f"{t} ({n} partitions)" for t, n in topics.items()),
        cap,
        check_interval_s,
    )
    last_status = time.monotonic()
    try:
        while not stop.wait(check_interval_s):
            reason = None
            if not broker.is_running():
                reason = "the Tansu process died"
            else:
                rss = broker.rss_mb() or 0.0
                if rss > cap:
                    reason = (
                        f"its memory reached {rss:.0f} MB, above the {cap} MB cap "
                        "(NETFLIX_EMBEDDED_BROKER_MAX_RSS_MB)"
                    )
                elif time.monotonic() - last_status >= STATUS_EVERY_S:
                    log.info(
                        "broker %s healthy: RSS %.0f MB of %d MB cap", broker.bootstrap_servers, rss, cap
                    )
                    last_status = time.monotonic()
            if reason is None:
                continue
            old_cluster = broker.cluster_id
            log.error(
                "RESTARTING THE EMBEDDED BROKER EMPTY because %s. Every event it held is gone (memory-only "
                "storage); consumers will see cluster id change from %s and must reset their offsets. "
                "This is restart number %d.",
                reason,
                old_cluster,
                broker.restarts + 1,
            )
            broker.restart()
            log.error(
                "embedded broker back on %s with new cluster id %s",
                broker.bootstrap_servers,
                broker.cluster_id,
            )
    finally:
        broker.stop()
    return 0


def _status(settings: Settings) -> int:
    state = read_state(settings)
    if state is None:
        print(f"no embedded broker running (state file {state_file(settings)})")
        return 1
    print(json.dumps({**asdict(state), "rss_mb": process_rss_mb(state.pid)}, indent=2))
    return 0


def _stop(settings: Settings) -> int:
    state = read_state(settings)
    if state is None:
        print(f"no embedded broker running (state file {state_file(settings)})")
        return 1
    # Stop the supervisor first, otherwise it would restart the broker we kill.
    if state.supervisor_pid:
        stop_pid(state.supervisor_pid, grace_s=15.0)
    if read_state(settings) is not None:
        stop_pid(state.pid)
        state_file(settings).unlink(missing_ok=True)
    print(f"stopped the embedded broker on {state.bootstrap_servers} (pid {state.pid})")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [broker] %(message)s")
    if args.status:
        return _status(settings)
    if args.stop:
        return _stop(settings)
    stop = threading.Event()

    def _request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: stopping the broker", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    return supervise(
        settings, port=args.port, max_rss_mb=args.max_rss_mb, check_interval_s=args.check_interval, stop=stop
    )
