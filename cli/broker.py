"""``netflix-lambda broker``: run the embedded Tansu broker in the foreground and keep it within bounds.

The supervisor (:mod:`embedded_broker.supervisor`) starts Tansu on 127.0.0.1, creates the event and
dead-letter topics, records the broker in ``<data_dir>/broker/broker.json`` (how the producer, the stream
and Dagster find it) and restarts it, empty, when it dies or outgrows its memory cap.

``--status`` prints what the state file says (and the live RSS); ``--stop`` stops a running supervisor.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict

from core.kafka.cluster import KafkaCluster, read_state
from core.processes import process_rss_mb, stop_on_signals, stop_pid
from core.settings import Settings
from embedded_broker.supervisor import supervise

log = logging.getLogger("embedded_broker")


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


def _status(cluster: KafkaCluster) -> int:
    state = read_state(cluster.state_dir)
    if state is None:
        print(f"no embedded broker running (state file {cluster.state_file})")
        return 1
    print(json.dumps({**asdict(state), "rss_mb": process_rss_mb(state.pid)}, indent=2))
    return 0


def _stop(cluster: KafkaCluster) -> int:
    state = read_state(cluster.state_dir)
    if state is None:
        print(f"no embedded broker running (state file {cluster.state_file})")
        return 1
    # Stop the supervisor first, otherwise it would restart the broker we kill.
    if state.supervisor_pid:
        stop_pid(state.supervisor_pid, grace_s=15.0)
    if read_state(cluster.state_dir) is not None:
        stop_pid(state.pid)
        cluster.state_file.unlink(missing_ok=True)
    print(f"stopped the embedded broker on {state.bootstrap_servers} (pid {state.pid})")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [broker] %(message)s")
    cluster = KafkaCluster.from_settings(settings)
    if args.status:
        return _status(cluster)
    if args.stop:
        return _stop(cluster)
    stop = stop_on_signals(log, "stopping the broker")
    return supervise(
        settings, port=args.port, max_rss_mb=args.max_rss_mb, check_interval_s=args.check_interval, stop=stop
    )
