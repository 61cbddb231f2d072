"""Reconciliation: is the speed layer right? Its windows against batch truth, on the periods both cover.

The per-window comparison is SQL in the warehouse (dbt model ``reconciliation_5min``, the same on
BigQuery); this check sums it over every window both layers cover and reports, per measure, the
speed layer's value, batch truth, the difference and its causes: late events (the batch counts them, the
speed layer could not), events the batch rules reject, events superseded by another record of their session.
Dead letters and re-sent duplicates are counted too (from ``batch_watermark``): both layers keep them out.

Severity: the largest relative difference of a measure, ``|batch - speed| / max(|batch|, |speed|)``, against
``reconciliation_warn_share`` (WARN) and ``reconciliation_error_share`` (ERROR); a difference no cause
explains is a bug in one of the layers and fails the check at least with WARN. On a clean run (no late
event, no duplicate, no rejected or superseded event) every difference is exactly zero.
"""

from dataclasses import dataclass
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from core.serving_tables import WATERMARK_MODEL, ServingTables, serving_tables
from netflix_assets.defs.metadata import markdown_table
from netflix_assets.defs.serving.watermark import read_watermark, watermark_metadata
from netflix_assets.resources import DataQualityResource, WarehouseResource

ASSET = AssetKey(["reconciliation_5min"])
CHECK_NAME = "speed_layer_matches_batch_truth"
MEASURES = ("sessions", "watch_minutes", "completions", "low_engagement", "abandoned", "quality_downgrades")
CAUSES = ("late", "rejected", "superseded")
SIGNS = {"late": 1, "rejected": -1, "superseded": -1}  # how each cause moves batch relative to speed
EPSILON = 1e-6  # float sums of minutes in a different order; counts are exact


@dataclass(frozen=True)
class Measure:
    name: str
    speed: float
    batch: float
    causes: dict[str, float]

    @property
    def difference(self) -> float:
        return self.batch - self.speed

    @property
    def unexplained(self) -> float:
        explained = sum(SIGNS[cause] * value for cause, value in self.causes.items())
        rest = self.difference - explained
        return 0.0 if abs(rest) <= EPSILON * max(abs(self.batch), 1.0) else rest

    @property
    def relative(self) -> float:
        scale = max(abs(self.batch), abs(self.speed))
        return abs(self.difference) / scale if scale else 0.0


@dataclass(frozen=True)
class Reconciliation:
    windows: int
    late_events: int
    measures: list[Measure]
    watermark: dict[str, Any]

    @property
    def worst(self) -> Measure | None:
        return max(self.measures, key=lambda m: m.relative, default=None)

    @property
    def unexplained(self) -> dict[str, float]:
        return {m.name: m.unexplained for m in self.measures if m.unexplained}


def reconcile(tables: ServingTables) -> Reconciliation:
    """Sum ``reconciliation_5min`` over every window and read the build's counts, from either warehouse."""
    sums = ", ".join(
        f"coalesce(sum({side}_{m}), 0)" for m in MEASURES for side in ("speed", "batch", *CAUSES)
    )
    _, [(windows, late_events, *values)] = tables.rows(
        f"SELECT count(*), coalesce(sum(late_events), 0), {sums} FROM {tables.name(ASSET.path[-1])}"
    )
    per = 2 + len(CAUSES)
    measures = [
        Measure(name, float(v[0]), float(v[1]), {c: float(x) for c, x in zip(CAUSES, v[2:], strict=True)})
        for name, v in zip(MEASURES, (values[i : i + per] for i in range(0, len(values), per)), strict=True)
    ]
    watermark = read_watermark(tables)
    if watermark is None:
        raise LookupError(f"{tables.name(WATERMARK_MODEL)} is empty: the build published no batch watermark")
    return Reconciliation(int(windows), int(late_events), measures, watermark)


def verdict(report: Reconciliation, warn_share: float, error_share: float) -> tuple[bool, AssetCheckSeverity]:
    """(passed, severity) under the tolerances."""
    worst = report.worst.relative if report.worst else 0.0
    if worst > error_share:
        return False, AssetCheckSeverity.ERROR
    if worst > warn_share or report.unexplained:
        return False, AssetCheckSeverity.WARN
    return True, AssetCheckSeverity.WARN


def describe(report: Reconciliation) -> str:
    """The result in sentences an on-call engineer can act on."""
    if not report.windows:
        return "No window is covered by both layers yet (the speed layer has no window that ends before W)."
    sessions = next(m for m in report.measures if m.name == "sessions")
    text = (
        f"{report.windows} window(s) before W compared: the speed layer counted {sessions.speed:,.0f} "
        f"sessions, batch truth {sessions.batch:,.0f} ({sessions.difference:+,.0f}): "
        f"{sessions.causes['late']:,.0f} late event(s) the stream left out, "
        f"{sessions.causes['rejected']:,.0f} rejected by the batch rules, "
        f"{sessions.causes['superseded']:,.0f} superseded by another record of their session."
    )
    if report.unexplained:
        text += (
            f" UNEXPLAINED differences {report.unexplained}: one layer miscounts; "
            "compare them window by window in reconciliation_5min."
        )
    return text


def check_result(report: Reconciliation, warn_share: float, error_share: float) -> AssetCheckResult:
    passed, severity = verdict(report, warn_share, error_share)
    rows = [
        [m.name, round(m.speed, 2), round(m.batch, 2), round(m.difference, 2),
         *(round(m.causes[c], 2) for c in CAUSES), round(m.unexplained, 2), f"{m.relative:.4%}"]
        for m in report.measures
    ]  # fmt: skip
    header = ["measure", "speed", "batch", "difference", *CAUSES, "unexplained", "relative"]
    worst = report.worst
    metadata: dict[str, Any] = {
        **watermark_metadata(report.watermark),
        "windows_compared": report.windows,
        "measures": markdown_table(header, rows),
        "differences": MetadataValue.json({m.name: round(m.difference, 6) for m in report.measures}),
        "unexplained": MetadataValue.json({k: round(v, 6) for k, v in report.unexplained.items()}),
        "max_relative_difference": round(worst.relative, 6) if worst else 0.0,
        "late_events": report.late_events,
        "rejected_events": int(report.watermark["stream_events_rejected"]),
        "superseded_events": int(report.watermark["stream_events_superseded"]),
        "dead_letters": int(report.watermark["dead_letters"]),
        "duplicates_dropped_by_stream": int(report.watermark["stream_duplicates_dropped"]),
        "warn_share": warn_share,
        "error_share": error_share,
    }
    return AssetCheckResult(passed=passed, severity=severity, description=describe(report), metadata=metadata)


@asset_check(
    asset=ASSET,
    name=CHECK_NAME,
    description="The speed layer's windows against batch truth on the periods both cover, per measure, with "
    "the causes of each difference counted (docs/serving.md); WARN/ERROR above the reconciliation shares.",
    blocking=False,
)
def speed_layer_matches_batch_truth(
    warehouse: WarehouseResource, data_quality: DataQualityResource
) -> AssetCheckResult:
    warn, error = data_quality.reconciliation_warn_share, data_quality.reconciliation_error_share
    with serving_tables(warehouse.get()) as tables:
        report = reconcile(tables)
    return check_result(report, warn, error)
