"""A generic JSON webhook in Alertmanager's webhook format (version 4), so alerts plug into whatever
already consumes Alertmanager notifications (Opsgenie, Teams bridges, custom receivers).

``status`` is ``firing`` on trigger and reminder, ``resolved`` on resolve; ``fingerprint`` is stable per
incident key, like Alertmanager's label fingerprint.
"""

from __future__ import annotations

import hashlib
from typing import Any

from oncall.incidents import RESOLVE
from oncall.notifiers.base import Notification
from oncall.notifiers.http import post_json
from oncall.sample import iso

ZERO_TIME = "0001-01-01T00:00:00Z"


def alertmanager_payload(note: Notification) -> dict[str, Any]:
    incident = note.incident
    status = "resolved" if note.action == RESOLVE else "firing"
    labels = {
        "alertname": incident.name,
        "severity": incident.severity.value,
        "incident_key": incident.key,
        "source": note.source,
        "service": "netflix-lambda",
    }
    annotations = {
        "summary": incident.summary,
        "description": incident.details.get("headline", incident.title),
        "runbook_url": incident.runbook_url,
        "title": incident.title,
    }
    generator = next(iter(incident.links.values()), incident.runbook_url)
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(incident.opened_at),
        "endsAt": iso(incident.resolved_at) if incident.resolved_at else ZERO_TIME,
        "generatorURL": generator,
        "fingerprint": hashlib.sha256(incident.dedup_key.encode()).hexdigest()[:16],
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{incident.name}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "netflix-lambda",
        "groupLabels": {"alertname": incident.name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": generator,
        "alerts": [alert],
    }


class AlertmanagerWebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, token: str | None = None) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def send(self, note: Notification) -> str | None:
        post_json(self._url, alertmanager_payload(note), headers=self._headers)
        return None
