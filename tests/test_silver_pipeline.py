"""Generated raw data through the Dagster Silver asset, checked against an independent pandas reading.

The expectation is computed here from the raw CSVs with pandas, from the rules as docs/data-quality.md
states them (regexes and rule order re-written, nothing imported from ``silver``): which
lines are quarantined and why, which keys survive, and a few value-rule aggregates. The Silver job must
agree line for line; the written Parquet must reconcile, have unique keys, known references and the
contract's types; every asset check must pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import Definitions, ExecuteInProcessResult, materialize

from core.bucket import Bucket
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
from datagen import generate
from netflix_assets.defs.raw import definitions as raw
from netflix_assets.defs.silver import assets as silver_assets
from netflix_assets.defs.silver import definitions as silver
from netflix_assets.resources import build_resources
from tests.spark_fixtures import silver_test_settings, spark_session_fixture  # noqa: F401  (`spark`)

SCALE = 0.05
pytestmark = pytest.mark.slow

# -- the contract, transcribed from docs/data-quality.md ---------------------------------------------------
INT, DOUBLE, BOOL, DATE, TS = "int", "double", "bool", "date", "timestamp"
TYPES: dict[str, dict[str, str]] = {
    "users": {"age": INT, "household_size": INT, "monthly_spend": DOUBLE, "is_active": BOOL,
              "subscription_start_date": DATE, "created_at": TS},
    "movies": {"release_year": INT, "number_of_seasons": INT, "number_of_episodes": INT,
               "duration_minutes": DOUBLE, "imdb_rating": DOUBLE, "production_budget": DOUBLE,
               "box_office_revenue": DOUBLE,
               "is_netflix_original": BOOL, "content_warning": BOOL, "added_to_platform": DATE},
    "watch_history": {"user_rating": INT, "watch_duration_minutes": DOUBLE, "progress_percentage": DOUBLE,
                      "is_download": BOOL, "watch_date": DATE},
    "reviews": {"rating": INT, "helpful_votes": INT, "total_votes": INT, "sentiment_score": DOUBLE,
                "is_verified_watch": BOOL, "review_date": DATE},
    "search_logs": {"results_returned": INT, "clicked_result_position": INT,
                    "search_duration_seconds": DOUBLE, "had_typo": BOOL, "used_filters": BOOL,
                    "search_date": DATE},
    "recommendation_logs": {"position_in_list": INT, "recommendation_score": DOUBLE, "was_clicked": BOOL,
                            "recommendation_date": DATE},
}  # fmt: skip
REQUIRED = {
    "users": ["user_id"],
    "movies": ["movie_id"],
    "watch_history": ["session_id", "user_id", "movie_id", "watch_date"],
    "reviews": ["review_id", "user_id", "movie_id", "review_date"],
    "search_logs": ["search_id", "user_id", "search_date"],
    "recommendation_logs": ["recommendation_id", "user_id", "movie_id", "recommendation_date"],
}
_TIME = r"[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}(:?\d{2})?)?"
PATTERNS = {
    INT: r"[+-]?\d+(\.0*)?",
    DOUBLE: r"[+-]?(\d+(\.\d*)?|\.\d+)",
    BOOL: r"(?i)(true|false|t|f|yes|no|y|n|1|0)",
    DATE: rf"\d{{4}}-\d{{2}}-\d{{2}}({_TIME})?",
    TS: rf"\d{{4}}-\d{{2}}-\d{{2}}{_TIME}",
}
NULL_TOKENS = ("", "NaN", "nan", "NULL", "null", "None")
ARROW_TYPES = {
    INT: pa.int32(),
    DOUBLE: pa.float64(),
    BOOL: pa.bool_(),
    DATE: pa.date32(),
    TS: pa.timestamp("us"),
}
ALL_STATES = tuple(state for states in STATES.values() for state in states)
DOMAINS = {
    "gender": GENDERS,
    "country": COUNTRIES,
    "location_country": COUNTRIES,
    "state_province": ALL_STATES,
    "subscription_plan": SUBSCRIPTION_PLANS,
    "primary_device": DEVICES,
    "device_type": DEVICES,
    "content_type": CONTENT_TYPES,
    "genre_primary": GENRES,
    "genre_secondary": GENRES,
    "quality": QUALITIES,
    "action": ACTIONS,
}
TABLES = list(RAW_COLUMNS)


def typed(kind: str, text: pd.Series) -> pd.Series:
    """Parsed values (NaN/NaT/None when the text is not in the documented notation)."""
    ok = text.notna() & text.fillna("").str.fullmatch(PATTERNS[kind])
    if kind in (INT, DOUBLE):
        return pd.to_numeric(text.where(ok), errors="coerce")
    if kind == BOOL:
        lowered = text.where(ok).str.lower()
        return lowered.map(lambda v: v in ("true", "t", "yes", "y", "1") if isinstance(v, str) else None)
    if kind == DATE:  # the date as written
        return pd.to_datetime(text.where(ok).str[:10], format="%Y-%m-%d", errors="coerce")
    return pd.to_datetime(text.where(ok), format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)


def reference(raw_dir: Path) -> dict[str, dict[str, Any]]:
    """Each table's quarantined (line, reason) pairs and Silver frame, by the documented rules."""
    out: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        frame = pd.read_csv(
            raw_dir / f"{table}.csv", dtype=str, keep_default_na=False, skip_blank_lines=False
        )
        lines = (raw_dir / f"{table}.csv").read_bytes().count(b"\n")
        assert len(frame) == lines - 1, "the generator writes one row per line"
        text = frame.apply(lambda s: s.str.strip(" ").replace(list(NULL_TOKENS), None))
        values = {c: typed(TYPES[table][c], text[c]) if c in TYPES[table] else text[c] for c in frame.columns}
        reason = pd.Series(None, index=frame.index, dtype=object)

        def fire(condition: pd.Series, name: str, reason: pd.Series = reason) -> None:
            reason.mask(reason.isna() & condition, name, inplace=True)

        for c in REQUIRED[table]:
            fire(text[c].isna(), f"missing_{c}")
        for c in RAW_COLUMNS[table]:
            if c in TYPES[table]:
                fire(text[c].notna() & values[c].isna(), f"invalid_{c}")
        if table == "watch_history":
            duration, progress = values["watch_duration_minutes"], values["progress_percentage"]
            fire(duration.notna() & ~duration.between(0, 1440), "watch_duration_out_of_range")
            fire(progress.notna() & ~progress.between(0, 100), "progress_out_of_range")
        for column, dimension, name in (
            ("user_id", "users", "orphan_user"),
            ("movie_id", "movies", "orphan_movie"),
        ):
            if table not in ("users", "movies") and column in frame.columns:
                fire(~text[column].isin(set(out[dimension]["silver"][column])), name)
        passed = reason.isna()
        candidates = text[passed]
        fire(candidates.duplicated(keep="first").reindex(frame.index, fill_value=False), "duplicate_row")
        line_numbers = pd.Series(frame.index + 2, index=frame.index)
        remaining = text[reason.isna()].assign(_filled=text.notna().sum(axis=1), _line=line_numbers)
        ordered = remaining.sort_values(["_filled", "_line"], ascending=[False, True])
        key = RAW_COLUMNS[table][0]
        fire(ordered[key].duplicated(keep="first").reindex(frame.index, fill_value=False), "duplicate_key")
        kept = reason.isna()
        silver_frame = pd.DataFrame({c: values[c][kept] for c in frame.columns})
        for c, domain in DOMAINS.items():
            if c in silver_frame:
                spelling = {d.lower(): d for d in domain}
                silver_frame[c] = silver_frame[c].map(
                    lambda v, s=spelling: s.get(v.lower(), v) if isinstance(v, str) else v
                )
        quarantined = sorted(zip((frame.index[~kept] + 2).tolist(), reason[~kept].tolist(), strict=True))
        out[table] = {"silver": silver_frame, "quarantine": quarantined, "raw_rows": len(frame)}
    return out


@pytest.fixture(scope="module")
def run(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[ExecuteInProcessResult, Bucket, dict]:
    settings = silver_test_settings(tmp_path_factory.mktemp("pipeline"))
    bucket = Bucket.from_settings(settings)
    generate(bucket, scale=SCALE)
    defs = Definitions.merge(raw.definitions(settings), silver.definitions(settings))
    result = materialize(list(defs.assets or []), resources=build_resources(settings), raise_on_error=False)
    return result, bucket, reference(bucket.local_path("raw"))


def written(bucket: Bucket, layer: str, table: str) -> pd.DataFrame:
    return pd.read_parquet(bucket.uri(f"{layer}/{table}"))


def test_run_succeeds_and_every_check_passes(run: tuple[ExecuteInProcessResult, Bucket, dict]) -> None:
    result, _, _ = run
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == "silver"]
    names = {(e.asset_key.path[1], e.check_name) for e in evaluations}
    assert len(names) == 6 * 3 + 4  # accounting, key, share everywhere; references on the four facts
    failed = [
        (e.asset_key.to_user_string(), e.check_name, e.description) for e in evaluations if not e.passed
    ]
    assert failed == []


@pytest.mark.parametrize("table", TABLES)
def test_quarantine_matches_the_reference_line_for_line(
    run: tuple[ExecuteInProcessResult, Bucket, dict], table: str
) -> None:
    _, bucket, expected = run
    quarantine = written(bucket, "quarantine", table)
    got = sorted(zip(quarantine["line_number"].tolist(), quarantine["reason"].tolist(), strict=True))
    assert got == expected[table]["quarantine"]
    assert {r for _, r in got} >= ({"duplicate_row"} if table != "recommendation_logs" else set())


@pytest.mark.parametrize("table", TABLES)
def test_silver_reconciles_with_unique_keys_and_known_references(
    run: tuple[ExecuteInProcessResult, Bucket, dict], table: str
) -> None:
    _, bucket, expected = run
    table_silver = written(bucket, "silver", table)
    key = RAW_COLUMNS[table][0]
    assert len(table_silver) + len(written(bucket, "quarantine", table)) == expected[table]["raw_rows"]
    assert table_silver[key].is_unique
    assert set(table_silver[key]) == set(expected[table]["silver"][key])
    for column, dimension in (("user_id", "users"), ("movie_id", "movies")):
        if table not in ("users", "movies") and column in table_silver:
            assert set(table_silver[column]) <= set(written(bucket, "silver", dimension)[column])
    lines = set(table_silver["_source_line"]) | set(written(bucket, "quarantine", table)["line_number"])
    assert lines == set(range(2, expected[table]["raw_rows"] + 2))
    assert set(table_silver["_source_file"]) <= {raw_key(table)}


@pytest.mark.parametrize("table", TABLES)
def test_silver_types_are_the_contract(run: tuple[ExecuteInProcessResult, Bucket, dict], table: str) -> None:
    _, bucket, _ = run
    schema = pq.read_schema(next(Path(bucket.uri(f"silver/{table}")).rglob("*.parquet")))
    for column in RAW_COLUMNS[table]:
        want = ARROW_TYPES.get(TYPES[table].get(column, ""), pa.string())
        assert schema.field(column).type == want, column
    assert schema.field("_source_line").type == pa.int64()


def test_value_rules_match_the_reference(run: tuple[ExecuteInProcessResult, Bucket, dict]) -> None:
    _, bucket, expected = run
    users, ref_users = written(bucket, "silver", "users"), expected["users"]["silver"]
    ref_age_flagged = ~ref_users["age"].between(5, 110) & ref_users["age"].notna()
    assert users["age_flagged"].sum() == ref_age_flagged.sum() > 0
    assert users["age"].notna().sum() == (ref_users["age"].notna() & ~ref_age_flagged).sum()
    spend = ref_users["monthly_spend"]
    assert users["monthly_spend_flagged"].sum() == ((spend < 0) | (spend > 1000)).sum()
    # The generator writes the public file's fractional created_at: kept to the microsecond.
    created = users.set_index("user_id")["created_at"].sort_index()
    assert (created.dt.microsecond > 0).mean() > 0.99
    assert created.tolist() == ref_users.set_index("user_id")["created_at"].sort_index().tolist()
    assert users["household_size"].notna().sum() == ref_users["household_size"].notna().sum() > 0
    watch, ref_watch = written(bucket, "silver", "watch_history"), expected["watch_history"]["silver"]
    assert np.isclose(watch["watch_duration_minutes"].sum(), ref_watch["watch_duration_minutes"].sum())
    assert watch["user_rating"].notna().sum() == ref_watch["user_rating"].between(1, 5).sum()
    assert sorted(watch["device_type"].dropna().unique()) == sorted(
        ref_watch["device_type"].dropna().unique()
    )
    months = pd.to_datetime(watch["watch_date"]).dt.strftime("%Y-%m")
    assert (watch["watch_month"].astype(str) == months).all()
    assert set(watch["watch_month"].astype(str)) == {
        p.name.removeprefix("watch_month=")
        for p in Path(bucket.uri("silver/watch_history")).glob("watch_month=*")
    }


def test_a_fact_alone_reuses_the_written_dimensions(run: tuple[ExecuteInProcessResult, Bucket, dict]) -> None:
    """Subsetting: re-running only watch_history reads Silver users/movies from the bucket."""
    _, bucket, expected = run
    settings = silver_test_settings(Path(bucket.url).parent)
    again = materialize(
        [silver_assets.silver_tables],
        selection=[silver_assets.silver_asset_key("watch_history")],
        resources=build_resources(settings),
    )
    assert [e.asset_key.path[1] for e in again.get_asset_materialization_events()] == ["watch_history"]
    quarantine = written(bucket, "quarantine", "watch_history")
    got = sorted(zip(quarantine["line_number"], quarantine["reason"], strict=True))
    assert got == expected["watch_history"]["quarantine"]
