"""The embedded default: an alert log (one JSON object per line) and an ERROR line in the log of the
process that delivered it. ``netflix-lambda up`` follows the alert log and prints every new alert on its
terminal (``follow``), whichever process wrote it; the Dagster UI shows the same alerts as failing checks
of the ``slo_status`` asset.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from oncall.incidents import RESOLVE
from oncall.notifiers.base import Notification
from oncall.sample import iso

log = logging.getLogger("oncall.alerts")


def entry(note: Notification) -> dict[str, Any]:
    incident = note.incident
    return {
        "at": iso(time.time()),
        "action": note.action,
        "severity": incident.severity.value,
        "key": incident.key,
        "name": incident.name,
        "dedup_key": incident.dedup_key,
        "summary": incident.summary,
        "line": note.line(),
        "runbook": incident.runbook_url,
        "links": incident.links,
        "opened_at": iso(incident.opened_at),
        "resolved_at": iso(incident.resolved_at) if incident.resolved_at else None,
        "details": incident.details,
        "source": note.source,
    }


class AlertLogNotifier:
    name = "log"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, note: Notification) -> str | None:
        line = json.dumps(entry(note), default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as out:  # one write per line: readers never see half
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
        (log.info if note.action == RESOLVE else log.error)("%s", note.line())
        return None


class AlertLogFollower:
    """New complete lines of the alert log since the last call (from its end when first opened)."""

    def __init__(self, path: Path, from_start: bool = False) -> None:
        self.path = path
        self.offset = 0 if from_start or not path.exists() else path.stat().st_size

    def new_entries(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as source:
                source.seek(self.offset)
                chunk = source.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        entries = []
        for raw in complete.splitlines():
            try:
                entries.append(json.loads(raw))
            except json.JSONDecodeError:
                entries.append({"action": "unreadable", "line": raw.decode(errors="replace")})
        return entries
