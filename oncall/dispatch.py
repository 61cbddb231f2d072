"""Draining the outbox: one worker per notifier, retries with exponential backoff, failures in words.

A notifier that is down holds up only its own worker: PagerDuty answering 500 does not delay the alert
log or Slack. Each attempt leases the notification (``IncidentBook.claim``), so the Dagster watchdog can
drain the same outbox when the monitor is gone without sending anything twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from oncall.incidents import Delivery, IncidentBook
from oncall.notifiers.base import DeliveryFailed, Notification, Notifier

log = logging.getLogger("oncall.dispatch")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
PERMANENT_RETRY_S = 300.0  # a wrong key or channel: keep trying, slowly, and keep saying what to fix
POLL_S = 0.5


def backoff_s(attempts: int, failure: DeliveryFailed) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones."""
    if failure.permanent:
        return PERMANENT_RETRY_S
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0))
    if failure.retry_after_s:
        delay = max(delay, min(failure.retry_after_s, PERMANENT_RETRY_S))
    return delay


def _what(delivery: Delivery) -> str:
    incident = delivery.incident
    kind = "page" if incident.severity.value == "page" else "ticket"
    return f"the {delivery.action} of {kind} [{incident.name}] {incident.title!r}"


class Dispatcher:
    """Delivers the outbox's due notifications through ``notifiers``."""

    def __init__(
        self,
        book: IncidentBook,
        notifiers: dict[str, Notifier],
        source: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.notifiers = notifiers
        self.source = source
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._wake = threading.Event()

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    def deliver_next(self, name: str) -> bool:
        """One attempt at the next due notification for notifier ``name``; False when none is due."""
        delivery = self.book.claim(name, self.owner, self.clock())
        if delivery is None:
            return False
        note = Notification(
            delivery.action,
            delivery.incident,
            self.source,
            self.book.notifier_state(delivery.incident.id, name),
        )
        try:
            state = self.notifiers[name].send(note)
        except Exception as exc:  # any failure keeps the notification for a retry
            failure = (
                exc if isinstance(exc, DeliveryFailed) else DeliveryFailed(f"{type(exc).__name__}: {exc}")
            )
            self._failed(delivery, failure)
            return True
        self.book.delivered(delivery, self.clock(), state)
        if delivery.attempts > 1:
            log.warning(
                "delivered %s to %s after %d attempts (%.0f s late)",
                _what(delivery),
                name,
                delivery.attempts,
                self.clock() - delivery.created_at,
            )
        else:
            log.info("delivered %s to %s", _what(delivery), name)
        return True

    def _failed(self, delivery: Delivery, failure: DeliveryFailed) -> None:
        delay = backoff_s(delivery.attempts, failure)
        self.book.failed(delivery, str(failure), self.clock() + delay)
        if delivery.attempts <= 3 or delivery.attempts % 10 == 0:
            log.error(
                "could not deliver %s to %s (attempt %d): %s. Retrying in %.0f s; the alert is kept until "
                "it is delivered or the incident resolves.",
                _what(delivery),
                delivery.notifier,
                delivery.attempts,
                failure,
                delay,
            )

    def drain(self, budget_s: float = 20.0) -> int:
        """Deliver everything due now, within ``budget_s`` (the watchdog's and the tests' way)."""
        deadline = time.monotonic() + budget_s
        done = 0
        for name in self.notifiers:
            while time.monotonic() < deadline and self.deliver_next(name):
                done += 1
        return done

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """One daemon worker per notifier until ``stop`` is set."""
        workers = [
            threading.Thread(target=self._work, args=(name, stop), name=f"notify-{name}", daemon=True)
            for name in self.notifiers
        ]
        for worker in workers:
            worker.start()
        return workers

    def _work(self, name: str, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                busy = self.deliver_next(name)
            except Exception:  # the store itself failed (disk full?): say so, keep going
                log.exception("the %s notifier's worker failed reading the outbox; retrying", name)
                busy = False
            if not busy:
                self._wake.wait(POLL_S)
                self._wake.clear()
