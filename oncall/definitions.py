"""The SLO file (``oncall/slos.yaml``): parsed and checked once, at start-up, into frozen objects.

Every key is validated and an unknown key is an error (a typo such as ``objectve`` must not silently drop
an objective); the message names the file and the key's path, e.g. ``slos.speed_freshness.objective.max``.
Windows are multiplied by ``NETFLIX_SLO_WINDOW_SCALE`` here, so nothing downstream knows about scaling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from core.settings import PROJECT_ROOT, Settings

DEFAULT_SLO_FILE = Path(__file__).with_name("slos.yaml")
RUNBOOK_DIR = PROJECT_ROOT / "docs" / "runbooks"

# The SLIs the monitor can sample (oncall.indicators) and the events the code raises: the file must use
# the former and define exactly the latter.
KNOWN_SLIS = (
    "speed_freshness",
    "speed_latency_p95",
    "validation_success_rate",
    "marts_age",
    "input_silence",
)
KNOWN_EVENTS = (
    "batch_run_failed",
    "silver_check_failed",
    "stream_crash_loop",
    "broker_restarted_empty",
    "broker_unreachable",
    "monitor_down",
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SloFileError(ValueError):
    """The SLO file is malformed; the message names the file and the key."""


class Severity(StrEnum):
    PAGE = "page"  # wake someone up
    TICKET = "ticket"  # look at it during working hours


@dataclass(frozen=True)
class BurnRateRule:
    name: str
    severity: Severity
    factor: float
    long_window_s: float
    short_window_s: float


@dataclass(frozen=True)
class Slo:
    name: str
    title: str
    sli: str
    description: str
    unit: str
    objective_max: float | None
    objective_min: float | None
    target: float
    hard_breach: Severity | None
    startup_grace_s: float
    window_s: float | None
    burn_rules: tuple[BurnRateRule, ...]
    runbook: str

    def meets(self, value: float) -> bool:
        if self.objective_max is not None:
            return value <= self.objective_max
        return value >= float(self.objective_min or 0.0)

    @property
    def objective_text(self) -> str:
        bound = f"≤ {self.objective_max:g}" if self.objective_max is not None else f"≥ {self.objective_min:g}"
        return f"{bound} {self.unit}" if self.unit != "ratio" else bound

    def severities(self) -> set[Severity]:
        """Severities this SLO can alert at (one incident per SLO and severity)."""
        found = {rule.severity for rule in self.burn_rules}
        return found | ({self.hard_breach} if self.hard_breach else set())


@dataclass(frozen=True)
class EventAlert:
    name: str
    title: str
    severity: Severity
    runbook: str


@dataclass(frozen=True)
class SloBook:
    source: Path
    budget_window_s: float
    resolve_after_samples: int
    reminder_after_s: float
    slos: dict[str, Slo]
    events: dict[str, EventAlert]

    def windows(self) -> list[float]:
        """Every window the burn-rate rules and the budget need, longest first."""
        found = {self.budget_window_s}
        for slo in self.slos.values():
            for rule in slo.burn_rules:
                found |= {rule.long_window_s, rule.short_window_s}
        return sorted(found, reverse=True)


def load_slo_book(settings: Settings) -> SloBook:
    """The SLO file the settings name (default: the project's), checked and scaled."""
    path = Path(settings.slo_file) if settings.slo_file else DEFAULT_SLO_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SloFileError(f"{path}: SLO file not found (NETFLIX_SLO_FILE)") from exc
    except yaml.YAMLError as exc:
        raise SloFileError(f"{path}: not valid YAML: {exc}") from exc
    return _Parser(path, settings.slo_window_scale).book(document)


class _Parser:
    """Walks the document, naming the key path in every error."""

    def __init__(self, path: Path, scale: float) -> None:
        self.path = path
        self.scale = scale

    def fail(self, key: str, problem: str) -> SloFileError:
        return SloFileError(f"{self.path}: {key}: {problem}")

    def mapping(self, value: Any, key: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", f"expected a mapping, got {type(value).__name__}")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{key}.{missing[0]}" if key else missing[0], "required key is missing")
        unknown = sorted(set(value) - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise self.fail(f"{key}.{unknown[0]}" if key else unknown[0], f"unknown key (allowed: {allowed})")
        return value

    def number(self, value: Any, key: str, low: float | None = None, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(key, f"{value!r} is outside [{low}, {high}]")
        return float(value)

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected non-empty text, got {value!r}")
        return value.strip()

    def duration(self, value: Any, key: str, scaled: bool = True) -> float:
        """Seconds; ``scaled`` windows are multiplied by NETFLIX_SLO_WINDOW_SCALE."""
        match = _DURATION.match(str(value)) if isinstance(value, int | float | str) else None
        if match is None or isinstance(value, bool):
            raise self.fail(key, f"expected a duration such as 90s, 5m, 1h or 3d, got {value!r}")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
        return seconds * self.scale if scaled else seconds

    def severity(self, value: Any, key: str) -> Severity:
        try:
            return Severity(value)
        except ValueError:
            raise self.fail(key, f"expected one of page, ticket, got {value!r}") from None

    def runbook(self, value: Any, key: str) -> str:
        name = self.text(value, key)
        if RUNBOOK_DIR.is_dir() and not (RUNBOOK_DIR / f"{name}.md").exists():
            raise self.fail(key, f"no runbook docs/runbooks/{name}.md")
        return name

    # -- sections -----------------------------------------------------------------------------------
    def book(self, document: Any) -> SloBook:
        top = self.mapping(
            document, "", {"budget_window", "slos", "events"}, {"lifecycle", "burn_rate_rules"}
        )
        life = self.mapping(
            top.get("lifecycle") or {}, "lifecycle", set(), {"resolve_after_samples", "reminder_after"}
        )
        resolve_after = life.get("resolve_after_samples", 3)
        if isinstance(resolve_after, bool) or not isinstance(resolve_after, int) or resolve_after < 1:
            raise self.fail(
                "lifecycle.resolve_after_samples", f"expected an integer ≥ 1, got {resolve_after!r}"
            )
        rules = self.burn_rules(top.get("burn_rate_rules") or {})
        slos_doc = top["slos"]
        if not isinstance(slos_doc, dict) or not slos_doc:
            raise self.fail("slos", "expected a mapping of at least one SLO")
        events_doc = top["events"]
        if not isinstance(events_doc, dict):
            raise self.fail("events", "expected a mapping of event alerts")
        for name in KNOWN_EVENTS:
            if name not in events_doc:
                raise self.fail(f"events.{name}", "required event alert is missing")
        for name in events_doc:
            if name not in KNOWN_EVENTS:
                raise self.fail(f"events.{name}", f"unknown event (known: {', '.join(KNOWN_EVENTS)})")
        return SloBook(
            source=self.path,
            budget_window_s=self.duration(top["budget_window"], "budget_window"),
            resolve_after_samples=resolve_after,
            reminder_after_s=self.duration(life.get("reminder_after", 0), "lifecycle.reminder_after", False),
            slos={name: self.slo(name, spec, rules) for name, spec in slos_doc.items()},
            events={name: self.event(name, spec) for name, spec in events_doc.items()},
        )

    def burn_rules(self, document: Any) -> dict[str, BurnRateRule]:
        if not isinstance(document, dict):
            raise self.fail("burn_rate_rules", "expected a mapping of rule name to rule")
        rules = {}
        for name, spec in document.items():
            key = f"burn_rate_rules.{name}"
            spec = self.mapping(spec, key, {"severity", "factor", "long_window", "short_window"}, set())
            long_s = self.duration(spec["long_window"], f"{key}.long_window")
            short_s = self.duration(spec["short_window"], f"{key}.short_window")
            if short_s >= long_s:
                raise self.fail(f"{key}.short_window", "must be shorter than long_window")
            rules[name] = BurnRateRule(
                name=name,
                severity=self.severity(spec["severity"], f"{key}.severity"),
                factor=self.number(spec["factor"], f"{key}.factor", low=0.01),
                long_window_s=long_s,
                short_window_s=short_s,
            )
        return rules

    def slo(self, name: str, spec: Any, rules: dict[str, BurnRateRule]) -> Slo:
        key = f"slos.{name}"
        spec = self.mapping(
            spec,
            key,
            {"title", "sli", "unit", "objective", "target", "runbook"},
            {"description", "hard_breach", "startup_grace", "window", "burn_rate_rules"},
        )
        sli = self.text(spec["sli"], f"{key}.sli")
        if sli not in KNOWN_SLIS:
            raise self.fail(f"{key}.sli", f"unknown SLI {sli!r} (known: {', '.join(KNOWN_SLIS)})")
        objective = spec["objective"]
        if not isinstance(objective, dict) or len(objective) != 1 or set(objective) - {"max", "min"}:
            raise self.fail(f"{key}.objective", f"expected {{max: N}} or {{min: N}}, got {objective!r}")
        bound, value = next(iter(objective.items()))
        threshold = self.number(value, f"{key}.objective.{bound}")
        rule_names = spec.get("burn_rate_rules") or []
        if not isinstance(rule_names, list):
            raise self.fail(f"{key}.burn_rate_rules", "expected a list of rule names")
        for rule in rule_names:
            if rule not in rules:
                defined = ", ".join(rules)
                raise self.fail(f"{key}.burn_rate_rules", f"unknown rule {rule!r} (defined: {defined})")
        hard = spec.get("hard_breach")
        if hard is None and not rule_names:
            raise self.fail(key, "no alert rule: set hard_breach and/or burn_rate_rules")
        return Slo(
            name=name,
            title=self.text(spec["title"], f"{key}.title"),
            sli=sli,
            description=" ".join(str(spec.get("description", "")).split()),
            unit=self.text(spec["unit"], f"{key}.unit"),
            objective_max=threshold if bound == "max" else None,
            objective_min=threshold if bound == "min" else None,
            target=self.number(spec["target"], f"{key}.target", low=0.5, high=0.99999),
            hard_breach=None if hard is None else self.severity(hard, f"{key}.hard_breach"),
            startup_grace_s=self.duration(spec.get("startup_grace", 0), f"{key}.startup_grace", False),
            window_s=self.duration(spec["window"], f"{key}.window") if "window" in spec else None,
            burn_rules=tuple(rules[rule] for rule in rule_names),
            runbook=self.runbook(spec["runbook"], f"{key}.runbook"),
        )

    def event(self, name: str, spec: Any) -> EventAlert:
        key = f"events.{name}"
        spec = self.mapping(spec, key, {"title", "severity", "runbook"}, set())
        return EventAlert(
            name=name,
            title=self.text(spec["title"], f"{key}.title"),
            severity=self.severity(spec["severity"], f"{key}.severity"),
            runbook=self.runbook(spec["runbook"], f"{key}.runbook"),
        )
