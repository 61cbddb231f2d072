"""The ``slo_status`` asset's content: the monitor's last status, its heartbeat and the open incidents,
as materialization metadata and as one asset check per SLO (plus the monitor and the event alerts).

A check fails while its SLO has an open incident or breaches its objective, with the numbers in its
metadata: this is where the Dagster UI shows an alert (open-source Dagster delivers none itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dagster import AssetCheckEvaluation, AssetCheckSeverity, AssetKey, MetadataValue

from netflix_assets.defs.metadata import markdown_table, metadata_values
from oncall.definitions import Severity, SloBook
from oncall.heartbeat import RUNNING, STATUS_FILE, Heartbeat, read_heartbeat, read_json
from oncall.incidents import Incident

SLO_STATUS_KEY = AssetKey("slo_status")
MONITOR_CHECK = "monitor_heartbeat"
EVENTS_CHECK = "event_alerts"


def check_names(slos: SloBook) -> list[str]:
    return [*slos.slos, MONITOR_CHECK, EVENTS_CHECK]


@dataclass(frozen=True)
class Snapshot:
    """Everything the asset and its checks show, read once."""

    status: dict[str, Any] | None
    heartbeat: Heartbeat | None
    incidents: list[Incident]
    max_age_s: float
    now: float

    @property
    def heartbeat_age_s(self) -> float | None:
        return None if self.heartbeat is None else self.now - self.heartbeat.at

    @property
    def monitor_alive(self) -> bool:
        age = self.heartbeat_age_s
        return self.heartbeat is not None and self.heartbeat.state == RUNNING and (age or 0) <= self.max_age_s


def take_snapshot(oncall_dir: Any, incidents: list[Incident], max_age_s: float) -> Snapshot:
    return Snapshot(
        read_json(oncall_dir / STATUS_FILE), read_heartbeat(oncall_dir), incidents, max_age_s, time.time()
    )


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.2%}" if unit == "ratio" else f"{value:,.1f} {unit}"


def materialization_metadata(snapshot: Snapshot) -> dict[str, Any]:
    """A table of every SLO, plus each SLO's numbers as plottable metadata (``<slo>/value`` …)."""
    slos = (snapshot.status or {}).get("slos", {})
    rows = []
    values: dict[str, Any] = {}
    for name, slo in slos.items():
        burns = ", ".join(
            f"{rule} {b['long']:.1f}×/{b['short']:.1f}×{' FIRING' if b['firing'] else ''}"
            for rule, b in slo["burn_rates"].items()
        )
        verdict = {True: "ok", False: "BREACHED", None: "no data"}[slo["good"]]
        rows.append(
            [
                name,
                _fmt(slo["value"], slo["unit"]),
                slo["objective"],
                verdict,
                f"{slo['error_budget_left']:.1%}",
                burns or "—",
                slo["headline"],
            ]
        )
        if slo["value"] is not None:
            values[f"{name}/value"] = float(slo["value"])
        values[f"{name}/error_budget_left"] = float(slo["error_budget_left"])
    header = ["SLO", "value", "objective", "now", "budget left", "burn rate long/short", "detail"]
    metadata: dict[str, Any] = {
        "slos": markdown_table(header, rows)
        if rows
        else MetadataValue.md("the SLO monitor has not sampled yet"),
        **values,
        "open_incidents": MetadataValue.json(
            [
                {"key": i.key, "summary": i.summary, "opened_at": i.opened_at, "runbook": i.runbook_url}
                for i in snapshot.incidents
            ]
        ),
        "monitor_heartbeat_age_s": round(snapshot.heartbeat_age_s or -1.0, 1),
    }
    if snapshot.status:
        metadata["sampled_at"] = MetadataValue.timestamp(float(snapshot.status["sampled_at"]))
    return metadata


def check_evaluations(snapshot: Snapshot, slos: SloBook) -> list[AssetCheckEvaluation]:
    """One evaluation per check name (see :func:`check_names`)."""
    by_name: dict[str, list[Incident]] = {}
    for incident in snapshot.incidents:
        by_name.setdefault(incident.name, []).append(incident)
    status = (snapshot.status or {}).get("slos", {})
    evaluations = [_slo_check(name, status.get(name), by_name.get(name, [])) for name in slos.slos]
    evaluations.append(_monitor_check(snapshot))
    events = [i for i in snapshot.incidents if i.name in slos.events]
    evaluations.append(_events_check(events))
    return evaluations


def _severity(incidents: list[Incident]) -> AssetCheckSeverity:
    pages = any(i.severity is Severity.PAGE for i in incidents)
    return AssetCheckSeverity.ERROR if pages or not incidents else AssetCheckSeverity.WARN


def _slo_check(name: str, slo: dict[str, Any] | None, incidents: list[Incident]) -> AssetCheckEvaluation:
    passed = not incidents and (slo is None or slo["good"] is not False)
    numbers = {k: v for k, v in (slo or {}).items() if k != "burn_rates"}
    metadata = metadata_values(
        {
            **numbers,
            "burn_rates": (slo or {}).get("burn_rates", {}),
            "incidents": [i.summary for i in incidents],
        }
    )
    description = (
        "; ".join(i.summary for i in incidents)
        if incidents
        else (slo or {}).get("headline") or "no sample yet"
    )
    return AssetCheckEvaluation(
        asset_key=SLO_STATUS_KEY,
        check_name=name,
        passed=passed,
        severity=_severity(incidents),
        description=description[:1000],
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def _monitor_check(snapshot: Snapshot) -> AssetCheckEvaluation:
    beat = snapshot.heartbeat
    if beat is None:
        description = "no SLO monitor has run against this data directory (netflix-lambda monitor)"
    elif snapshot.monitor_alive:
        description = (
            f"last sample {snapshot.heartbeat_age_s:.0f} s ago ({beat.samples} samples, pid {beat.pid})"
        )
    else:
        description = (
            f"the SLO monitor (pid {beat.pid} on {beat.host}) is {beat.state}; last sample "
            f"{snapshot.heartbeat_age_s:.0f} s ago"
        )
    return AssetCheckEvaluation(
        asset_key=SLO_STATUS_KEY,
        check_name=MONITOR_CHECK,
        passed=snapshot.monitor_alive,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={"heartbeat_age_s": round(snapshot.heartbeat_age_s or -1.0, 1)},
    )


def _events_check(incidents: list[Incident]) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=SLO_STATUS_KEY,
        check_name=EVENTS_CHECK,
        passed=not incidents,
        severity=_severity(incidents),
        description="; ".join(i.summary for i in incidents)[:1000] or "no open event alert",
        metadata={
            "open": MetadataValue.json(
                [
                    {"key": i.key, "summary": i.summary, "runbook": i.runbook_url, "details": i.details}
                    for i in incidents
                ]
            )
        },
    )
