"""``slo_status``: the SLO monitor's latest status as an asset, with one check per SLO.

The monitor runs outside Dagster (docs/slos.md says why) and publishes its status as files;
``slo_status_sensor`` reports it here as a materialization every minute and as check evaluations whenever
a verdict changes, so the UI shows the numbers and a failing check for every open alert. Materializing
the asset by hand does the same at once.
"""

from collections.abc import Iterator

from dagster import AssetCheckResult, AssetCheckSpec, AssetsDefinition, MaterializeResult, asset

from netflix_assets.defs.oncall.context import GROUP, Oncall
from netflix_assets.defs.oncall.status import (
    EVENTS_CHECK,
    MONITOR_CHECK,
    SLO_STATUS_KEY,
    check_evaluations,
    materialization_metadata,
    take_snapshot,
)


def check_specs(oncall: Oncall) -> list[AssetCheckSpec]:
    specs = [
        AssetCheckSpec(
            name,
            asset=SLO_STATUS_KEY,
            description=f"{slo.title}: objective {slo.objective_text}, target {slo.target:.2%} of samples; "
            f"fails while an incident is open or the latest sample breaches the objective.",
        )
        for name, slo in oncall.slos.slos.items()
    ]
    specs.append(
        AssetCheckSpec(
            MONITOR_CHECK,
            asset=SLO_STATUS_KEY,
            description="the SLO monitor has sampled within NETFLIX_MONITOR_HEARTBEAT_MAX_AGE_S",
        )
    )
    specs.append(
        AssetCheckSpec(
            EVENTS_CHECK,
            asset=SLO_STATUS_KEY,
            description="no open event alert: failed batch run or Silver check, crash loop, broker trouble",
        )
    )
    return specs


def build_slo_status(oncall: Oncall) -> AssetsDefinition:
    @asset(
        key=SLO_STATUS_KEY,
        group_name=GROUP,
        kinds={"duckdb"},
        check_specs=check_specs(oncall),
        description="Every SLO of oncall/slos.yaml: current value, objective, error budget left and burn "
        "rates (history: oncall.slo_samples in connect_serving). Reported by slo_status_sensor from the "
        "SLO monitor; one check per SLO fails while its alert is open.",
    )
    def slo_status() -> Iterator[MaterializeResult | AssetCheckResult]:
        book = oncall.book()
        try:
            snapshot = take_snapshot(
                oncall.settings.oncall_dir, book.open_incidents(), oncall.settings.monitor_heartbeat_max_age_s
            )
        finally:
            book.close()
        yield MaterializeResult(metadata=materialization_metadata(snapshot))
        for evaluation in check_evaluations(snapshot, oncall.slos):
            yield AssetCheckResult(
                check_name=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity,
                description=evaluation.description,
                metadata=dict(evaluation.metadata),
            )

    return slo_status
