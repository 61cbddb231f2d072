"""The raw contract: the six CSVs of the public "Netflix 2025 User Behavior Dataset" and their domains.

The generator writes exactly these headers, the raw asset checks enforce them, and the Spark Silver job
reads with an explicit schema derived from the same lists, so a user who drops the real Kaggle CSVs
into ``raw/`` changes nothing else.
"""

from __future__ import annotations

RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "user_id", "email", "first_name", "last_name", "age", "gender", "country", "state_province",
        "city", "subscription_plan", "subscription_start_date", "is_active", "monthly_spend",
        "primary_device", "household_size", "created_at",
    ),
    "movies": (
        "movie_id", "title", "content_type", "genre_primary", "genre_secondary", "release_year",
        "duration_minutes", "rating", "language", "country_of_origin", "imdb_rating", "production_budget",
        "box_office_revenue", "number_of_seasons", "number_of_episodes", "is_netflix_original",
        "added_to_platform", "content_warning",
    ),
    "watch_history": (
        "session_id", "user_id", "movie_id", "watch_date", "device_type", "watch_duration_minutes",
        "progress_percentage", "action", "quality", "location_country", "is_download", "user_rating",
    ),
    "reviews": (
        "review_id", "user_id", "movie_id", "rating", "review_date", "device_type", "is_verified_watch",
        "helpful_votes", "total_votes", "review_text", "sentiment", "sentiment_score",
    ),
    "search_logs": (
        "search_id", "user_id", "search_query", "search_date", "results_returned",
        "clicked_result_position", "device_type", "search_duration_seconds", "had_typo", "used_filters",
        "location_country",
    ),
    "recommendation_logs": (
        "recommendation_id", "user_id", "movie_id", "recommendation_date", "recommendation_type",
        "recommendation_score", "was_clicked", "position_in_list", "device_type", "time_of_day",
        "algorithm_version",
    ),
}  # fmt: skip

RAW_TABLES: tuple[str, ...] = tuple(RAW_COLUMNS)


RAW_PREFIX = "raw"
# A table's file may land plain or gzip-compressed; both names mean the same table (one of them, never both).
RAW_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")


def raw_key(table: str) -> str:
    """Bucket key of a raw table's CSV as the generator writes it (plain text)."""
    return f"{RAW_PREFIX}/{table}.csv"


def raw_keys(table: str) -> tuple[str, ...]:
    """Every bucket key a raw table's file may have: ``raw/<table>.csv`` or ``raw/<table>.csv.gz``."""
    return tuple(f"{RAW_PREFIX}/{table}{suffix}" for suffix in RAW_SUFFIXES)


COUNTRIES: tuple[str, ...] = ("USA", "Canada")
STATES: dict[str, tuple[str, ...]] = {
    "USA": (
        "California", "Texas", "Florida", "New York", "Illinois", "Pennsylvania", "Ohio", "Georgia",
        "North Carolina", "Michigan", "New Jersey", "Virginia", "Washington", "Arizona", "Massachusetts",
        "Colorado", "Oregon", "Minnesota",
    ),
    "Canada": (
        "Ontario", "Quebec", "British Columbia", "Alberta", "Manitoba", "Saskatchewan", "Nova Scotia",
        "New Brunswick",
    ),
}  # fmt: skip
SUBSCRIPTION_PLANS: tuple[str, ...] = ("Basic", "Standard", "Premium", "Premium+")
GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama", "Family",
    "Fantasy", "History", "Horror", "Music", "Mystery", "Romance", "Sci-Fi", "Sport", "Thriller", "War",
    "Western",
)  # fmt: skip
CONTENT_TYPES: tuple[str, ...] = ("Movie", "TV Series", "Documentary", "Stand-up Comedy", "Limited Series")
DEVICES: tuple[str, ...] = ("Smart TV", "Tablet", "Desktop", "Mobile", "Laptop", "Gaming Console")
QUALITIES: tuple[str, ...] = ("SD", "HD", "4K", "Ultra HD")
ACTIONS: tuple[str, ...] = ("started", "completed", "stopped", "paused")
GENDERS: tuple[str, ...] = ("Male", "Female", "Other", "Prefer not to say")
