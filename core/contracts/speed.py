"""Where the speed layer keeps things in the bucket and in the warehouse: the one list of its names.

The stream writes these keys, Dagster reports them as asset paths, the sensor and the benchmark read
them; none of them spells a path of its own.
"""

from __future__ import annotations

SPEED_PREFIX = "speed"  # the speed layer's folder (the batch layer reads its Silver and late events)
BRONZE_KEY = "speed/bronze"  # every consumed message as received, with its Kafka coordinates
SILVER_KEY = "speed/silver"  # valid, on-time events, enriched
DEAD_LETTER_KEY = "speed/dead_letter"  # messages that failed validation, with reasons
LATE_KEY = "speed/late"  # valid events behind the watermark
SINK_KEYS: dict[str, str] = {
    "bronze_watch_events": BRONZE_KEY,
    "silver_watch_events": SILVER_KEY,
    "dead_letter_events": DEAD_LETTER_KEY,
    "late_events": LATE_KEY,
}
CHECKPOINTS_KEY = "speed/_checkpoints"
ARCHIVED_CHECKPOINTS_KEY = f"{CHECKPOINTS_KEY}/_archived"
# First words of the stream's error when it resets its checkpoint to a broker that lost data (the run
# command recognises it: the embedded broker starts empty at every start).
BROKER_LOSS_HEADLINE = "EMBEDDED BROKER LOST DATA"
# Words of the stream's warning when it restarts its query after a slow Python worker start (the run
# command shows it: busy cores, the stream carries on).
WORKER_RESTART_HEADLINE = "Spark's Python worker did not connect back within Spark's fixed 10 s"
QUERY_NAME = "watch_events"

ENGAGEMENT_TABLE = "engagement_health_realtime"
ALERTS_TABLE = "churn_risk_alerts"
LEDGER_TABLE = "stream_batches"
ACTIVE_USERS_TABLE = "active_users_realtime"  # distinct users and sessions per 5-minute window
# (month, user) → the newest window the user was active in: distinct users across the batch watermark
USER_ACTIVITY_TABLE = "user_activity_realtime"
PUBLISHED_TABLES: tuple[str, ...] = (
    ENGAGEMENT_TABLE, ALERTS_TABLE, LEDGER_TABLE, ACTIVE_USERS_TABLE, USER_ACTIVITY_TABLE,
)  # fmt: skip


def checkpoint_key(query_name: str = QUERY_NAME) -> str:
    """Bucket key of a streaming query's Spark checkpoint."""
    return f"{CHECKPOINTS_KEY}/{query_name}"
