"""Bad raw input through the real Silver asset: each case ends in a named error or a quarantine reason.

Three Dagster materializations on hand-written CSVs (one Spark session for the module): one whose files
carry row-level damage (quarantined, counts reconcile), one whose headers break the contract (the step
fails naming file and columns; the healthy tables still land), one with a 0-byte users file (the facts
that need users are not built). Expected line numbers and reasons are derived from the rows written here
and the rule order of docs/data-quality.md, not read back from the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import ExecuteInProcessResult, materialize

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS, raw_key
from core.contracts.silver import CONTRACTS, Kind
from core.settings import Settings
from netflix_assets.defs.silver.assets import silver_asset_key, silver_tables
from netflix_assets.resources import build_resources
from silver.job import SilverJob
from silver.verify import QUARANTINE_SHARE, Severity, run_and_verify
from tests.spark_fixtures import (  # noqa: F401  (the module's `spark` fixture)
    csv_text,
    silver_test_settings,
    spark_session_fixture,
    valid_row,
    write_dimensions,
    write_raw,
)


def materialize_silver(settings: Settings, tables: list[str]) -> ExecuteInProcessResult:
    return materialize(
        [silver_tables],
        selection=[silver_asset_key(t) for t in tables],
        resources=build_resources(settings),
        raise_on_error=False,
    )


def data_lines(bucket: Bucket, table: str) -> int:
    """Data rows of a raw file as the contract counts them: lines after the header."""
    data = bucket.read_bytes(raw_key(table))
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return max(lines - 1, 0)


def quarantine(bucket: Bucket, table: str) -> pd.DataFrame:
    return pd.read_parquet(bucket.uri(f"quarantine/{table}"))


def silver(bucket: Bucket, table: str) -> pd.DataFrame:
    return pd.read_parquet(bucket.uri(f"silver/{table}"))


def checks_of(result: ExecuteInProcessResult, table: str) -> dict[str, Any]:
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == silver_asset_key(table)
    }


def failure_text(result: ExecuteInProcessResult) -> str:
    failures = result.get_step_failure_events()
    assert failures, "expected the Silver step to fail"
    return "\n".join(str(f.step_failure_data.error.message) for f in failures if f.step_failure_data.error)


def assert_reconciles(result: ExecuteInProcessResult, bucket: Bucket, table: str) -> None:
    """raw = Silver + quarantine, counted from the file and the Parquet; the blocking check agrees."""
    assert len(silver(bucket, table)) + len(quarantine(bucket, table)) == data_lines(bucket, table)
    accounting = checks_of(result, table)["row_accounting"]
    assert accounting.passed, accounting.description


# -- row-level damage: quarantined -------------------------------------------------------------------------
TRUNCATED_AT = 25  # characters kept of the last reviews line
BAD_BYTES = b"\xff\xfe"
ROWS = 10  # one damaged row in ten stays under the default 10% quarantine warn share


@pytest.fixture(scope="module")
def damaged(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[ExecuteInProcessResult, Bucket]:
    settings = silver_test_settings(tmp_path_factory.mktemp("damaged"))
    bucket = Bucket.from_settings(settings)
    write_dimensions(bucket)
    # watch_history: text in a numeric column on the second data row (line 3).
    watch = [valid_row("watch_history", i) for i in range(1, ROWS + 1)]
    watch[1]["watch_duration_minutes"] = "forty"
    write_raw(bucket, "watch_history", watch)
    # reviews: the last line cut short, no final newline.
    text = csv_text([valid_row("reviews", i) for i in range(1, ROWS + 1)], RAW_COLUMNS["reviews"])
    lines = text.rstrip("\n").split("\n")
    lines[-1] = lines[-1][:TRUNCATED_AT]
    bucket.write_bytes(raw_key("reviews"), "\n".join(lines).encode())
    # search_logs: invalid UTF-8 bytes inside the query of the first data row (line 2).
    body = csv_text(
        [valid_row("search_logs", i, search_query=f"QUERY {i}") for i in range(1, ROWS + 1)],
        RAW_COLUMNS["search_logs"],
    )
    raw = body.encode().replace(b"QUERY", b"caf" + BAD_BYTES, 1)
    bucket.write_bytes(raw_key("search_logs"), raw)
    # recommendation_logs: the header line repeated as the second data row (line 3).
    header = list(RAW_COLUMNS["recommendation_logs"])
    recs: list[dict[str, str] | list[str]] = [valid_row("recommendation_logs", i) for i in range(1, ROWS + 1)]
    recs.insert(1, header)
    write_raw(bucket, "recommendation_logs", recs)
    result = materialize_silver(settings, ["users", "movies", "watch_history", "reviews", "search_logs",
                                           "recommendation_logs"])  # fmt: skip
    return result, bucket


def test_damaged_rows_do_not_fail_the_run(damaged: tuple[ExecuteInProcessResult, Bucket]) -> None:
    result, bucket = damaged
    assert result.success
    for table in RAW_COLUMNS:
        assert_reconciles(result, bucket, table)


def test_text_in_numeric_column_is_quarantined_as_invalid(
    damaged: tuple[ExecuteInProcessResult, Bucket],
) -> None:
    result, bucket = damaged
    rows = quarantine(bucket, "watch_history")
    assert rows[["line_number", "reason"]].values.tolist() == [[3, "invalid_watch_duration_minutes"]]
    assert rows["watch_duration_minutes"].tolist() == ["forty"]
    assert rows["source_file"].tolist() == ["raw/watch_history.csv"]
    assert_reconciles(result, bucket, "watch_history")


def test_truncated_last_line_is_malformed(damaged: tuple[ExecuteInProcessResult, Bucket]) -> None:
    result, bucket = damaged
    rows = quarantine(bucket, "reviews")
    last_line = data_lines(bucket, "reviews") + 1
    assert rows[["line_number", "reason"]].values.tolist() == [[last_line, "malformed_row"]]
    assert len(rows["raw_line"].iloc[0]) == TRUNCATED_AT  # the line as it was, for whoever fixes the export
    assert_reconciles(result, bucket, "reviews")


def test_non_utf8_bytes_make_the_row_malformed(damaged: tuple[ExecuteInProcessResult, Bucket]) -> None:
    result, bucket = damaged
    rows = quarantine(bucket, "search_logs")
    assert rows[["line_number", "reason"]].values.tolist() == [[2, "malformed_row"]]
    assert "\ufffd" in rows["raw_line"].iloc[0]
    assert_reconciles(result, bucket, "search_logs")


def test_duplicated_header_is_quarantined(damaged: tuple[ExecuteInProcessResult, Bucket]) -> None:
    result, bucket = damaged
    contract = CONTRACTS["recommendation_logs"]
    # Column names are not values: the first typed column (in column order) fails to parse first (rule 3).
    first_typed = next(c for c in contract.columns if contract.kind(c) is not Kind.STRING)
    rows = quarantine(bucket, "recommendation_logs")
    assert rows[["line_number", "reason"]].values.tolist() == [[3, f"invalid_{first_typed}"]]
    assert rows[contract.key].tolist() == [contract.key]
    assert_reconciles(result, bucket, "recommendation_logs")


# -- headers that break the contract: the step fails, naming file and columns ------------------------------
@pytest.fixture(scope="module")
def bad_headers(
    spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ExecuteInProcessResult, Bucket]:
    settings = silver_test_settings(tmp_path_factory.mktemp("headers"))
    bucket = Bucket.from_settings(settings)
    write_dimensions(bucket)
    missing = [c for c in RAW_COLUMNS["watch_history"] if c != "quality"]
    write_raw(bucket, "watch_history", [valid_row("watch_history", 1)], header=missing)
    extra = [*RAW_COLUMNS["reviews"], "nickname"]
    write_raw(bucket, "reviews", [valid_row("reviews", 1, nickname="x")], header=extra)
    renamed = ["device" if c == "device_type" else c for c in RAW_COLUMNS["search_logs"]]
    write_raw(bucket, "search_logs", [valid_row("search_logs", 1)], header=renamed)
    write_raw(bucket, "recommendation_logs", [])  # header only
    result = materialize_silver(settings, list(RAW_COLUMNS))
    return result, bucket


def test_missing_column_fails_naming_file_and_column(
    bad_headers: tuple[ExecuteInProcessResult, Bucket],
) -> None:
    result, bucket = bad_headers
    assert not result.success
    message = failure_text(result)
    assert f"{bucket.uri('raw/watch_history.csv')}: header does not match the contract" in message
    assert "missing columns: 'quality'" in message
    assert "Traceback" not in message.splitlines()[0]
    assert silver_asset_key("watch_history") not in _materialized(result)


def test_extra_column_fails_naming_file_and_column(
    bad_headers: tuple[ExecuteInProcessResult, Bucket],
) -> None:
    result, bucket = bad_headers
    message = failure_text(result)
    assert f"{bucket.uri('raw/reviews.csv')}: header does not match the contract" in message
    assert "extra columns: 'nickname'" in message
    assert silver_asset_key("reviews") not in _materialized(result)


def test_renamed_column_fails_naming_both_names(bad_headers: tuple[ExecuteInProcessResult, Bucket]) -> None:
    result, bucket = bad_headers
    message = failure_text(result)
    assert f"{bucket.uri('raw/search_logs.csv')}: header does not match the contract" in message
    assert "renamed columns: 'device_type' -> 'device'" in message


def test_header_only_file_gives_an_empty_silver_table(
    bad_headers: tuple[ExecuteInProcessResult, Bucket],
) -> None:
    """The other tables' broken headers do not stop a healthy one; an empty table still has its schema."""
    result, bucket = bad_headers
    assert {silver_asset_key(t) for t in ("users", "movies", "recommendation_logs")} <= _materialized(result)
    table = silver(bucket, "recommendation_logs")
    assert len(table) == 0
    assert list(table.columns) == list(CONTRACTS["recommendation_logs"].silver_columns)
    assert len(quarantine(bucket, "recommendation_logs")) == 0
    checks = checks_of(result, "recommendation_logs")
    assert set(checks) == {"row_accounting", "unique_key", "referential_integrity", "quarantine_share"}
    assert all(check.passed for check in checks.values())


def test_empty_file_fails_and_blocks_the_tables_that_need_it(spark: Any, tmp_path: Path) -> None:
    settings = silver_test_settings(tmp_path)
    bucket = Bucket.from_settings(settings)
    write_dimensions(bucket)
    bucket.write_bytes(raw_key("users"), b"")
    write_raw(bucket, "search_logs", [valid_row("search_logs", 1)])
    result = materialize_silver(settings, ["users", "movies", "search_logs"])
    assert not result.success
    message = failure_text(result)
    assert f"{bucket.uri('raw/users.csv')} is empty (0 bytes)" in message
    assert "silver search_logs not built: Silver users failed in this run" in message
    assert _materialized(result) == {silver_asset_key("movies")}


def _materialized(result: ExecuteInProcessResult) -> set[Any]:
    return {event.asset_key for event in result.get_asset_materialization_events()}


# -- a format the rules do not read: the check says which rule, how many, and shows the values -----------
def test_a_format_problem_is_named_with_examples(spark: Any, tmp_path: Path) -> None:
    """Every created_at in US notation: the quarantine_share check fails naming rule 3, the count and the
    first three offending values with their lines, so on-call sees a format problem, not bad data."""
    bucket = Bucket.from_settings(silver_test_settings(tmp_path))
    stamps = [f"04/{day:02d}/2023 14:40:50" for day in range(1, 11)]
    write_raw(bucket, "users", [valid_row("users", i, created_at=s) for i, s in enumerate(stamps, 1)])
    job = SilverJob(spark, bucket)
    result, checks = run_and_verify(job, "users", warn_share=0.1, error_share=0.25)
    (share,) = [c for c in checks if c.name == QUARANTINE_SHARE]
    assert not share.passed and share.severity is Severity.ERROR
    assert (
        "100.00% of" in share.description and "raw/users.csv quarantined (10 of 10 rows)" in share.description
    )
    assert "invalid_created_at (rule 3, value not in the documented notation of its type): 10 rows" in (
        share.description
    )
    assert (
        "e.g. line 2 '04/01/2023 14:40:50', line 3 '04/02/2023 14:40:50', line 4 '04/03/2023 14:40:50'"
        in (share.description)
    )
    assert share.metadata["examples"]["invalid_created_at"][0] == "line 2: '04/01/2023 14:40:50'"
    assert result.quarantine_rows == 10
