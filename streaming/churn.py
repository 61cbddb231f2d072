"""Churn signals of one watch event, its engagement segment and its 5-minute window (Spark side).

Definitions (``docs/speed-layer.md`` restates them for analysts):

* **low engagement**: ``progress_percentage < 20``;
* **abandoned**: ``action = 'stopped'`` with ``progress_percentage < 50``;
* **completed**: ``action = 'completed'``;
* **quality downgrade**: the session's quality ranks below the user's usual quality
  (:mod:`streaming.dimensions`: modal Silver quality, SD < HD < 4K = Ultra HD);
* a session is **at risk** when any of low engagement, abandoned or quality downgrade holds; a user is
  at risk in a window when one of their sessions there is.

The segment of an event is (country, genre_primary, device_type, quality, is_netflix_original,
content_type): the user's home country (the event's ``location_country`` when the user is unknown),
the movie's genre/type/original flag and the event's device and quality. Unknown text values become
``'Unknown'`` so every event lands in exactly one segment and sessions reconcile with the input.

This module only prepares the session rows; the warehouse sink sums them per window, segment and user
and derives rates, distinct users and alerts (``streaming.realtime_store``), because distinct counts
cannot be summed across micro-batches.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming.dimensions import Dimensions, quality_rank

WINDOW_MINUTES = 5
WATERMARK_MINUTES = 10
LOW_ENGAGEMENT_BELOW = 20.0
ABANDONED_BELOW = 50.0
SEGMENT_KEYS: tuple[str, ...] = (
    "country", "genre_primary", "device_type", "quality", "is_netflix_original", "content_type",
)  # fmt: skip
UNKNOWN = "Unknown"


def window_start(event_time: Column) -> Column:
    """Start of the tumbling 5-minute window holding ``event_time`` (windows aligned to the epoch).

    Arithmetic rather than ``F.window``: Spark plans ``window`` with a filter that drops rows whose time
    is null, and the stream's single job carries every message, including dead letters without a time.
    """
    micros = F.unix_micros(event_time)
    return F.timestamp_micros(micros - F.pmod(micros, F.lit(WINDOW_MINUTES * 60 * 1_000_000)))


def enrich(events: DataFrame, dims: Dimensions) -> DataFrame:
    """Valid, on-time events joined to users and movies, with segment keys, flags and window."""
    users = F.broadcast(dims.users.select("user_id", F.col("country").alias("_user_country"), "monthly_spend",
                                          "usual_quality_rank"))  # fmt: skip
    movies = F.broadcast(dims.movies)
    joined = events.join(users, "user_id", "left").join(movies, "movie_id", "left")
    progress = F.col("progress_percentage")
    rank = quality_rank("quality")
    return (
        joined.withColumn("country", F.coalesce("_user_country", "location_country", F.lit(UNKNOWN)))
        .withColumn("genre_primary", F.coalesce("genre_primary", F.lit(UNKNOWN)))
        .withColumn("device_type", F.coalesce("device_type", F.lit(UNKNOWN)))
        .withColumn("content_type", F.coalesce("content_type", F.lit(UNKNOWN)))
        .withColumn("low_engagement", F.coalesce(progress < LOW_ENGAGEMENT_BELOW, F.lit(False)))
        .withColumn(
            "abandoned",
            F.coalesce((F.col("action") == "stopped") & (progress < ABANDONED_BELOW), F.lit(False)),
        )
        .withColumn("completed", F.col("action") == "completed")
        .withColumn("quality_downgrade", F.coalesce(rank < F.col("usual_quality_rank"), F.lit(False)))
        .withColumn("at_risk", F.col("low_engagement") | F.col("abandoned") | F.col("quality_downgrade"))
        .withColumn("window_start", window_start(F.col("event_time")).cast("timestamp_ntz"))
        .withColumn("segment_id", F.xxhash64(*SEGMENT_KEYS))
        .drop("_user_country")
    )


SESSION_COLUMNS: tuple[str, ...] = (
    "window_start", "segment_id", *SEGMENT_KEYS, "user_id", "watch_duration_minutes",
    "progress_percentage", "imdb_rating", "low_engagement", "abandoned", "quality_downgrade", "completed",
    "at_risk", "monthly_spend",
)  # fmt: skip
