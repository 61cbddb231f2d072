"""The SLO monitor: sample every SLI, keep the history, open and resolve incidents, deliver notifications.

A supervised process (``netflix-lambda monitor``, started by ``netflix-lambda up``), not a Dagster sensor:
docs/slos.md has the argument (30 s budget vs the sensor daemon's pace, no shared fate with the daemon).
Every ``NETFLIX_SLO_SAMPLE_INTERVAL_S`` it reads the topic, the stream's checkpoint and ledger and the
batch warehouse once (``oncall.readings``), computes one sample per SLO, appends them to ``slo_samples``,
evaluates hard breaches and burn-rate rules, and raises or heals incidents; notifier workers deliver in
the background, so a slow destination never delays a sample. A sample that hangs longer than
``NETFLIX_MONITOR_HEARTBEAT_MAX_AGE_S`` makes the process exit (status 3) so its supervisor restarts it
and says so; the Dagster watchdog pages if the heartbeat stops while nobody restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import psutil

from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster, read_state
from core.settings import Settings
from core.warehouse import Warehouse, WarehouseLayout
from oncall.alerts import Links, event_alert, slo_alert, source_name
from oncall.budget import SloStatus, evaluate
from oncall.definitions import Severity, SloBook, load_slo_book
from oncall.dispatch import Dispatcher
from oncall.heartbeat import RUNNING, STATUS_FILE, STOPPED, Heartbeat, write_heartbeat, write_json
from oncall.history import SampleHistory
from oncall.incidents import IncidentBook
from oncall.indicators import SLIS, Context
from oncall.notifiers import build_notifiers
from oncall.readings import Readings, TopicReading, TopicUnavailable, TopicWatch
from oncall.warehouse_reader import open_warehouse_reader

log = logging.getLogger("oncall.monitor")

STALL_EXIT_CODE = 3
BROKER_FAILURES_TO_PAGE = 3  # consecutive unreadable samples before "broker unreachable" pages
SUMMARY_EVERY_S = 60.0
INCIDENTS_FILE = "incidents.sqlite"


def incident_book(settings: Settings, notifiers: list[str]) -> IncidentBook:
    """The shared incident store of this deployment (monitor and Dagster sensors alike)."""
    return IncidentBook(settings.oncall_dir / INCIDENTS_FILE, notifiers, source_name(settings))


class Monitor:
    def __init__(
        self, settings: Settings, slos: SloBook | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.slos = slos or load_slo_book(settings)
        self.clock = clock
        self.interval_s = settings.slo_sample_interval_s
        self.links = Links.from_settings(settings)
        self.notifiers = build_notifiers(settings)
        self.incidents = incident_book(settings, list(self.notifiers))
        self.dispatcher = Dispatcher(self.incidents, self.notifiers, source_name(settings), clock)
        self.layout = WarehouseLayout.from_settings(settings)
        self.history = SampleHistory(self.layout, retention_s=self.slos.budget_window_s + 86400)
        self.cluster = KafkaCluster.from_settings(settings)
        self.topic_watch = TopicWatch(self.cluster, Bucket.from_settings(settings))
        self.warehouse = open_warehouse_reader(Warehouse.from_settings(settings))
        self.started_at = clock()
        self.context = Context(
            monitor_started_at=self.started_at,
            traffic_expected=settings.slo_traffic_expected,
        )
        self.samples = 0
        self.topic_failures = 0
        self._sampling_since: float | None = None  # monotonic start of the sample in progress
        self._last_summary = 0.0

    def close(self) -> None:
        self.history.close()
        self.topic_watch.close()
        self.warehouse.close()

    # -- one sample -----------------------------------------------------------------------------------
    def tick(self) -> list[SloStatus]:
        now = self.clock()
        readings = Readings(self.topic_watch, self.warehouse, now)
        samples = [SLIS[slo.sli](slo, readings, self.context) for slo in self.slos.slos.values()]
        self.history.append(samples)
        counts = self.history.counts(now, self.slos.windows())
        statuses = [
            evaluate(slo, sample, counts.get(slo.name, {}), self.interval_s, self.slos.budget_window_s)
            for slo, sample in zip(self.slos.slos.values(), samples, strict=True)
        ]
        for status in statuses:
            self._alert_on(status, now)
        self._watch_broker(readings, now)
        self.dispatcher.wake()
        self.history.publish(now, [s.row() for s in statuses])
        write_json(self.settings.oncall_dir / STATUS_FILE, self._status_document(now, statuses))
        self.samples += 1
        return statuses

    def _alert_on(self, status: SloStatus, now: float) -> None:
        """Raise, keep or heal the SLO's incident at each severity it can alert at."""
        slo = status.slo
        for severity in slo.severities():
            key = f"{slo.name}:{severity.value}"
            rules = status.firing(severity)
            if rules:
                alert = slo_alert(status, severity, rules, self.links)
                incident, opened = self.incidents.raise_alert(alert, now, self.slos.reminder_after_s)
                if opened:
                    log.warning("incident %d opened: %s", incident.id, alert.summary)
                continue
            if slo.hard_breach is severity and status.sample.good is not True:
                continue  # heals only on a measured healthy value; "no data" keeps the streak as it is
            headline = status.sample.details.get("headline", "")
            reason = f"{headline} ({self.slos.resolve_after_samples} healthy samples in a row)"
            resolved = self.incidents.heal(key, now, self.slos.resolve_after_samples, reason)
            if resolved is not None:
                log.warning("incident %d resolved: %s", resolved.id, reason)

    def _watch_broker(self, readings: Readings, now: float) -> None:
        """Alerts that are not SLIs: the broker unreachable, the embedded broker restarted empty."""
        try:
            topic = readings.topic()
        except TopicUnavailable as exc:
            self.topic_failures += 1
            if self.topic_failures >= BROKER_FAILURES_TO_PAGE:
                seconds = self.topic_failures * self.interval_s
                summary = f"the topic has been unreadable for {seconds:.0f} s: {exc}"
                event = self.slos.events["broker_unreachable"]
                self.incidents.raise_alert(event_alert(event, summary, {"error": str(exc)}, self.links), now)
            return
        self.topic_failures = 0
        reason = f"the topic is readable again ({sum(topic.end_offsets.values()):,} messages)"
        self.incidents.heal("broker_unreachable", now, self.slos.resolve_after_samples, reason)
        if self.cluster.embedded:
            self._watch_embedded_restarts(topic, now)

    def _watch_embedded_restarts(self, topic: TopicReading, now: float) -> None:
        state = read_state(self.cluster.state_dir)
        if state is None:
            return
        seen = self.incidents.recall("embedded_broker") or {}
        same_supervisor = seen.get("supervisor_pid") == state.supervisor_pid
        if same_supervisor and state.restarts > int(seen.get("restarts", 0)):
            summary = (
                f"the embedded broker was restarted EMPTY (restart #{state.restarts}, new cluster id "
                f"{state.cluster_id}): every event it held is gone; the stream starts over on the new topic"
            )
            details = {
                "restarts": state.restarts,
                "cluster_id": state.cluster_id,
                "previous_cluster_id": seen.get("cluster_id"),
                "broker_log": state.log_file,
            }
            event = self.slos.events["broker_restarted_empty"]
            self.incidents.raise_alert(event_alert(event, summary, details, self.links), now)
        current = {
            "supervisor_pid": state.supervisor_pid,
            "restarts": state.restarts,
            "cluster_id": state.cluster_id,
        }
        if current != seen:
            self.incidents.remember("embedded_broker", current)
        if topic.stream_started:
            self.incidents.resolve(
                "broker_restarted_empty",
                now,
                f"the stream is committing on the new broker ({topic.cluster_id})",
            )

    def _status_document(self, now: float, statuses: list[SloStatus]) -> dict[str, object]:
        return {
            "sampled_at": now,
            "interval_s": self.interval_s,
            "slo_file": str(self.slos.source),
            "slos": {
                s.slo.name: {
                    **s.numbers(),
                    "title": s.slo.title,
                    "headline": s.sample.details.get("headline", ""),
                    "firing": s.firing(Severity.PAGE) + s.firing(Severity.TICKET),
                    "budget_samples": s.budget_samples,
                    "runbook": self.links.runbook(s.slo.runbook),
                }
                for s in statuses
            },
        }

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        """Sample until ``stop``; returns the exit code."""
        self.dispatcher.start(stop)
        threading.Thread(target=self._watchdog, args=(stop,), name="monitor-watchdog", daemon=True).start()
        log.info(
            "SLO monitor sampling %d SLOs every %.0f s from %s; notifiers: %s",
            len(self.slos.slos),
            self.interval_s,
            self.slos.source,
            ", ".join(self.notifiers),
        )
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                self._sampling_since = time.monotonic()
                try:
                    statuses = self.tick()
                except Exception:
                    log.exception("an SLO sample failed; the next one follows in %.0f s", self.interval_s)
                else:
                    self._beat(RUNNING, time.monotonic() - self._sampling_since)
                    self._summarize(statuses)
                self._sampling_since = None
                next_at = max(next_at + self.interval_s, time.monotonic())
                stop.wait(next_at - time.monotonic())
        finally:
            self._beat(STOPPED, 0.0)
            self.close()
        return 0

    def _beat(self, state: str, sample_s: float) -> None:
        times = psutil.Process().cpu_times()
        beat = Heartbeat(
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=self.started_at,
            at=self.clock(),
            samples=self.samples,
            state=state,
            last_sample_s=round(sample_s, 4),
            cpu_s=round(times.user + times.system, 3),
        )
        write_heartbeat(self.settings.oncall_dir, beat)

    def _watchdog(self, stop: threading.Event) -> None:
        """Exit the process when one sample hangs: the supervisor restarts a monitor, not a zombie."""
        limit = self.settings.monitor_heartbeat_max_age_s
        while not stop.wait(1.0):
            started = self._sampling_since
            if started is not None and time.monotonic() - started > limit:
                log.error(
                    "SLO monitor stalled: one sample has been running for more than %.0f s "
                    "(NETFLIX_MONITOR_HEARTBEAT_MAX_AGE_S); exiting so that its supervisor restarts it",
                    limit,
                )
                logging.shutdown()
                os._exit(STALL_EXIT_CODE)

    def _summarize(self, statuses: list[SloStatus]) -> None:
        if time.monotonic() - self._last_summary < SUMMARY_EVERY_S:
            return
        self._last_summary = time.monotonic()
        parts = []
        for s in statuses:
            verdict = {True: "ok", False: "BREACHED", None: "no data"}[s.sample.good]
            unit = "" if s.slo.unit == "ratio" else f" {s.slo.unit}"
            value = "no value" if s.sample.value is None else f"{s.sample.value:.3g}{unit}"
            parts.append(f"{s.slo.name} {value} ({verdict}, budget {s.budget_left:.0%})")
        open_now = self.incidents.open_incidents()
        log.info(
            "SLOs after %d samples: %s; %d incident(s) open", self.samples, "; ".join(parts), len(open_now)
        )
