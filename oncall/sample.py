"""One SLI sample: what the monitor measured for one SLO at one moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Sample:
    """``good`` is None when there was nothing to measure (no micro-batch, no marts yet, a grace period):
    such samples are kept in the history but count neither for nor against the error budget."""

    slo: str
    ts: float  # epoch seconds
    value: float | None
    good: bool | None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> datetime:
        """Naive UTC, as every DuckDB TIMESTAMP of the project."""
        return utc_naive(self.ts)


def utc_naive(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as PagerDuty, Alertmanager and the alert log write it."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
