"""Incidents and their deliveries, persisted in SQLite so every process that alerts shares one truth.

The monitor and the Dagster sensors (failed runs, failed checks, the crash-loop guard, the monitor
watchdog) all raise alerts here; one open incident per key is enforced by a unique index, so two
processes racing on the same alert still page once. Every notification is a row of an outbox that
notifier workers drain in order per incident and notifier; a worker leases a row before sending, so a
second drainer (the watchdog when the monitor is down) never sends it twice. A trigger that could not be
delivered is retried until it is delivered or its incident resolves; a resolve goes only to notifiers
that received the trigger. State survives restarts: a restarted monitor finds its open incidents, their
healthy streaks and their undelivered notifications where it left them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncall.definitions import Severity

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, name TEXT NOT NULL, severity TEXT NOT NULL,
    title TEXT NOT NULL, summary TEXT NOT NULL, details TEXT NOT NULL, runbook_url TEXT NOT NULL,
    links TEXT NOT NULL, dedup_key TEXT NOT NULL, opened_at REAL NOT NULL, updated_at REAL NOT NULL,
    resolved_at REAL, resolve_reason TEXT, healthy_streak INTEGER NOT NULL DEFAULT 0,
    last_notified_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_incident_per_key ON incidents (key) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL REFERENCES incidents (id), notifier TEXT NOT NULL,
    action TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, lease_until REAL, lease_owner TEXT, delivered_at REAL,
    cancelled_at REAL, outcome TEXT
);
CREATE INDEX IF NOT EXISTS pending_deliveries ON deliveries (notifier, delivered_at, cancelled_at);
CREATE TABLE IF NOT EXISTS notifier_state (
    incident_id INTEGER NOT NULL, notifier TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (incident_id, notifier)
);
CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
TRIGGER, REMINDER, RESOLVE = "trigger", "reminder", "resolve"


@dataclass(frozen=True)
class Alert:
    """What an alert says: raised by the monitor for an SLO, or by Dagster for an event."""

    key: str  # one open incident per key: "<slo>:<severity>" or the event's name
    name: str  # the SLO or event name
    severity: Severity
    title: str
    summary: str  # one line an on-call engineer can act on, with the numbers
    details: dict[str, Any]
    runbook_url: str
    links: dict[str, str] = field(default_factory=dict)  # link text → URL (Dagster pages)


@dataclass(frozen=True)
class Incident:
    id: int
    key: str
    name: str
    severity: Severity
    title: str
    summary: str
    details: dict[str, Any]
    runbook_url: str
    links: dict[str, str]
    dedup_key: str
    opened_at: float
    updated_at: float
    resolved_at: float | None
    resolve_reason: str | None
    healthy_streak: int

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class Delivery:
    id: int
    incident: Incident
    notifier: str
    action: str
    attempts: int  # including the one just leased
    created_at: float


def _incident(row: sqlite3.Row) -> Incident:
    return Incident(
        id=row["id"],
        key=row["key"],
        name=row["name"],
        severity=Severity(row["severity"]),
        title=row["title"],
        summary=row["summary"],
        details=json.loads(row["details"]),
        runbook_url=row["runbook_url"],
        links=json.loads(row["links"]),
        dedup_key=row["dedup_key"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
        resolve_reason=row["resolve_reason"],
        healthy_streak=row["healthy_streak"],
    )


class IncidentBook:
    """The shared incident store. ``notifiers`` are the destinations each notification goes to."""

    def __init__(self, path: Path, notifiers: list[str], source: str) -> None:
        self.path = path
        self.notifiers = list(notifiers)
        self.source = source
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con().executescript(SCHEMA_SQL)  # idempotent; executescript commits, so outside a transaction

    # -- connections --------------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock at once (no upgrade deadlock between processes)."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- incidents ----------------------------------------------------------------------------------
    def open_incident(self, key: str) -> Incident | None:
        row = self._con().execute("SELECT * FROM incidents WHERE key = ? AND resolved_at IS NULL", [key])
        found = row.fetchone()
        return None if found is None else _incident(found)

    def open_incidents(self) -> list[Incident]:
        rows = self._con().execute("SELECT * FROM incidents WHERE resolved_at IS NULL ORDER BY id")
        return [_incident(r) for r in rows.fetchall()]

    def incidents(self, since: float = 0.0) -> list[Incident]:
        rows = self._con().execute("SELECT * FROM incidents WHERE updated_at >= ? ORDER BY id", [since])
        return [_incident(r) for r in rows.fetchall()]

    def raise_alert(self, alert: Alert, now: float, reminder_after_s: float = 0.0) -> tuple[Incident, bool]:
        """Open an incident for ``alert.key`` (and queue its trigger) or update the open one.

        Returns the incident and whether it was opened now. An open incident is never re-triggered; with
        ``reminder_after_s`` it gets a reminder once that long has passed since it was last notified.
        """
        with self._tx() as con:
            row = con.execute("SELECT * FROM incidents WHERE key = ? AND resolved_at IS NULL", [alert.key])
            found = row.fetchone()
            if found is None:
                cursor = con.execute(
                    "INSERT INTO incidents (key, name, severity, title, summary, details, runbook_url, "
                    "links, dedup_key, opened_at, updated_at, last_notified_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        alert.key, alert.name, alert.severity.value, alert.title, alert.summary,
                        json.dumps(alert.details, default=str), alert.runbook_url, json.dumps(alert.links),
                        f"{self.source}/{alert.key}", now, now, now,
                    ],
                )  # fmt: skip
                self._enqueue(con, int(cursor.lastrowid or 0), TRIGGER, now)
                opened = True
                incident_id = int(cursor.lastrowid or 0)
            else:
                incident_id, opened = found["id"], False
                remind = reminder_after_s > 0 and now - found["last_notified_at"] >= reminder_after_s
                con.execute(
                    "UPDATE incidents SET summary = ?, details = ?, links = ?, updated_at = ?, "
                    "healthy_streak = 0, last_notified_at = ? WHERE id = ?",
                    [
                        alert.summary, json.dumps(alert.details, default=str), json.dumps(alert.links), now,
                        now if remind else found["last_notified_at"], incident_id,
                    ],
                )  # fmt: skip
                if remind:
                    self._enqueue(con, incident_id, REMINDER, now)
            incident = _incident(
                con.execute("SELECT * FROM incidents WHERE id = ?", [incident_id]).fetchone()
            )
        return incident, opened

    def heal(self, key: str, now: float, resolve_after: int, reason: str) -> Incident | None:
        """One healthy sample for ``key``'s open incident; resolves it after ``resolve_after`` in a row.

        Returns the incident once resolved, else None.
        """
        with self._tx() as con:
            found = con.execute(
                "SELECT * FROM incidents WHERE key = ? AND resolved_at IS NULL", [key]
            ).fetchone()
            if found is None:
                return None
            streak = found["healthy_streak"] + 1
            if streak < resolve_after:
                con.execute("UPDATE incidents SET healthy_streak = ? WHERE id = ?", [streak, found["id"]])
                return None
            return self._resolve(con, found, now, reason, streak)

    def resolve(self, key: str, now: float, reason: str) -> Incident | None:
        """Resolve ``key``'s open incident at once (events whose source says the problem is gone)."""
        with self._tx() as con:
            found = con.execute(
                "SELECT * FROM incidents WHERE key = ? AND resolved_at IS NULL", [key]
            ).fetchone()
            return None if found is None else self._resolve(con, found, now, reason, found["healthy_streak"])

    def _resolve(
        self, con: sqlite3.Connection, found: sqlite3.Row, now: float, reason: str, streak: int
    ) -> Incident:
        con.execute(
            "UPDATE incidents SET resolved_at = ?, resolve_reason = ?, updated_at = ?, healthy_streak = ? "
            "WHERE id = ?",
            [now, reason, now, streak, found["id"]],
        )
        self._enqueue(con, found["id"], RESOLVE, now)
        return _incident(con.execute("SELECT * FROM incidents WHERE id = ?", [found["id"]]).fetchone())

    def _enqueue(self, con: sqlite3.Connection, incident_id: int, action: str, now: float) -> None:
        con.executemany(
            "INSERT INTO deliveries (incident_id, notifier, action, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(incident_id, notifier, action, now, now) for notifier in self.notifiers],
        )

    # -- the outbox ---------------------------------------------------------------------------------
    def claim(self, notifier: str, owner: str, now: float, lease_s: float = 60.0) -> Delivery | None:
        """Lease the next due notification for ``notifier``, in order per incident; None if nothing is due.

        A trigger or reminder whose incident resolved meanwhile, and a resolve whose trigger never reached
        this notifier, are cancelled on the way (nothing to say any more).
        """
        with self._tx() as con:
            while True:
                row = con.execute(
                    """
                    SELECT d.* FROM deliveries d
                    WHERE d.notifier = ? AND d.delivered_at IS NULL AND d.cancelled_at IS NULL
                      AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)
                      AND NOT EXISTS (
                          SELECT 1 FROM deliveries e
                          WHERE e.incident_id = d.incident_id AND e.notifier = d.notifier AND e.id < d.id
                            AND e.delivered_at IS NULL AND e.cancelled_at IS NULL)
                    ORDER BY d.id LIMIT 1
                    """,
                    [notifier, now, now],
                ).fetchone()
                if row is None:
                    return None
                incident = _incident(
                    con.execute("SELECT * FROM incidents WHERE id = ?", [row["incident_id"]]).fetchone()
                )
                why_not = self._pointless(con, row, incident)
                if why_not is not None:
                    con.execute(
                        "UPDATE deliveries SET cancelled_at = ?, outcome = ? WHERE id = ?",
                        [now, why_not, row["id"]],
                    )
                    continue
                con.execute(
                    "UPDATE deliveries SET lease_until = ?, lease_owner = ?, attempts = attempts + 1 "
                    "WHERE id = ?",
                    [now + lease_s, owner, row["id"]],
                )
                return Delivery(
                    row["id"], incident, notifier, row["action"], row["attempts"] + 1, row["created_at"]
                )

    @staticmethod
    def _pointless(con: sqlite3.Connection, row: sqlite3.Row, incident: Incident) -> str | None:
        if row["action"] in (TRIGGER, REMINDER) and not incident.is_open:
            return "cancelled: the incident resolved before this notification could be delivered"
        if row["action"] == RESOLVE:
            delivered = con.execute(
                "SELECT 1 FROM deliveries WHERE incident_id = ? AND notifier = ? AND action = ? "
                "AND delivered_at IS NOT NULL",
                [row["incident_id"], row["notifier"], TRIGGER],
            ).fetchone()
            if delivered is None:
                return "cancelled: the trigger never reached this notifier, so there is nothing to resolve"
        return None

    def delivered(self, delivery: Delivery, now: float, state: str | None = None) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE deliveries SET delivered_at = ?, lease_until = NULL, outcome = 'delivered' "
                "WHERE id = ?",
                [now, delivery.id],
            )
            if state is not None:
                con.execute(
                    "INSERT OR REPLACE INTO notifier_state VALUES (?, ?, ?)",
                    [delivery.incident.id, delivery.notifier, state],
                )

    def failed(self, delivery: Delivery, error: str, retry_at: float) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE deliveries SET lease_until = NULL, next_attempt_at = ?, outcome = ? WHERE id = ?",
                [retry_at, f"attempt {delivery.attempts} failed: {error}", delivery.id],
            )

    def notifier_state(self, incident_id: int, notifier: str) -> str | None:
        row = self._con().execute(
            "SELECT value FROM notifier_state WHERE incident_id = ? AND notifier = ?", [incident_id, notifier]
        )
        found = row.fetchone()
        return None if found is None else str(found["value"])

    def pending(self) -> list[dict[str, Any]]:
        """Undelivered, uncancelled notifications (for status pages and tests)."""
        rows = self._con().execute(
            "SELECT d.id, i.key, d.notifier, d.action, d.attempts, d.outcome FROM deliveries d "
            "JOIN incidents i ON i.id = d.incident_id WHERE d.delivered_at IS NULL AND d.cancelled_at IS NULL"
        )
        return [dict(r) for r in rows.fetchall()]

    # -- the monitor's memory -----------------------------------------------------------------------
    def recall(self, key: str) -> Any:
        row = self._con().execute("SELECT value FROM memory WHERE key = ?", [key]).fetchone()
        return None if row is None else json.loads(row["value"])

    def remember(self, key: str, value: Any) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO memory VALUES (?, ?)", [key, json.dumps(value)])
