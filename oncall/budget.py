"""Error budgets and burn rates from the sample history (time-slice SLOs, Google SRE workbook ch. 5).

Each sample stands for one sampling interval. The *bad fraction* of a window is the time the SLI spent
outside its objective (bad samples × interval) over the window's length; unobserved time counts as good,
so a monitor that just started cannot page on the first bad sample of an empty hour. The burn rate is
that fraction over the budget fraction ``1 - target``; the budget left is ``1 - burn`` over the budget
window. A burn-rate rule fires when the rate reaches its factor over both its long and its short window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oncall.definitions import BurnRateRule, Severity, Slo
from oncall.sample import Sample

HARD_BREACH = "hard_breach"


def burn_rate(bad_samples: int, interval_s: float, window_s: float, target: float) -> float:
    """How many times faster than sustainable the budget burned over the window."""
    bad_fraction = min(bad_samples * interval_s / window_s, 1.0)
    return bad_fraction / (1.0 - target)


@dataclass(frozen=True)
class RuleState:
    rule: BurnRateRule
    long_burn: float
    short_burn: float

    @property
    def firing(self) -> bool:
        return self.long_burn >= self.rule.factor and self.short_burn >= self.rule.factor


@dataclass(frozen=True)
class SloStatus:
    """One SLO after one sample: the value, the verdict, the budget and every rule's state."""

    slo: Slo
    sample: Sample
    budget_left: float
    budget_samples: int  # samples with a verdict in the budget window
    rules: tuple[RuleState, ...]

    @property
    def hard_breach(self) -> bool:
        return self.slo.hard_breach is not None and self.sample.good is False

    def firing(self, severity: Severity) -> list[str]:
        """Names of the rules firing at ``severity`` (``hard_breach`` included)."""
        names = [HARD_BREACH] if self.hard_breach and self.slo.hard_breach is severity else []
        return names + [r.rule.name for r in self.rules if r.firing and r.rule.severity is severity]

    def numbers(self) -> dict[str, Any]:
        """The figures every alert and the status asset show."""
        return {
            "value": self.sample.value,
            "unit": self.slo.unit,
            "objective": self.slo.objective_text,
            "target": self.slo.target,
            "good": self.sample.good,
            "error_budget_left": round(self.budget_left, 4),
            "burn_rates": {
                r.rule.name: {
                    "long_window_s": r.rule.long_window_s,
                    "long": round(r.long_burn, 3),
                    "short_window_s": r.rule.short_window_s,
                    "short": round(r.short_burn, 3),
                    "factor": r.rule.factor,
                    "firing": r.firing,
                }
                for r in self.rules
            },
        }

    def row(self) -> dict[str, Any]:
        """A flat row of ``slo_status`` (burn rates as JSON: their names and windows come from the file)."""
        numbers = self.numbers()
        return {
            "slo": self.slo.name,
            "title": self.slo.title,
            "sampled_at": self.sample.at,
            "value": self.sample.value,
            "unit": self.slo.unit,
            "objective": self.slo.objective_text,
            "good": self.sample.good,
            "target": self.slo.target,
            "error_budget_left": numbers["error_budget_left"],
            "burn_rates": json.dumps(numbers["burn_rates"]),
            "firing": ",".join(self.firing(Severity.PAGE) + self.firing(Severity.TICKET)),
            "headline": self.sample.details.get("headline", ""),
        }


def evaluate(
    slo: Slo,
    sample: Sample,
    counts: dict[float, tuple[int, int]],
    interval_s: float,
    budget_window_s: float,
) -> SloStatus:
    """The SLO's status given its newest sample and the history's ``{window: (verdicts, bad)}``."""

    def rate(window: float) -> float:
        return burn_rate(counts.get(window, (0, 0))[1], interval_s, window, slo.target)

    rules = tuple(
        RuleState(rule, rate(rule.long_window_s), rate(rule.short_window_s)) for rule in slo.burn_rules
    )
    return SloStatus(
        slo=slo,
        sample=sample,
        budget_left=1.0 - rate(budget_window_s),
        budget_samples=counts.get(budget_window_s, (0, 0))[0],
        rules=rules,
    )
