"""The Silver contract as data: types, required fields, keys, domains and references of each table.

Derived from ``raw_schema.py`` and ``docs/data-quality.md`` in one place so the rules, the writer and the
asset checks cannot disagree about which column is a key or how it is typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.contracts.raw import (
    ACTIONS,
    CONTENT_TYPES,
    COUNTRIES,
    DEVICES,
    GENDERS,
    GENRES,
    QUALITIES,
    RAW_COLUMNS,
    STATES,
    SUBSCRIPTION_PLANS,
    raw_key,
)


class Kind(StrEnum):
    """How a raw text value is parsed; the value is the Spark SQL type it becomes."""

    STRING = "string"
    INT = "int"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp_ntz"  # wall-clock time as written, no zone: DuckDB and BigQuery read TIMESTAMP


SILVER_PREFIX = "silver"  # bucket folder of the Silver tables (one sub-folder per table)
QUARANTINE_PREFIX = "quarantine"
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"
REASON = "reason"
QUARANTINE_FILE = "source_file"
QUARANTINE_LINE = "line_number"
QUARANTINE_RAW_LINE = "raw_line"
QUARANTINE_VALUE = "rejected_value"  # the text the rule judged (docs/data-quality.md, "Quarantine")

# Order matters: users and movies first, the facts check their references against them.
TABLE_ORDER: tuple[str, ...] = (
    "users",
    "movies",
    "watch_history",
    "reviews",
    "search_logs",
    "recommendation_logs",
)
DIMENSIONS: tuple[str, ...] = ("users", "movies")

_TYPES: dict[str, dict[str, Kind]] = {
    "users": {
        "age": Kind.INT, "household_size": Kind.INT, "monthly_spend": Kind.DOUBLE, "is_active": Kind.BOOLEAN,
        "subscription_start_date": Kind.DATE, "created_at": Kind.TIMESTAMP,
    },
    "movies": {
        "release_year": Kind.INT, "number_of_seasons": Kind.INT, "number_of_episodes": Kind.INT,
        "duration_minutes": Kind.DOUBLE, "imdb_rating": Kind.DOUBLE, "production_budget": Kind.DOUBLE,
        "box_office_revenue": Kind.DOUBLE, "is_netflix_original": Kind.BOOLEAN,
        "content_warning": Kind.BOOLEAN, "added_to_platform": Kind.DATE,
    },
    "watch_history": {
        "user_rating": Kind.INT, "watch_duration_minutes": Kind.DOUBLE, "progress_percentage": Kind.DOUBLE,
        "is_download": Kind.BOOLEAN, "watch_date": Kind.DATE,
    },
    "reviews": {
        "rating": Kind.INT, "helpful_votes": Kind.INT, "total_votes": Kind.INT,
        "sentiment_score": Kind.DOUBLE, "is_verified_watch": Kind.BOOLEAN, "review_date": Kind.DATE,
    },
    "search_logs": {
        "results_returned": Kind.INT, "clicked_result_position": Kind.INT,
        "search_duration_seconds": Kind.DOUBLE, "had_typo": Kind.BOOLEAN, "used_filters": Kind.BOOLEAN,
        "search_date": Kind.DATE,
    },
    "recommendation_logs": {
        "position_in_list": Kind.INT, "recommendation_score": Kind.DOUBLE, "was_clicked": Kind.BOOLEAN,
        "recommendation_date": Kind.DATE,
    },
}  # fmt: skip

_REQUIRED: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "movies": ("movie_id",),
    "watch_history": ("session_id", "user_id", "movie_id", "watch_date"),
    "reviews": ("review_id", "user_id", "movie_id", "review_date"),
    "search_logs": ("search_id", "user_id", "search_date"),
    "recommendation_logs": ("recommendation_id", "user_id", "movie_id", "recommendation_date"),
}

_ALL_STATES: tuple[str, ...] = tuple(state for states in STATES.values() for state in states)
ENUM_DOMAINS: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "country": COUNTRIES,
    "location_country": COUNTRIES,
    "state_province": _ALL_STATES,
    "subscription_plan": SUBSCRIPTION_PLANS,
    "primary_device": DEVICES,
    "device_type": DEVICES,
    "content_type": CONTENT_TYPES,
    "genre_primary": GENRES,
    "genre_secondary": GENRES,
    "quality": QUALITIES,
    "action": ACTIONS,
}


@dataclass(frozen=True)
class Reference:
    """A fact column that must exist as the key of a dimension's Silver table (rules 6 and 7)."""

    column: str
    table: str
    reason: str


USER_REF = Reference("user_id", "users", "orphan_user")
MOVIE_REF = Reference("movie_id", "movies", "orphan_movie")


@dataclass(frozen=True)
class TableContract:
    """Everything Silver needs to know about one raw table."""

    name: str
    columns: tuple[str, ...]
    types: dict[str, Kind]
    required: tuple[str, ...]
    key: str
    references: tuple[Reference, ...] = ()
    extra_columns: dict[str, Kind] = field(default_factory=dict)
    partition_by: str | None = None

    def kind(self, column: str) -> Kind:
        return self.types.get(column, Kind.STRING)

    @property
    def raw_key(self) -> str:
        """The plain ``.csv`` key; the file may also land as ``.csv.gz`` (``core.raw_files.find_raw_key``)."""
        return raw_key(self.name)

    @property
    def silver_key(self) -> str:
        return f"{SILVER_PREFIX}/{self.name}"

    @property
    def quarantine_key(self) -> str:
        return f"{QUARANTINE_PREFIX}/{self.name}"

    @property
    def silver_columns(self) -> tuple[str, ...]:
        """Column order as written: raw columns, then added columns, then lineage."""
        return (*self.columns, *self.extra_columns, SOURCE_FILE, SOURCE_LINE)

    @property
    def quarantine_columns(self) -> tuple[str, ...]:
        return (
            *self.columns,
            REASON,
            QUARANTINE_VALUE,
            QUARANTINE_FILE,
            QUARANTINE_LINE,
            QUARANTINE_RAW_LINE,
        )


def _contract(name: str) -> TableContract:
    columns = RAW_COLUMNS[name]
    references = tuple(
        ref for ref in (USER_REF, MOVIE_REF) if name not in DIMENSIONS and ref.column in columns
    )
    extra: dict[str, Kind] = {}
    if name == "users":
        extra = {"age_flagged": Kind.BOOLEAN, "monthly_spend_flagged": Kind.BOOLEAN}
    elif name == "watch_history":
        extra = {"watch_month": Kind.STRING}
    return TableContract(
        name=name,
        columns=columns,
        types=_TYPES[name],
        required=_REQUIRED[name],
        key=columns[0],
        references=references,
        extra_columns=extra,
        partition_by="watch_month" if name == "watch_history" else None,
    )


CONTRACTS: dict[str, TableContract] = {name: _contract(name) for name in TABLE_ORDER}
