"""What ``netflix-lambda up`` prints: one sentence per stage on the terminal, everything in files.

The terminal gets the launcher's own sentences at ``NETFLIX_LOG_LEVEL`` (INFO by default): stages, warnings
and errors with what to do about them. Everything else goes to files under ``<data_dir>/logs/``: the
launcher's own log at DEBUG (``up.log``) and one file per process it starts (Dagster's run events, Spark,
dbt, the broker, the producer). ``NETFLIX_LOG_LEVEL=DEBUG`` also echoes those files to the terminal.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from cli.services import rotate

LAUNCHER_LOG = "up.log"
_PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}


class _Sentences(logging.Formatter):
    """``12:03:04  text``, with ``warning:``/``error:`` in front of problems."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp}  {_PREFIX.get(record.levelno, '')}{record.getMessage()}"


def configure(log_dir: Path, level: str) -> Path:
    """Terminal at ``level``, ``up.log`` at DEBUG; Python warnings to the file only. Returns the file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / LAUNCHER_LOG
    rotate(path)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(level)
    console.setFormatter(_Sentences())
    console.addFilter(lambda record: record.name.startswith("cli.") or record.levelno >= logging.ERROR)
    file = logging.FileHandler(path)
    file.setLevel(logging.DEBUG)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    root.addHandler(console)
    root.addHandler(file)
    logging.captureWarnings(True)  # library warnings: to up.log (logger py.warnings), never the terminal
    return path
