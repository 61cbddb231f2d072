"""The monitor's heartbeat and its latest status, as small JSON files others read without a lock.

``heartbeat.json`` is rewritten after every successful sample; the Dagster watchdog pages when it is older
than ``NETFLIX_MONITOR_HEARTBEAT_MAX_AGE_S``, unless the monitor said it stopped on purpose.
``slo_status.json`` is the last sample's status per SLO, for the Dagster ``slo_status`` asset.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HEARTBEAT_FILE = "heartbeat.json"
STATUS_FILE = "slo_status.json"
RUNNING, STOPPED = "running", "stopped"


@dataclass(frozen=True)
class Heartbeat:
    pid: int
    host: str
    started_at: float
    at: float  # last successful sample
    samples: int
    state: str  # running, or stopped (on purpose: no watchdog page)
    last_sample_s: float = 0.0
    cpu_s: float = 0.0  # the monitor's CPU time so far (for the benchmark's cost per sample)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_heartbeat(folder: Path, beat: Heartbeat) -> None:
    write_json(folder / HEARTBEAT_FILE, asdict(beat))


def read_heartbeat(folder: Path) -> Heartbeat | None:
    document = read_json(folder / HEARTBEAT_FILE)
    try:
        return None if document is None else Heartbeat(**document)
    except TypeError:
        return None
