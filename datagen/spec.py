"""The numbers the generator promises: table sizes, dirt rates, calendars and behavioural effects.

One module so the rates the tests check, the docstring of the package and the code that applies them
cannot drift apart. Sizes are those of the public Kaggle dataset at ``scale=1``; every count scales
linearly and is rounded per component, so ``users = round(10000*s) + round(300*s)`` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Rows generated per chunk (before duplicates are inserted). Fixed, so the output bytes depend on
# (seed, scale) only; each chunk draws from its own stream seeded by (seed, table, chunk index).
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class TableSize:
    """Rows of one table at scale 1: distinct keys plus the two kinds of duplicate rows."""

    total: int
    exact_duplicates: int = 0  # byte-identical copies of an earlier row
    key_duplicates: int = 0  # an earlier row's key (and who/what/when) with different content


SIZES: dict[str, TableSize] = {
    "users": TableSize(total=10_300, exact_duplicates=300),
    "movies": TableSize(total=1_040, exact_duplicates=40),
    # 4.5% of watch rows repeat a session_id: 80% of them as exact copies, 20% with other content.
    "watch_history": TableSize(total=105_000, exact_duplicates=3_780, key_duplicates=945),
    "reviews": TableSize(total=15_450, exact_duplicates=450),
    "search_logs": TableSize(total=26_500, exact_duplicates=1_500),
    "recommendation_logs": TableSize(total=52_000),
}


@dataclass(frozen=True)
class Plan:
    """Row counts of one table at a given scale."""

    base: int  # rows with a fresh key
    exact_duplicates: int
    key_duplicates: int

    @property
    def total(self) -> int:
        return self.base + self.exact_duplicates + self.key_duplicates


def plan_rows(table: str, scale: float) -> Plan:
    """Exact row counts at ``scale``; users and movies keep at least one row so facts can reference them."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    size = SIZES[table]
    exact = round(size.exact_duplicates * scale)
    key = round(size.key_duplicates * scale)
    if table in ("users", "movies"):
        base = max(1, round((size.total - size.exact_duplicates) * scale))
    else:
        base = max(0, round(size.total * scale) - exact - key)
    if base == 0:
        exact = key = 0
    return Plan(base=base, exact_duplicates=exact, key_duplicates=key)


# -- ids, as the public dataset writes them ---------------------------------------------------------
ID_PREFIXES: dict[str, str] = {
    "users": "user_", "movies": "movie_", "watch_history": "session_", "reviews": "review_",
    "search_logs": "search_", "recommendation_logs": "rec_",
}  # fmt: skip
# Digits of the public files' ids (user_00001, movie_0001, session_000001, review_000001, …): kept at
# every scale that fits them, so generated files mix with the real ones; wider only when a scale needs it.
ID_DIGITS: dict[str, int] = {
    "users": 5, "movies": 4, "watch_history": 6, "reviews": 6, "search_logs": 6, "recommendation_logs": 6,
}  # fmt: skip


def orphan_reach(count: int) -> int:
    """How far past the last user or title the deliberately unknown ids of the facts go."""
    return max(1, count // 100)


def id_width(table: str, scale: float) -> int:
    """Digits of ``table``'s ids at ``scale``: the public width, or more when the largest number needs it
    (for users and movies that includes the unknown ids the facts reference)."""
    count = plan_rows(table, scale).base
    largest = count + (orphan_reach(count) if table in ("users", "movies") else 0)
    return max(ID_DIGITS[table], len(str(largest)))


# -- calendar (days since 1970-01-01) --------------------------------------------------------------
def day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


ACTIVITY_START = day("2024-01-01")
ACTIVITY_END = day("2025-12-31")  # also the "as of" date of is_active
SIGNUP_START = day("2022-01-01")
SIGNUP_END = day("2025-11-30")
SIGNUP_GROWTH = 1.5  # signup density grows linearly to (1 + growth)× its start over the period
CATALOG_START = day("2016-01-01")  # added_to_platform; all content is on the platform before 2024

# -- null rates (share of rows with an empty field) ------------------------------------------------
NULL_RATES: dict[str, dict[str, float]] = {
    "users": {"age": 0.12, "gender": 0.08, "monthly_spend": 0.10, "household_size": 0.15},
    "movies": {"genre_secondary": 0.64, "imdb_rating": 0.14, "production_budget": 0.65},
    "watch_history": {"watch_duration_minutes": 0.12, "progress_percentage": 0.08, "user_rating": 0.80},
    # helpful_votes and total_votes are missing together (the votes were never collected).
    "reviews": {"helpful_votes": 0.12, "total_votes": 0.12, "review_text": 0.05, "sentiment_score": 0.08},
    "search_logs": {"clicked_result_position": 0.51, "search_duration_seconds": 0.05},
    "recommendation_logs": {"recommendation_score": 0.10},
}
# box_office_revenue only exists for movies (≈ 69% null overall); seasons/episodes only for series.
BOX_OFFICE_SHARE_OF_MOVIES = 0.70

# -- outliers and anomalies (share of rows) --------------------------------------------------------
AGE_NEGATIVE = 0.01  # ages -15..-1
AGE_OVER_100 = 0.01  # ages 101..120 (Silver flags those above 110)
SPEND_OUTLIER = 0.03  # monthly_spend 200..1,000
SHARED_EMAIL = 0.02  # users whose email is another user's
RUNTIME_ANOMALY = 0.015  # content of 0–10 minutes or 5–10 hours
ZERO_DURATION = 0.01  # watch sessions of 0 minutes
BINGE_SESSION = 0.015  # watch sessions of 300–780 minutes
ORPHAN_SHARE = 0.005  # watch/review/recommendation rows whose user_id (half) or movie_id (half) is unknown
# Values Silver must quarantine (docs/data-quality.md rules 4 and 5), deliberately rare.
PROGRESS_OVER_100 = 0.0005
NEGATIVE_DURATION = 0.0005

# -- behaviour: effects the marts and churn flags should find --------------------------------------
# Indexed like raw_schema.SUBSCRIPTION_PLANS: Basic, Standard, Premium, Premium+.
PLAN_SHARE = (0.20, 0.35, 0.35, 0.10)
PLAN_PRICE = (8.99, 15.49, 22.99, 27.99)
PLAN_ACTIVITY = (0.75, 1.0, 1.15, 1.35)  # sessions per active day, relative
PLAN_WATCH = (0.85, 1.0, 1.1, 1.3)  # minutes per session, relative
PLAN_COMPLETION = (0.85, 1.0, 1.05, 1.15)  # odds of finishing, relative
PLAN_CHURN = (1.6, 1.0, 0.8, 0.55)  # churn hazard, relative
# Monthly churn hazard of a Standard user from a neutral cohort, tuned for ≈15% inactive users.
CHURN_PER_MONTH = 0.0072
# Churn hazard by signup month (Jan..Dec): holiday-promotion and summer cohorts retain worse.
COHORT_CHURN = (1.1, 0.9, 0.9, 0.9, 0.9, 1.2, 1.3, 1.2, 0.85, 0.85, 1.7, 1.9)
# Quality streamed, per plan: cumulative probabilities over raw_schema.QUALITIES (SD, HD, 4K, Ultra HD).
PLAN_QUALITY = (
    (0.60, 0.40, 0.00, 0.00),
    (0.15, 0.80, 0.05, 0.00),
    (0.05, 0.40, 0.40, 0.15),
    (0.02, 0.18, 0.45, 0.35),
)
BASE_COMPLETION = 0.34
# Relative odds of finishing, by primary genre (others 1.0).
GENRE_COMPLETION: dict[str, float] = {
    "Documentary": 0.55, "History": 0.75, "Biography": 0.8, "War": 0.9, "Music": 0.9,
    "Animation": 1.2, "Comedy": 1.15, "Thriller": 1.2, "Horror": 1.1, "Mystery": 1.15, "Family": 1.1,
}  # fmt: skip
