"""Fixtures and helpers for the Silver tests: one SparkSession per test module, hand-written raw CSVs.

Import the fixture into a test module (``from tests.spark_fixtures import spark_session_fixture``,
with ``# noqa: F401``) and request it as ``spark``. The
Dagster ``PySparkResource`` calls ``getOrCreate`` and so attaches to this session instead of paying
another JVM start per materialization.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS, raw_key
from core.contracts.silver import CONTRACTS, Kind
from core.settings import Settings
from core.spark import start_spark


def silver_test_settings(data_dir: Path) -> Settings:
    """Settings sized for the 2-core test machine."""
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        spark_master="local[2]",
        spark_shuffle_partitions=4,
        spark_driver_memory="2g",
    )


@pytest.fixture(scope="module", name="spark")
def spark_session_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    settings = silver_test_settings(tmp_path_factory.mktemp("spark"))
    session = start_spark(settings, "netflix-lambda-tests")
    try:
        yield session
    finally:
        session.stop()


# -- hand-written raw files -------------------------------------------------------------------------------
_VALID: dict[Kind, str] = {
    Kind.INT: "3",
    Kind.DOUBLE: "42.5",
    Kind.BOOLEAN: "True",
    Kind.DATE: "2024-03-01",
    Kind.TIMESTAMP: "2024-03-01 10:11:12",
}
_SPECIAL: dict[tuple[str, str], str] = {
    ("users", "age"): "34",
    ("movies", "rating"): "TV-MA",
    ("watch_history", "progress_percentage"): "55.5",
    ("watch_history", "user_rating"): "4",
    ("reviews", "rating"): "4",
}
KEY_PREFIX = {"users": "U", "movies": "M", "watch_history": "S", "reviews": "R", "search_logs": "Q",
              "recommendation_logs": "C"}  # fmt: skip


def valid_row(table: str, index: int, **overrides: str) -> dict[str, str]:
    """A row every rule accepts: key ``<prefix><index>``, references to user U1 and movie M1."""
    contract = CONTRACTS[table]
    row = {
        column: _SPECIAL.get((table, column))
        or (f"{column} {index}" if contract.kind(column) is Kind.STRING else _VALID[contract.kind(column)])
        for column in contract.columns
    }
    row[contract.key] = f"{KEY_PREFIX[table]}{index}"
    for ref in contract.references:
        row[ref.column] = f"{KEY_PREFIX[ref.table]}1"
    row.update(overrides)
    return row


def csv_text(rows: Sequence[dict[str, str] | Sequence[str]], header: Sequence[str]) -> str:
    """CSV as the generator writes it: minimal quoting, ``\\n`` line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)
    return out.getvalue()


def write_raw(
    bucket: Bucket,
    table: str,
    rows: Sequence[dict[str, str] | Sequence[str]],
    header: Sequence[str] | None = None,
) -> None:
    bucket.write_bytes(raw_key(table), csv_text(rows, header or RAW_COLUMNS[table]).encode())


def write_dimensions(bucket: Bucket, users: int = 3, movies: int = 3) -> None:
    write_raw(bucket, "users", [valid_row("users", i) for i in range(1, users + 1)])
    write_raw(bucket, "movies", [valid_row("movies", i) for i in range(1, movies + 1)])
