"""Raw assets land and profile each CSV; their blocking checks name the file and the columns at fault."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, materialize

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS, RAW_TABLES
from core.settings import Settings
from netflix_assets.defs.raw.assets import CSV_CHECK, HEADER_CHECK, build_raw_asset
from netflix_assets.resources import build_resources


def csv_bytes(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def run_raw(settings: Settings, table: str, landing_dir: Path | None = None):
    result = materialize(
        [build_raw_asset(table, landing_dir)], resources=build_resources(settings), raise_on_error=False
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return result, checks


def test_generated_files_materialize_with_metadata(settings: Settings) -> None:
    from datagen import generate

    bucket = Bucket.from_settings(settings)
    generate(bucket, scale=0.02, seed=7)
    result = materialize([build_raw_asset(t, None) for t in RAW_TABLES], resources=build_resources(settings))
    assert result.success
    for table in RAW_TABLES:
        key = f"raw/{table}.csv"
        frame = pd.read_csv(bucket.local_path(key), dtype=str, keep_default_na=False)
        (mat,) = [
            m
            for m in result.asset_materializations_for_node(f"raw__{table}")
            if m.asset_key == AssetKey(["raw", table])
        ]
        meta = mat.metadata
        assert meta["dagster/row_count"].value == len(frame)
        assert meta["bytes"].value == bucket.size(key)
        assert meta["sha256"].value == hashlib.sha256(bucket.read_bytes(key)).hexdigest()
        assert meta["columns"].value == list(RAW_COLUMNS[table])
        assert mat.tags["dagster/data_version"] == meta["sha256"].value[:16]
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2 * len(RAW_TABLES) and all(e.passed for e in evaluations)


def test_landing_folder_is_copied_into_the_bucket(settings: Settings, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    payload = csv_bytes(RAW_COLUMNS["movies"], [["movie_00001"] + [""] * 17])
    (landing / "movies.csv").write_bytes(payload)
    result, checks = run_raw(settings, "movies", landing)
    assert result.success and checks[HEADER_CHECK].passed and checks[CSV_CHECK].passed
    assert Bucket.from_settings(settings).read_bytes("raw/movies.csv") == payload


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda cols: [c for c in cols if c != "email"], "missing columns: 'email'"),
        (lambda cols: [*cols, "loyalty_tier"], "extra columns: 'loyalty_tier'"),
        (lambda cols: ["mail" if c == "email" else c for c in cols], "renamed columns: 'email' -> 'mail'"),
        (lambda cols: [cols[1], cols[0], *cols[2:]], "columns out of order"),
    ],
    ids=["missing", "extra", "renamed", "reordered"],
)
def test_header_mismatch_fails_naming_file_and_columns(settings: Settings, mutate, expected: str) -> None:
    header = mutate(list(RAW_COLUMNS["users"]))
    Bucket.from_settings(settings).write_bytes("raw/users.csv", csv_bytes(header, [["x"] * len(header)]))
    _result, checks = run_raw(settings, "users")
    check = checks[HEADER_CHECK]
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert "raw/users.csv" in check.description and expected in check.description


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "is empty (0 bytes)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "NUL bytes"),
        (b"user_id,email\n\xff\xfe\xfa\xfb,x\n" + b"a,b\n" * 10, "not valid UTF-8"),
    ],
    ids=["empty", "binary", "not-utf8"],
)
def test_unreadable_files_fail_the_csv_check(settings: Settings, payload: bytes, expected: str) -> None:
    Bucket.from_settings(settings).write_bytes("raw/reviews.csv", payload)
    _, checks = run_raw(settings, "reviews")
    assert not checks[CSV_CHECK].passed
    assert "raw/reviews.csv" in checks[CSV_CHECK].description and expected in checks[CSV_CHECK].description
    assert not checks[HEADER_CHECK].passed


def test_header_only_file_warns(settings: Settings) -> None:
    Bucket.from_settings(settings).write_bytes(
        "raw/search_logs.csv", csv_bytes(RAW_COLUMNS["search_logs"], [])
    )
    _, checks = run_raw(settings, "search_logs")
    assert not checks[CSV_CHECK].passed and checks[CSV_CHECK].severity == AssetCheckSeverity.WARN
    assert checks[HEADER_CHECK].passed


def test_missing_file_fails_with_instructions(settings: Settings) -> None:
    result, _ = run_raw(settings, "recommendation_logs")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert (
        "raw/recommendation_logs.csv or " in message
        and "raw/recommendation_logs.csv.gz does not exist" in message
    )
    assert "netflix-lambda generate" in message


def test_a_gzip_export_lands_and_counts_records_not_lines(settings: Settings, tmp_path: Path) -> None:
    """``movies.csv.gz`` in the landing folder: copied as is, read decompressed; a quoted field holding a
    line break is one row, blank lines at the end are none (docs/data-quality.md, "Reading")."""
    import gzip

    landing = tmp_path / "landing"
    landing.mkdir()
    rows = [["movie_0001", "Two\nlines"] + [""] * 16, ["movie_0002", "plain"] + [""] * 16]
    text = b"\xef\xbb\xbf" + csv_bytes(RAW_COLUMNS["movies"], rows).replace(b"\n", b"\r\n") + b"\r\n\r\n"
    packed = gzip.compress(text)
    (landing / "movies.csv.gz").write_bytes(packed)
    bucket = Bucket.from_settings(settings)
    bucket.write_bytes("raw/movies.csv", csv_bytes(RAW_COLUMNS["movies"], []))  # an older plain export
    result, checks = run_raw(settings, "movies", landing)
    assert result.success and checks[HEADER_CHECK].passed and checks[CSV_CHECK].passed
    assert not bucket.exists("raw/movies.csv")  # replaced by the landed form, never both
    (mat,) = [m for m in result.asset_materializations_for_node("raw__movies")]
    assert mat.metadata["dagster/row_count"].value == 2
    assert mat.metadata["uri"].value.endswith("raw/movies.csv.gz")
    assert mat.metadata["sha256"].value == hashlib.sha256(packed).hexdigest()  # of the file as stored


def test_both_forms_of_one_table_fail_naming_them(settings: Settings) -> None:
    bucket = Bucket.from_settings(settings)
    payload = csv_bytes(RAW_COLUMNS["users"], [])
    bucket.write_bytes("raw/users.csv", payload)
    bucket.write_bytes("raw/users.csv.gz", payload)
    result, _ = run_raw(settings, "users")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "raw/users.csv and " in failure.step_failure_data.error.message
    assert "users.csv.gz both exist" in failure.step_failure_data.error.message
