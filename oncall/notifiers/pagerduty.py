"""PagerDuty Events API v2: trigger and resolve by a stable ``dedup_key`` per SLO and severity (or event).

Plain HTTP (``oncall.notifiers.http``), not ``pypd``/``dagster-pagerduty``: pypd is deprecated since 2020
and posts to a class-level URL a test cannot point elsewhere. A reminder is a trigger with the same
``dedup_key``, which PagerDuty adds to the open incident's log without paging again.
"""

from __future__ import annotations

from typing import Any

from oncall.definitions import Severity
from oncall.incidents import RESOLVE
from oncall.notifiers.base import DeliveryFailed, Notification
from oncall.notifiers.http import post_json
from oncall.sample import iso

SEVERITY = {Severity.PAGE: "critical", Severity.TICKET: "warning"}
SUMMARY_MAX = 1024


class PagerDutyNotifier:
    name = "pagerduty"

    def __init__(self, events_url: str, routing_key: str) -> None:
        if not routing_key.strip():
            raise ValueError("PagerDuty routing key is empty (NETFLIX_PAGERDUTY_ROUTING_KEY)")
        self.events_url = events_url
        self._routing_key = routing_key

    def event(self, note: Notification) -> dict[str, Any]:
        """The Events API v2 body for one notification."""
        incident = note.incident
        if note.action == RESOLVE:
            return {
                "routing_key": self._routing_key,
                "event_action": "resolve",
                "dedup_key": incident.dedup_key,
            }
        links = [{"href": incident.runbook_url, "text": f"Runbook: {incident.title}"}]
        links += [{"href": url, "text": text} for text, url in incident.links.items()]
        return {
            "routing_key": self._routing_key,
            "event_action": "trigger",
            "dedup_key": incident.dedup_key,
            "payload": {
                "summary": f"[{incident.name}] {incident.summary}"[:SUMMARY_MAX],
                "source": note.source,
                "severity": SEVERITY[incident.severity],
                "timestamp": iso(incident.opened_at),
                "component": incident.name,
                "group": "netflix-lambda",
                "class": incident.key,
                "custom_details": {**incident.details, "runbook": incident.runbook_url},
            },
            "links": links,
            "client": "netflix-lambda SLO monitor",
            **({"client_url": next(iter(incident.links.values()))} if incident.links else {}),
        }

    def send(self, note: Notification) -> str | None:
        status, text = post_json(self.events_url, self.event(note))
        if status != 202 and '"success"' not in text:
            raise DeliveryFailed(f"PagerDuty answered HTTP {status} without success: {text[:200]}")
        return None
