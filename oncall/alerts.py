"""Turning an SLO's status or an event into an :class:`Alert`: the words, the numbers, the links.

Every alert links its runbook (``docs/runbooks/<name>.md`` under ``NETFLIX_RUNBOOK_BASE_URL``) and the
Dagster page to look at.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from core.settings import PROJECT_ROOT, Settings
from oncall.budget import HARD_BREACH, SloStatus
from oncall.definitions import EventAlert, Severity
from oncall.incidents import Alert

SLO_ASSET_PATH = "assets/slo_status"


@dataclass(frozen=True)
class Links:
    runbook_base: str
    dagster_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        runbooks = settings.runbook_base_url or (PROJECT_ROOT / "docs" / "runbooks").as_uri()
        dagster = settings.dagster_ui_url or f"http://127.0.0.1:{settings.dagster_port}"
        return cls(runbooks.rstrip("/"), dagster.rstrip("/"))

    def runbook(self, name: str) -> str:
        return f"{self.runbook_base}/{name}.md"

    def dagster(self, path: str, text: str) -> dict[str, str]:
        return {text: f"{self.dagster_url}/{path.lstrip('/')}"}


def source_name(settings: Settings) -> str:
    """This deployment's name in alerts and dedup keys."""
    return settings.alert_source or f"netflix-lambda@{socket.gethostname()}"


def window_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _why(status: SloStatus, rules: list[str]) -> str:
    reasons = []
    for name in rules:
        if name == HARD_BREACH:
            reasons.append(f"objective {status.slo.objective_text} breached")
            continue
        state = next(r for r in status.rules if r.rule.name == name)
        reasons.append(
            f"error budget burning {state.long_burn:.1f}× over {window_text(state.rule.long_window_s)} and "
            f"{state.short_burn:.1f}× over {window_text(state.rule.short_window_s)} "
            f"({name}: alert at {state.rule.factor:g}×)"
        )
    return "; ".join(reasons)


def slo_alert(status: SloStatus, severity: Severity, rules: list[str], links: Links) -> Alert:
    """The alert for an SLO whose ``rules`` fire at ``severity``."""
    slo, sample = status.slo, status.sample
    headline = sample.details.get("headline", "")
    details: dict[str, Any] = {
        **{k: v for k, v in sample.details.items() if k != "grace"},
        **status.numbers(),
        "firing_rules": rules,
        "error_budget_left_pct": round(100 * status.budget_left, 1),
    }
    return Alert(
        key=f"{slo.name}:{severity.value}",
        name=slo.name,
        severity=severity,
        title=slo.title,
        summary=f"{slo.title}: {headline} — {_why(status, rules)}.",
        details=details,
        runbook_url=links.runbook(slo.runbook),
        links=links.dagster(SLO_ASSET_PATH, "Dagster: slo_status"),
    )


def event_alert(
    event: EventAlert,
    summary: str,
    details: dict[str, Any],
    links: Links,
    pages: dict[str, str] | None = None,
) -> Alert:
    """The alert for an event (a failed run, a failed check, the crash-loop guard, the broker...)."""
    return Alert(
        key=event.name,
        name=event.name,
        severity=event.severity,
        title=event.title,
        summary=f"{event.title}: {summary}",
        details={**details, "headline": summary},
        runbook_url=links.runbook(event.runbook),
        links={**(pages or {}), **links.dagster(SLO_ASSET_PATH, "Dagster: slo_status")},
    )
