"""What every notifier receives and how it reports a failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from oncall.definitions import Severity
from oncall.incidents import REMINDER, RESOLVE, TRIGGER, Incident
from oncall.sample import iso

ACTION_WORDS = {TRIGGER: "", REMINDER: "STILL OPEN: ", RESOLVE: "RESOLVED: "}


class DeliveryFailed(Exception):
    """The destination did not accept the notification.

    ``permanent`` failures (a wrong key, an unknown channel) will not heal by retrying soon: they are
    retried at the slowest pace and the message says what to fix. ``retry_after_s`` is the destination's
    own request (HTTP 429 Retry-After).
    """

    def __init__(self, message: str, retry_after_s: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.permanent = permanent


@dataclass(frozen=True)
class Notification:
    action: str  # trigger, reminder or resolve
    incident: Incident
    source: str  # this deployment's name
    thread: str | None = None  # what the notifier stored at the trigger (a Slack message ts)

    @property
    def severity_word(self) -> str:
        return "PAGE" if self.incident.severity is Severity.PAGE else "TICKET"

    def line(self) -> str:
        """The alert in one sentence, as the terminal, the alert log and chat show it."""
        incident = self.incident
        if self.action == RESOLVE:
            open_for = (incident.resolved_at or incident.updated_at) - incident.opened_at
            return (
                f"RESOLVED {self.severity_word.lower()} [{incident.name}] {incident.title}: "
                f"{incident.resolve_reason or 'healthy again'} (open {_duration(open_for)}, since "
                f"{iso(incident.opened_at)}). Runbook: {incident.runbook_url}"
            )
        return (
            f"{ACTION_WORDS[self.action]}{self.severity_word} [{incident.name}] {incident.summary} "
            f"Runbook: {incident.runbook_url}"
        )


class Notifier(Protocol):
    name: str

    def send(self, note: Notification) -> str | None:
        """Deliver or raise :class:`DeliveryFailed`; may return state to keep (a thread id)."""


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
