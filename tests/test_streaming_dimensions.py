"""The stream's raw-CSV fallback for users and movies types values by the Silver rules (docs/data-quality.md).

Before the batch layer has run, the stream joins the raw files: a gzip export with a byte-order mark, CRLF
line ends, null tokens and a number Silver would reject must give the same nulls and survivors Silver
would, without Spark (pandas only, as the fallback does).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS
from streaming.dimensions import _raw_movies, _raw_users
from tests.spark_fixtures import csv_text, valid_row


def test_raw_users_fallback_reads_an_export_as_silver_would(tmp_path: Path) -> None:
    bucket = Bucket(str(tmp_path))
    rows = [
        valid_row("users", 1, monthly_spend="12.5", country="USA"),
        valid_row("users", 2, monthly_spend="NaN", country="None"),  # null tokens
        valid_row("users", 3, monthly_spend="1e3"),  # not plain decimal: Silver rejects it, so null here
        valid_row("users", 1, monthly_spend="", country=""),  # a sparser copy of U1 loses
    ]
    text = csv_text(rows, RAW_COLUMNS["users"]).replace("\n", "\r\n")
    bucket.write_bytes("raw/users.csv.gz", gzip.compress(b"\xef\xbb\xbf" + text.encode()))
    users = _raw_users(bucket).set_index("user_id")
    assert sorted(users.index) == ["U1", "U2", "U3"]
    assert users.loc["U1", "monthly_spend"] == 12.5 and users.loc["U1", "country"] == "USA"
    assert users.loc["U2", "monthly_spend"] is None and users.loc["U2", "country"] is None
    assert users.loc["U3", "monthly_spend"] is None


def test_raw_movies_fallback_reads_booleans_and_null_tokens(tmp_path: Path) -> None:
    bucket = Bucket(str(tmp_path))
    rows = [
        valid_row("movies", 1, is_netflix_original="True", imdb_rating="7.0"),
        valid_row("movies", 2, is_netflix_original="0", imdb_rating="nan"),
        valid_row("movies", 3, is_netflix_original="NULL", imdb_rating="inf"),
    ]
    bucket.write_bytes("raw/movies.csv", csv_text(rows, RAW_COLUMNS["movies"]).encode())
    movies = _raw_movies(bucket).set_index("movie_id")
    assert movies["is_netflix_original"].tolist() == [True, False, None]
    assert movies["imdb_rating"].tolist() == [7.0, None, None]
