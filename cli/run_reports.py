"""Dagster runs told in sentences: the batch run's layers with row counts and checks, the stream's first
realtime batch, and every failure with what to do about it.

A :class:`RunFollower` watches the newest run of one job through the webserver's GraphQL API (the run the
launcher started, and any later one the hourly schedule or the stream sensor starts) and hands its events
to a report. The reports print only stage changes; the full event log stays in the UI and in
``logs/code-server.log``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli.dagster_api import DagsterApi, DagsterApiError, Run, is_unreachable, metadata
from core.contracts.speed import BROKER_LOSS_HEADLINE, WORKER_RESTART_HEADLINE

log = logging.getLogger("cli.runs")

RAW_TABLE_COUNT = 6
REALTIME_TABLE = "engagement_health_realtime"
EVENTS_PER_PAGE = 500  # logsForRun's limit in cli.dagster_api


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "(no message)"


def _seconds(event: dict[str, Any]) -> float:
    return int(event.get("timestamp") or 0) / 1000.0


class RunReport:
    """Sentences for one run; subclasses react to the events they care about.

    ``stopping`` is set while the launcher terminates the runs: the interruptions it causes are expected
    and not reported as failures.
    """

    stopping = False
    noun = "run"
    on_failure = ""  # what to do, after the error
    ended = "ended"  # how a canceled run is said to end

    def __init__(self, ui_url: str, run: Run, launched_here: bool, elapsed: Callable[[], float]) -> None:
        self.ui_url, self.run, self.launched_here, self.elapsed = ui_url, run, launched_here, elapsed
        self.started_at: float | None = None
        self.finished = not run.in_progress

    @property
    def short(self) -> str:
        return self.run.run_id[:8]

    @property
    def link(self) -> str:
        return f"{self.ui_url}/runs/{self.run.run_id}"

    def announce(self) -> None:
        """Say that the run exists (once, when the follower picks it up)."""

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["__typename"]
        if kind == "RunStartEvent":
            self.started_at = _seconds(event)
        elif kind in ("RunSuccessEvent", "RunFailureEvent", "RunCanceledEvent"):
            self.finished = True
        handler = getattr(self, f"on_{kind}", None)
        if handler is not None:
            handler(event)

    def on_RunFailureEvent(self, event: dict[str, Any]) -> None:
        message = (event.get("error") or {}).get("message") or event.get("message")
        log.error("%s %s failed after %s: %s. %s; details at %s", self.noun, self.short, self.took(event),
                  _first_line(message), self.on_failure, self.link)  # fmt: skip

    def on_RunCanceledEvent(self, event: dict[str, Any]) -> None:
        log.info("%s %s %s after %s", self.noun, self.short, self.ended, self.took(event))

    def took(self, event: dict[str, Any]) -> str:
        start = self.started_at or self.run.created
        return f"{_seconds(event) - start:.0f} s"


@dataclass
class _Layer:
    name: str
    steps_done: int = 0
    rows: int = 0
    rows_out: int = 0
    quarantined: int = 0
    assets: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    started: float | None = None
    reported: bool = False


def _layer_of(step_or_key: str) -> str:
    if step_or_key.startswith("raw"):
        return "raw"
    return "silver" if step_or_key.startswith("silver") else "dbt"


class BatchReport(RunReport):
    """raw → Silver → dbt: one line per layer as it finishes, then the run's outcome."""

    noun, ended = "batch run", "canceled"
    on_failure = (
        "The previous marts stay published; fix the cause and launch batch_layer again from the UI "
        "(Jobs → batch_layer)"
    )

    def __init__(self, *args: Any, marts: Callable[[], str] = lambda: "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marts = marts
        self.layers = {name: _Layer(name) for name in ("raw", "silver", "dbt")}

    def announce(self) -> None:
        how = "started" if self.launched_here else "started (by the hourly schedule or from the UI)"
        log.info("batch run %s %s: raw files → Silver (Spark) → dbt marts; watch it at %s", self.short, how,
                 self.link)  # fmt: skip

    def on_ExecutionStepStartEvent(self, event: dict[str, Any]) -> None:
        layer = self.layers[_layer_of(event.get("stepKey") or "")]
        layer.started = layer.started or _seconds(event)
        if layer.name != "raw":
            self._report("raw", _seconds(event))

    def on_ExecutionStepSuccessEvent(self, event: dict[str, Any]) -> None:
        layer = self.layers[_layer_of(event.get("stepKey") or "")]
        layer.steps_done += 1
        if layer.name != "raw" or layer.steps_done == RAW_TABLE_COUNT:
            self._report(layer.name, _seconds(event))

    def on_MaterializationEvent(self, event: dict[str, Any]) -> None:
        key = "/".join(event["assetKey"]["path"])
        layer, values = self.layers[_layer_of(key)], metadata(event)
        layer.assets += 1
        layer.rows += int(values.get("rows_in", values.get("dagster/row_count", 0)) or 0)
        layer.rows_out += int(values.get("rows_out", 0) or 0)
        layer.quarantined += int(values.get("rows_quarantined", 0) or 0)

    def on_AssetCheckEvaluationEvent(self, event: dict[str, Any]) -> None:
        evaluation = event["evaluation"]
        layer = self.layers[_layer_of("/".join(evaluation["assetKey"]["path"]))]
        if evaluation["success"]:
            layer.checks_passed += 1
            return
        layer.checks_failed += 1
        key = "/".join(evaluation["assetKey"]["path"])
        blocking = evaluation["severity"] == "ERROR"
        log.log(
            logging.ERROR if blocking else logging.WARNING,
            "check %s on %s failed%s: %s",
            evaluation["checkName"],
            key,
            " (blocking: downstream assets are not built)" if blocking else "",
            _first_line(evaluation.get("description")),
        )

    def on_ExecutionStepFailureEvent(self, event: dict[str, Any]) -> None:
        if RunReport.stopping:
            return
        message = (event.get("error") or {}).get("message") or event.get("message")
        log.error("batch step %s failed: %s", event.get("stepKey"), _first_line(message))

    def on_RunSuccessEvent(self, event: dict[str, Any]) -> None:
        for name in self.layers:
            self._report(name, _seconds(event))
        log.info("batch run %s finished in %s: %s", self.short, self.took(event), self.marts())

    def _report(self, name: str, at: float) -> None:
        layer = self.layers[name]
        if layer.reported or not (layer.assets or layer.checks_failed):
            return
        layer.reported = True
        took = f" in {at - layer.started:.0f} s" if layer.started else ""
        checks = f"{layer.checks_passed} of {layer.checks_passed + layer.checks_failed} checks passed"
        if name == "raw":
            what = f"raw files checked: {layer.assets} tables, {layer.rows:,} rows"
        elif name == "silver":
            share = layer.quarantined / layer.rows if layer.rows else 0.0
            what = (
                f"Silver built: {layer.assets} tables, {layer.rows:,} rows in → {layer.rows_out:,} clean, "
                f"{layer.quarantined:,} quarantined ({share:.1%})"
            )
        else:
            what = f"dbt built {layer.assets} models"
        log.info("%s%s; %s", what, took, checks)


class StreamReport(RunReport):
    """The streaming run: running, its first realtime batch, and how it ends."""

    noun, ended = "stream run", "stopped"
    on_failure = (
        "The stream sensor relaunches it while the topic has lag (it stops after 3 failures in a row and "
        "says why in the UI)"
    )

    first_batch_seen = False  # across runs: the first realtime batch is announced once

    def announce(self) -> None:
        if self.launched_here:
            log.info("stream run %s launched (speed_stream_job); watch it at %s", self.short, self.link)
        else:
            how = "started (by the stream sensor or from the UI)"
            log.info("stream run %s %s; watch it at %s", self.short, how, self.link)

    def on_ExecutionStepStartEvent(self, event: dict[str, Any]) -> None:
        log.info("stream running: Spark is up in run %s; loading dimensions, then the query", self.short)

    def on_MaterializationEvent(self, event: dict[str, Any]) -> None:
        if StreamReport.first_batch_seen or event["assetKey"]["path"][-1] != REALTIME_TABLE:
            return
        values = metadata(event)
        if int(values.get("rows_in", 0) or 0) == 0:
            return
        StreamReport.first_batch_seen = True
        p95 = values.get("latency_p95_s")
        log.info(
            "first realtime batch committed: %s events (%s valid, %s dead-letter, %s late) in %s%s "
            "(%.0f s after start)",
            f"{values.get('rows_in', 0):,}",
            f"{values.get('rows_out', 0):,}",
            f"{values.get('dead_letters', 0):,}",
            f"{values.get('late', 0):,}",
            REALTIME_TABLE,
            f"; event → warehouse p95 {p95:.1f} s" if isinstance(p95, float) else "",
            self.elapsed(),
        )

    def on_LogMessageEvent(self, event: dict[str, Any]) -> None:
        if RunReport.stopping:
            return
        message = _first_line(event.get("message"))
        if event.get("level") == "WARNING" and WORKER_RESTART_HEADLINE in message:  # busy cores; goes on
            log.warning("stream: %s", message)
            return
        if event.get("level") not in ("ERROR", "CRITICAL"):
            return
        if message.startswith(BROKER_LOSS_HEADLINE) and not StreamReport.first_batch_seen:
            # Expected on every start but the first: the embedded broker keeps events in memory only.
            log.warning(
                "stream: the embedded broker starts empty at every start, so the stream's checkpoint from "
                "the last one pointed past the new topic's end: it archived that checkpoint and reads the "
                "topic from the beginning (events produced after the last start's final commit are not in "
                "the speed layer; the batch layer is unaffected). Details in the stream run's logs"
            )
            return
        log.error("stream: %s", message)


@dataclass
class RunFollower:
    """Follows the newest run of ``job`` created since ``since`` (epoch s): the one launched here, then any
    later one (the hourly schedule, the stream sensor, a launch from the UI).

    :meth:`poll` runs in the launcher's main loop; :meth:`launching` and :meth:`follow` are called from the
    thread that launches a run, and only hand the run over, so that the run just launched here is never
    mistaken for one launched elsewhere while its launch is in flight.
    """

    api: DagsterApi
    job: str
    make_report: Callable[[Run, bool], RunReport]
    since: float
    every_s: float = 1.0
    discover_every_s: float = 3.0
    report: RunReport | None = None
    cursor: str | None = None
    _next_poll: float = 0.0
    _next_discovery: float = 0.0
    _seen: set[str] = field(default_factory=set)
    _launching: bool = False
    _handed_over: tuple[str, bool] | None = None

    def launching(self) -> None:
        """A launch of this job is in flight: no discovery until :meth:`follow` hands its run over."""
        self._launching = True

    def follow(self, run_id: str | None, launched_here: bool = True) -> None:
        """Follow this run from the next poll on (None: the launch failed, back to discovering)."""
        self._handed_over = (run_id, launched_here) if run_id else None
        self._launching = False

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.every_s
        try:
            self._take_handover()
            self._drain()
            if now >= self._next_discovery and not self._launching and self._handed_over is None:
                self._next_discovery = now + self.discover_every_s
                self._discover()
        except DagsterApiError as exc:
            log.debug("following %s: %s", self.job, exc)
        except OSError as exc:  # the webserver is starting or stopping
            if not is_unreachable(exc):
                raise
            log.debug("following %s: webserver unreachable (%s)", self.job, exc)

    def _take_handover(self) -> None:
        handed, self._handed_over = self._handed_over, None
        if handed is None or handed[0] in self._seen:
            return
        self._drain()  # the end of the previous run's story first
        run = self.api.run(handed[0])
        if run is not None:
            self._switch(run, handed[1])

    def _discover(self) -> None:
        """A newer run, once the one followed has ended (a queued one waits behind it: its story later)."""
        if self.report is not None and not self.report.finished:
            return
        newest = self.api.runs(self.job, limit=1)
        if newest and newest[0].run_id not in self._seen and newest[0].created >= self.since:
            self._drain()
            self._switch(newest[0], launched_here=False)
            self._drain()

    def _switch(self, run: Run, launched_here: bool) -> None:
        self._seen.add(run.run_id)
        self.report, self.cursor = self.make_report(run, launched_here), None
        self.report.announce()

    def _drain(self) -> None:
        if self.report is None:
            return
        while True:
            events, self.cursor = self.api.events(self.report.run.run_id, self.cursor)
            for event in events:
                self.report.on_event(event)
            if len(events) < EVENTS_PER_PAGE:
                return
