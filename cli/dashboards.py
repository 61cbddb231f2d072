"""``netflix-lambda dashboards``: serve the two dashboards (Streamlit) on 127.0.0.1 in the foreground.

Prints each dashboard's URL, then becomes the Streamlit server (``exec``), so whoever started it (the run
command's supervisor, a terminal) stops it by its PID with SIGINT or SIGTERM. The pages only read the
published warehouse and the speed layer's snapshots (``dashboards/data.py``).
"""

from __future__ import annotations

import argparse
import os
import sys

from core.settings import Settings
from dashboards.links import DASHBOARDS, dashboard_url
from dashboards.server import streamlit_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: setting)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    for dashboard in DASHBOARDS:
        print(f"{dashboard.title}: {dashboard_url(settings, dashboard, args.port)}", flush=True)
    command = streamlit_command(settings, args.port)
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached
