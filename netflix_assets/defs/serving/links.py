"""Which asset each dashboard shows, so its URL appears as metadata on those assets in the Dagster UI."""

from collections.abc import Mapping, Sequence

from dagster import AssetSpec, MetadataValue

from core.settings import Settings
from dashboards.links import HISTORY, REALTIME, Dashboard, dashboard_url

DASHBOARD_KEY = "dashboard"
SHOWN_ON: Mapping[Dashboard, tuple[str, ...]] = {
    REALTIME: (
        "engagement_health_realtime", "churn_risk_alerts", "serving_engagement_5min",
        "serving_active_users_5min",
    ),
    HISTORY: (
        "serving_monthly_active_users", "monthly_active_users", "monthly_active_users_by_segment",
        "cohort_retention", "genre_performance", "content_performance", "content_performance_by_title",
        "batch_watermark",
    ),
}  # fmt: skip


def dashboard_links(settings: Settings) -> dict[str, MetadataValue]:
    """Asset name → URL of the dashboard that shows it."""
    return {
        name: MetadataValue.url(dashboard_url(settings, dashboard))
        for dashboard, names in SHOWN_ON.items()
        for name in names
    }


def with_dashboard_links(specs: Sequence[AssetSpec], links: Mapping[str, MetadataValue]) -> list[AssetSpec]:
    """The specs, each shown on a dashboard carrying its URL as definition metadata."""
    return [
        spec.merge_attributes(metadata={DASHBOARD_KEY: links[spec.key.path[-1]]})
        if spec.key.path[-1] in links
        else spec
        for spec in specs
    ]
