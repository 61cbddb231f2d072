"""The speed layer's assets: the topic as an observable source and the stream as one multi-asset.

* ``netflix_watch_events`` is observed (end offsets per partition, lag behind the stream's checkpoint): on
  demand, and by the sensor whenever the topic moved.
* ``speed_stream`` materializes ``bronze_watch_events``, ``silver_watch_events``, ``dead_letter_events``,
  ``late_events``, ``engagement_health_realtime`` and ``churn_risk_alerts`` together, because they are one
  Structured Streaming query. Its run keeps the query alive and logs one materialization per asset per
  micro-batch (``stream_run.py``). Terminating the run from the UI stops the query after its current
  micro-batch.
"""

import warnings
from datetime import timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    Config,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    ObserveResult,
    SourceAsset,
    multi_asset,
    observable_source_asset,
)
from dagster_pyspark import PySparkResource

from core.contracts.speed import (
    ACTIVE_USERS_TABLE,
    ALERTS_TABLE,
    ENGAGEMENT_TABLE,
    LEDGER_TABLE,
    USER_ACTIVITY_TABLE,
)
from core.settings import Settings
from netflix_assets.defs.serving.links import dashboard_links, with_dashboard_links
from netflix_assets.defs.speed.stream_run import run_stream_in_dagster
from netflix_assets.defs.speed.topic import observe_topic
from netflix_assets.resources import BucketResource, KafkaResource, WarehouseResource
from streaming.job import StreamOptions

# The topic is an observable source asset on purpose (its end offsets and the stream's lag are observed,
# never materialized); 1.13 has no non-beta way to say that, and the warning repeats in every process
# that loads the code location (code server, each run).
warnings.filterwarnings("ignore", message="Function `observable_source_asset` is currently in beta",
                        category=BetaWarning)  # fmt: skip

GROUP = "speed"
TOPIC_KEY = AssetKey("netflix_watch_events")
BRONZE, SILVER, DEAD, LATE = "bronze_watch_events", "silver_watch_events", "dead_letter_events", "late_events"
ENGAGEMENT, ALERTS = ENGAGEMENT_TABLE, ALERTS_TABLE

# Tables the stream publishes for the serving layer beside its KPIs: (name, upstream asset, description).
_SERVING_TABLES: tuple[tuple[str, str, str], ...] = (
    (ACTIVE_USERS_TABLE, SILVER, "Distinct users and sessions per 5-minute window across every segment "
     "(realtime/active_users_realtime.parquet): the real-time dashboard's active users."),
    (USER_ACTIVITY_TABLE, SILVER, "Per month and user, the newest window the stream counted the user in "
     "(realtime/user_activity_realtime.parquet): monthly active users across the batch watermark W."),
    (LEDGER_TABLE, BRONZE, "The ledger of committed micro-batches with their counts (rows in, valid, dead "
     "letters, late, duplicates) and watermarks (realtime/stream_batches.parquet); the batch layer reads "
     "only events of batches listed here."),
)  # fmt: skip
_USERS = AssetKey(["silver", "users"])
_MOVIES = AssetKey(["silver", "movies"])
_WATCH = AssetKey(["silver", "watch_history"])
SPECS = [
    AssetSpec(
        BRONZE,
        group_name=GROUP,
        deps=[TOPIC_KEY],
        kinds={"spark", "parquet"},
        description="Every consumed message as received, with its Kafka coordinates: the replayable record "
        "(`speed/bronze/date=…/hour=…`, exactly once per partition and offset).",
    ),
    AssetSpec(
        SILVER,
        group_name=GROUP,
        deps=[AssetKey(BRONZE), _USERS, _MOVIES, _WATCH],
        kinds={"spark", "parquet"},
        description="Valid, on-time events joined to Silver users and movies, with churn flags "
        "(`speed/silver/`).",
    ),
    AssetSpec(
        DEAD,
        group_name=GROUP,
        deps=[AssetKey(BRONZE)],
        kinds={"spark", "parquet", "kafka"},
        description="Messages that failed validation, with reason and errors (`speed/dead_letter/`), also "
        "re-published to the dead-letter topic (at-least-once).",
    ),
    AssetSpec(
        LATE,
        group_name=GROUP,
        deps=[AssetKey(BRONZE)],
        kinds={"spark", "parquet"},
        description="Valid events older than the 10-minute watermark (`speed/late/`): counted, never "
        "dropped.",
    ),
    AssetSpec(
        ENGAGEMENT,
        group_name=GROUP,
        deps=[AssetKey(SILVER), _USERS, _MOVIES],
        kinds={"duckdb", "parquet"},
        freshness_policy=FreshnessPolicy.time_window(fail_window=timedelta(minutes=1)),
        description="5-minute windows per country, genre, device, quality, original and content type: "
        "sessions, distinct users, completion, churn-flag counts and rates, revenue impact, alert level "
        "(realtime.duckdb, published as realtime/engagement_health_realtime.parquet).",
    ),
    AssetSpec(
        ALERTS,
        group_name=GROUP,
        deps=[AssetKey(ENGAGEMENT), AssetKey(SILVER)],
        kinds={"duckdb", "parquet"},
        description="Segments and users whose churn flags crossed a threshold in a window "
        "(realtime/churn_risk_alerts.parquet).",
    ),
    *[
        AssetSpec(name, group_name=GROUP, deps=[AssetKey(dep)], kinds={"duckdb", "parquet"}, description=text)
        for name, dep, text in _SERVING_TABLES
    ],
]


class StreamConfig(Config):
    """Run config of the streaming job; defaults come from the settings."""

    trigger_seconds: float | None = None
    available_now: bool = False
    max_events_per_trigger: int | None = None


@observable_source_asset(
    key=TOPIC_KEY,
    group_name=GROUP,
    description="The watch-event topic: end offsets per partition and the stream's lag behind them.",
)
def netflix_watch_events(kafka: KafkaResource, bucket: BucketResource) -> ObserveResult:
    return ObserveResult(**observe_topic(kafka, bucket))


def build_speed_stream(settings: Settings) -> AssetsDefinition:
    """The stream multi-asset; its options default to the deployment's settings."""

    @multi_asset(
        name="speed_stream", specs=with_dashboard_links(SPECS, dashboard_links(settings)), can_subset=False
    )
    def speed_stream(
        context: AssetExecutionContext,
        config: StreamConfig,
        pyspark: PySparkResource,
        bucket: BucketResource,
        warehouse: WarehouseResource,
        kafka: KafkaResource,
    ) -> Any:
        options = StreamOptions.from_settings(
            settings,
            trigger_seconds=config.trigger_seconds,
            available_now=config.available_now or None,
            max_events_per_trigger=config.max_events_per_trigger,
        )
        summary = run_stream_in_dagster(
            context, options, settings, pyspark, bucket.get(), warehouse.get(), kafka.get(), SPECS
        )
        totals: dict[str, Any] = {
            "batches": summary.batches,
            "batches_replayed_and_skipped": summary.skipped,
            "rows_in": summary.rows_in,
            "rows_out": summary.valid,
            "dead_letters": summary.dead_letters,
            "late": summary.late,
            "duplicates": summary.duplicates,
            "stopped_by": summary.stopped_by,
            "run_seconds": round(summary.elapsed_s, 1),
            "broker_resets": summary.broker_resets,
        }
        if summary.resets:
            totals["broker_reset_details"] = MetadataValue.json([r.to_dict() for r in summary.resets])
        for spec in SPECS:
            yield MaterializeResult(asset_key=spec.key, metadata=totals)

    return speed_stream


def speed_assets(settings: Settings) -> list[AssetsDefinition | SourceAsset]:
    return [netflix_watch_events, build_speed_stream(settings)]
