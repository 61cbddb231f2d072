"""The on-call sensors: what only Dagster knows, raised through the same incident store and notifiers.

* ``slo_status_sensor`` reports the monitor's status as ``slo_status`` materializations and check
  evaluations, and is the monitor's watchdog: a heartbeat older than
  ``NETFLIX_MONITOR_HEARTBEAT_MAX_AGE_S`` (and not a deliberate stop) pages ``monitor_down``, and the
  sensor then delivers the outbox itself, since the monitor's workers are gone.
* ``failure_alerts_sensor`` raises ``batch_run_failed`` for a failed run of any job but the stream's
  (resolved by the next success of that job), ``silver_check_failed`` for a failed blocking Silver check
  (resolved when every failed check passed again; the run it failed is not alerted twice) and
  ``stream_crash_loop`` when the speed sensor's crash-loop guard has given up (resolved when a streaming
  run is in progress or ended without failing).

The monitor's notifier workers deliver what these sensors raise within a second.
"""

from __future__ import annotations

import json
import time
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetMaterialization,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    EventLogRecord,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from netflix_assets.defs.oncall.context import Oncall
from netflix_assets.defs.oncall.status import (
    SLO_STATUS_KEY,
    check_evaluations,
    materialization_metadata,
    take_snapshot,
)
from netflix_assets.defs.silver.assets import CHECK_SPECS as SILVER_CHECK_SPECS
from netflix_assets.defs.speed.jobs import JOB_NAME as STREAM_JOB
from netflix_assets.defs.speed.sensors import CRASH_LOOP_RUNS, crash_loop
from oncall.alerts import event_alert
from oncall.heartbeat import RUNNING, read_heartbeat
from oncall.incidents import IncidentBook
from oncall.sample import iso

SILVER_CHECK_KEYS: list[AssetCheckKey] = [spec.key for spec in SILVER_CHECK_SPECS if spec.blocking]
FAILURE_REASON_TAG, INTERRUPTED = "dagster/failure_reason", "UNEXPECTED_TERMINATION"  # make run's Ctrl-C
PLANNED, FAILED = "PLANNED", "FAILED"  # AssetCheckExecutionRecordStatus values (not exported by dagster)
REPORT_EVERY_S = 60.0
LOOK_BACK_S = 3600.0  # on a first tick (no cursor), failures older than this are history, not news
PAGE_SIZE = 100
WATCHDOG_DRAIN_S = 20.0


# -- slo_status_sensor ------------------------------------------------------------------------------------
def watch_monitor(oncall: Oncall, book: IncidentBook, now: float) -> str:
    """Page when the monitor's heartbeat stopped; resolve when it is back or was stopped on purpose."""
    beat = read_heartbeat(oncall.settings.oncall_dir)
    if beat is None:
        return "no SLO monitor has run against this data directory yet (netflix-lambda monitor)"
    age = now - beat.at
    limit = oncall.settings.monitor_heartbeat_max_age_s
    if beat.state == RUNNING and age <= limit:
        book.resolve("monitor_down", now, f"the SLO monitor is sampling again (pid {beat.pid})")
        return f"SLO monitor alive: last sample {age:.0f} s ago"
    if beat.state == RUNNING:
        summary = (
            f"no SLO sample for {age:.0f} s (limit {limit:.0f} s): the monitor (pid {beat.pid} on "
            f"{beat.host}) died or hangs since {iso(beat.at)}; nobody watches the SLOs until it is back"
        )
        details = {"pid": beat.pid, "host": beat.host, "last_sample_at": iso(beat.at), "heartbeat_age_s": age}
        book.raise_alert(event_alert(oncall.slos.events["monitor_down"], summary, details, oncall.links), now)
    else:
        book.resolve("monitor_down", now, "the SLO monitor was stopped on purpose")
    delivered = oncall.dispatcher(book).drain(WATCHDOG_DRAIN_S)  # its workers are gone: deliver from here
    return f"SLO monitor {beat.state}, last sample {age:.0f} s ago; delivered {delivered} notification(s)"


def evaluate_status_sensor(context: SensorEvaluationContext, oncall: Oncall) -> SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    book = oncall.book()
    try:
        said = watch_monitor(oncall, book, now)
        snapshot = take_snapshot(
            oncall.settings.oncall_dir, book.open_incidents(), oncall.settings.monitor_heartbeat_max_age_s
        )
    finally:
        book.close()
    evaluations = check_evaluations(snapshot, oncall.slos)
    verdicts = {e.check_name: [e.passed, e.severity.value] for e in evaluations}
    sampled_at = (snapshot.status or {}).get("sampled_at")
    due = sampled_at != cursor.get("sampled_at") and now - cursor.get("reported_at", 0.0) >= REPORT_EVERY_S
    if not due and verdicts == cursor.get("verdicts"):
        return SensorResult(skip_reason=f"{said}; no verdict changed", cursor=json.dumps(cursor))
    cursor.update(sampled_at=sampled_at, reported_at=now, verdicts=verdicts)
    materialization = AssetMaterialization(SLO_STATUS_KEY, metadata=materialization_metadata(snapshot))
    return SensorResult(asset_events=[materialization, *evaluations], cursor=json.dumps(cursor))


# -- failure_alerts_sensor --------------------------------------------------------------------------------
def _error_text(instance: DagsterInstance, run_id: str) -> tuple[str, list[str]]:
    """The first line of the run's error and the steps that failed."""
    steps, errors = [], []
    for entry in instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    ):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            steps.append(str(event.step_key))
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                errors.append(error.message.strip())
        elif event.message:
            errors.append(event.message.strip())
    first = next((e for e in errors if e), "no error message recorded")
    return first.splitlines()[0][:400], steps


def _failed_blocking_checks(instance: DagsterInstance, run_id: str) -> list[str]:
    found = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if (
            evaluation is not None
            and not evaluation.passed
            and evaluation.severity == AssetCheckSeverity.ERROR
        ):
            found.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return found


def _status_changes(
    instance: DagsterInstance, event_type: DagsterEventType, cursor: dict[str, Any], name: str
) -> list[EventLogRecord]:
    """New run status changes since the cursor (the last hour on a first tick); advances the cursor."""
    result = instance.fetch_run_status_changes(
        event_type, limit=PAGE_SIZE, cursor=cursor.get(name), ascending=True
    )
    fresh = cursor.get(name) is not None
    cursor[name] = result.cursor
    return [r for r in result.records if fresh or r.timestamp >= time.time() - LOOK_BACK_S]


def alert_failed_runs(
    context: SensorEvaluationContext, oncall: Oncall, book: IncidentBook, cursor: dict
) -> list[str]:
    instance, said, now = context.instance, [], time.time()
    for record in _status_changes(instance, DagsterEventType.RUN_FAILURE, cursor, "failures"):
        run = instance.get_run_by_id(record.event_log_entry.run_id)
        if run is None or run.job_name == STREAM_JOB:
            continue
        if run.tags.get(FAILURE_REASON_TAG) == INTERRUPTED:
            said.append(f"run {run.run_id[:8]} was interrupted (a shutdown), not a failure: not alerted")
            continue
        checks = _failed_blocking_checks(instance, run.run_id)
        if checks:
            said.append(
                f"run {run.run_id[:8]} failed on blocking check(s) {', '.join(checks)}: alerted as such"
            )
            continue
        error, steps = _error_text(instance, run.run_id)
        incident = book.open_incident("batch_run_failed")
        jobs = sorted({run.job_name, *((incident.details.get("jobs") or []) if incident else [])})
        page = oncall.links.dagster(f"runs/{run.run_id}", "Dagster: failed run")
        summary = f"run {run.run_id[:8]} of {run.job_name} failed" + (
            f" in {', '.join(steps)}" if steps else ""
        )
        details = {
            "run_id": run.run_id,
            "job": run.job_name,
            "jobs": jobs,
            "failed_steps": steps,
            "error": error,
        }
        alert = event_alert(
            oncall.slos.events["batch_run_failed"], f"{summary}: {error}", details, oncall.links, page
        )
        book.raise_alert(alert, now)
        said.append(summary)
    for record in _status_changes(instance, DagsterEventType.RUN_SUCCESS, cursor, "successes"):
        run = instance.get_run_by_id(record.event_log_entry.run_id)
        incident = book.open_incident("batch_run_failed")
        if run is not None and incident is not None and run.job_name in incident.details.get("jobs", []):
            book.resolve("batch_run_failed", now, f"run {run.run_id[:8]} of {run.job_name} succeeded")
            said.append(f"run {run.run_id[:8]} of {run.job_name} succeeded: batch_run_failed resolved")
    return said


def alert_failed_checks(context: SensorEvaluationContext, oncall: Oncall, book: IncidentBook) -> list[str]:
    """The latest evaluation of each blocking Silver check decides: one incident while any failed (ERROR).

    Read from the instance's per-check execution index, which every storage keeps (the event log of the
    default SQLite instance is sharded per run and cannot be scanned across runs); a check being re-run
    (planned, not evaluated yet) keeps the verdict it had.
    """
    now = time.time()
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(SILVER_CHECK_KEYS)
    incident = book.open_incident("silver_check_failed")
    before: dict[str, Any] = dict(incident.details.get("failing_checks", {})) if incident else {}
    failing: dict[str, Any] = {}
    for key, record in sorted(latest.items(), key=lambda item: item[1].create_timestamp):
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        evaluation = record.evaluation
        if record.status.value == PLANNED or evaluation is None:
            if name in before:
                failing[name] = before[name]
        elif record.status.value == FAILED and evaluation.severity == AssetCheckSeverity.ERROR:
            metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
            failing[name] = {
                "run_id": record.run_id,
                "description": evaluation.description,
                "metadata": metadata,
            }
    if {k: v["run_id"] for k, v in failing.items()} == {k: v["run_id"] for k, v in before.items()}:
        return []
    if not failing:
        book.resolve("silver_check_failed", now, "every failed Silver check passed again")
        return ["every failed Silver check passed again: silver_check_failed resolved"]
    newest = list(failing.values())[-1]
    summary = f"{', '.join(failing)} failed ({newest['description']})"
    details = {"failing_checks": failing, "run_id": newest["run_id"]}
    page = oncall.links.dagster(f"runs/{newest['run_id']}", "Dagster: run with the failed check")
    book.raise_alert(
        event_alert(oncall.slos.events["silver_check_failed"], summary, details, oncall.links, page), now
    )
    return [summary]


def alert_crash_loop(context: SensorEvaluationContext, oncall: Oncall, book: IncidentBook) -> list[str]:
    now = time.time()
    recent = crash_loop(context.instance)
    if not recent:
        resolved = book.resolve(
            "stream_crash_loop",
            now,
            "a streaming run is in progress or ended without failing: relaunches resume",
        )
        return ["the stream left its crash loop"] if resolved else []
    latest = recent[0]
    error, _ = _error_text(context.instance, latest.run_id)
    summary = (
        f"the stream failed in its last {CRASH_LOOP_RUNS} runs and speed_stream_sensor stopped relaunching "
        f"it (latest run {latest.run_id[:8]}: {error})"
    )
    details = {"runs": [r.run_id for r in recent], "error": error}
    page = oncall.links.dagster(f"runs/{latest.run_id}", "Dagster: latest failed streaming run")
    book.raise_alert(
        event_alert(oncall.slos.events["stream_crash_loop"], summary, details, oncall.links, page), now
    )
    return [summary]


def evaluate_failure_sensor(context: SensorEvaluationContext, oncall: Oncall) -> SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    book = oncall.book()
    try:
        said = alert_failed_runs(context, oncall, book, cursor)
        said += alert_failed_checks(context, oncall, book)
        said += alert_crash_loop(context, oncall, book)
    finally:
        book.close()
    message = "; ".join(said) or "no failed run, failed Silver check or crash loop since the last tick"
    return SensorResult(skip_reason=message, cursor=json.dumps(cursor))


def build_sensors(oncall: Oncall) -> list[SensorDefinition]:
    @sensor(name="slo_status_sensor", minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
    def slo_status_sensor(context: SensorEvaluationContext) -> SensorResult:
        """Report the SLO monitor's status on ``slo_status``; page when the monitor stops sampling."""
        return evaluate_status_sensor(context, oncall)

    @sensor(
        name="failure_alerts_sensor", minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING
    )
    def failure_alerts_sensor(context: SensorEvaluationContext) -> SensorResult:
        """Alert on failed batch runs, failed blocking Silver checks and the stream's crash loop."""
        return evaluate_failure_sensor(context, oncall)

    return [slo_status_sensor, failure_alerts_sensor]
