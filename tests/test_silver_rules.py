"""The rules of docs/data-quality.md on hand-written rows, one behaviour per test, straight through SilverJob.

Each test writes a few lines whose fate the documentation decides (a token that is a boolean, a duplicate
that must lose, a line that is not UTF-8) and reads back what Spark wrote. One Spark session serves the
module; each test gets its own bucket.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS, raw_key
from core.contracts.silver import CONTRACTS
from silver.job import SilverJob
from silver.rules import is_one_of
from tests.spark_fixtures import (  # noqa: F401  (the module's `spark` fixture)
    csv_text,
    silver_test_settings,
    spark_session_fixture,
    valid_row,
    write_dimensions,
    write_raw,
)

Built = Callable[[str], tuple[pd.DataFrame, pd.DataFrame]]


@pytest.fixture
def bucket(tmp_path: Path) -> Bucket:
    bucket = Bucket.from_settings(silver_test_settings(tmp_path))
    write_dimensions(bucket)
    return bucket


@pytest.fixture
def build(spark: SparkSession, bucket: Bucket) -> Built:
    """Run Silver for a table and the dimensions it references (the orphan rules read their Silver)."""

    def run(table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        job = SilverJob(spark, bucket)
        for _, outcome in job.run([table, *(ref.table for ref in CONTRACTS[table].references)]):
            if isinstance(outcome, Exception):
                raise outcome
        silver = pd.read_parquet(bucket.uri(f"silver/{table}")).sort_values("_source_line")
        quarantine = pd.read_parquet(bucket.uri(f"quarantine/{table}")).sort_values("line_number")
        return silver.reset_index(drop=True), quarantine.reset_index(drop=True)

    return run


def reasons(quarantine: pd.DataFrame) -> list[tuple[int, str]]:
    return list(zip(quarantine["line_number"].tolist(), quarantine["reason"].tolist(), strict=True))


def test_booleans_accept_the_documented_tokens_only(bucket: Bucket, build: Built) -> None:
    tokens = ["true", "FALSE", "t", "F", "yes", "No", "y", "N", "1", "0", " True ", "maybe", "2"]
    write_raw(bucket, "search_logs", [valid_row("search_logs", i, had_typo=t) for i, t in enumerate(tokens)])
    silver, quarantine = build("search_logs")
    truthy = {"true", "t", "yes", "y", "1"}
    expected = [t.strip().lower() in truthy for t in tokens[:-2]]
    assert silver["had_typo"].tolist() == expected
    assert reasons(quarantine) == [(13, "invalid_had_typo"), (14, "invalid_had_typo")]


def test_numbers_are_plain_decimals_and_ints_allow_a_zero_fraction(bucket: Bucket, build: Built) -> None:
    durations = ["12", "-0", "+3.5", ".5", "7.", "NaN", "inf", "1e3", "1,000", "0x10"]
    ratings = ["4.0", "4.5"]
    rows = [valid_row("watch_history", i, watch_duration_minutes=d) for i, d in enumerate(durations)]
    rows += [valid_row("watch_history", 100 + i, user_rating=r) for i, r in enumerate(ratings)]
    write_raw(bucket, "watch_history", rows)
    silver, quarantine = build("watch_history")
    assert silver["watch_duration_minutes"].tolist()[:5] == [12.0, 0.0, 3.5, 0.5, 7.0]
    assert pd.isna(silver["watch_duration_minutes"].tolist()[5])  # "NaN" is a null token, not a number
    assert silver["user_rating"].tolist()[-1] == 4  # "4.0" is an integer as pandas writes nullable ints
    invalid = [(line, "invalid_watch_duration_minutes") for line in range(8, 12)] + [
        (13, "invalid_user_rating")
    ]
    assert reasons(quarantine) == invalid
    # The quarantine shows the text each rule judged, so a format problem is visible at once.
    assert quarantine["rejected_value"].tolist() == ["inf", "1e3", "1,000", "0x10", "4.5"]


def test_dates_and_timestamps(bucket: Bucket, build: Built) -> None:
    """ISO dates; timestamps with T or space, a fraction up to microseconds, an optional zone (to UTC)."""
    created = "2024-05-06 07:08:09"
    starts = [  # subscription_start_date (DATE): the date as written, a valid time part allowed
        ("2024-02-29", dt.date(2024, 2, 29)),
        ("2024-02-29 23:59:59", dt.date(2024, 2, 29)),
        ("2024-02-29T10:00:00.123", dt.date(2024, 2, 29)),
        ("2024-02-29T23:30:00-05:00", dt.date(2024, 2, 29)),
        ("2024-02-30", None),
        ("2024-2-3", None),
        ("29/02/2024", None),
        ("2024-02-29 24:00:00", None),
    ]
    stamps = [  # created_at (TIMESTAMP), normalized to UTC
        ("2023-04-01 14:40:50.540242", pd.Timestamp("2023-04-01 14:40:50.540242")),
        ("2023-04-01T14:40:50", pd.Timestamp("2023-04-01 14:40:50")),
        ("2023-04-01T14:40:50.5Z", pd.Timestamp("2023-04-01 14:40:50.5")),
        ("2023-04-01 14:40:50+02:00", pd.Timestamp("2023-04-01 12:40:50")),
        ("2023-04-01T14:40:50-0530", pd.Timestamp("2023-04-01 20:10:50")),
        ("2023-04-01 02:40:50+05", pd.Timestamp("2023-03-31 21:40:50")),
        ("NaN", None),
        ("2023-04-01 14:40:50.1234567", None),  # nanoseconds: never silently truncated
        ("2023-04-01 14:40", None),
        ("2023-04-01 14:40:50 UTC", None),
        ("2023-04-01 14:40:50+19:00", None),
    ]
    rows = [
        valid_row("users", i, subscription_start_date=s, created_at=created)
        for i, (s, _) in enumerate(starts)
    ]
    rows += [valid_row("users", 100 + i, created_at=c) for i, (c, _) in enumerate(stamps)]
    write_raw(bucket, "users", rows)
    silver, quarantine = build("users")
    kept_starts = [value for _, value in starts if value is not None]
    kept_stamps = [value for _, value in stamps if value is not None]
    assert silver["subscription_start_date"].tolist()[: len(kept_starts)] == kept_starts
    assert silver["created_at"].tolist()[len(kept_starts) :] == [*kept_stamps, pd.NaT]
    bad_starts = [(i + 2, text) for i, (text, value) in enumerate(starts) if value is None]
    bad_stamps = [(len(starts) + i + 2, text) for i, (text, value) in enumerate(stamps) if value is None]
    bad_stamps = [(line, text) for line, text in bad_stamps if text != "NaN"]
    assert reasons(quarantine) == [(line, "invalid_subscription_start_date") for line, _ in bad_starts] + [
        (line, "invalid_created_at") for line, _ in bad_stamps
    ]
    # The reason names the column; the quarantine shows the text that failed, exactly as written.
    assert quarantine["rejected_value"].tolist() == [text for _, text in bad_starts + bad_stamps]


def test_null_tokens_are_null_and_a_required_one_is_missing(bucket: Bucket, build: Built) -> None:
    tokens = ["NaN", "nan", "NULL", "null", "None", " None "]
    rows = [
        valid_row("watch_history", i, watch_duration_minutes=t, user_rating=t, is_download=t, quality=t)
        for i, t in enumerate(tokens, 1)
    ]
    rows.append(valid_row("watch_history", 99, watch_date="NULL"))  # a required field
    write_raw(bucket, "watch_history", rows)
    silver, quarantine = build("watch_history")
    assert len(silver) == len(tokens)
    for column in ("watch_duration_minutes", "user_rating", "is_download", "quality"):
        assert silver[column].isna().all(), column
    assert reasons(quarantine) == [(len(tokens) + 2, "missing_watch_date")]


def test_integers_written_as_floats_are_integers(bucket: Bucket, build: Built) -> None:
    values = ["43.0", "43", "+7.00", "43.5", "1e1"]
    write_raw(
        bucket, "users", [valid_row("users", i, age=v, household_size="2.0") for i, v in enumerate(values, 1)]
    )
    silver, quarantine = build("users")
    assert silver["age"].tolist() == [43, 43, 7] and silver["household_size"].tolist() == [2, 2, 2]
    assert reasons(quarantine) == [(5, "invalid_age"), (6, "invalid_age")]  # never truncated to 43
    assert quarantine["rejected_value"].tolist() == ["43.5", "1e1"]


def test_enumerations_take_the_domain_spelling(bucket: Bucket, build: Built) -> None:
    values = [("smart tv", " usa "), ("Martian Rover", "canada"), ("MOBILE", "USA")]
    rows = [
        valid_row("watch_history", i, device_type=device, quality="ultra hd", location_country=country)
        for i, (device, country) in enumerate(values)
    ]
    write_raw(bucket, "watch_history", rows)
    silver, _ = build("watch_history")
    assert silver["device_type"].tolist() == ["Smart TV", "Martian Rover", "Mobile"]
    assert silver["location_country"].tolist() == ["USA", "Canada", "USA"]
    assert set(silver["quality"]) == {"Ultra HD"}


def test_age_spend_and_rating_value_rules(bucket: Bucket, build: Built) -> None:
    ages = ["4", "5", "110", "111", "", "-3"]
    spends = ["-1", "0", "1000", "1000.01", "", "15.5"]
    rows = [
        valid_row("users", i, age=a, monthly_spend=s)
        for i, (a, s) in enumerate(zip(ages, spends, strict=True), 1)
    ]
    write_raw(bucket, "users", rows)
    reviews = [valid_row("reviews", i, rating=r) for i, r in enumerate(["0", "1", "5", "6", ""], 1)]
    write_raw(bucket, "reviews", reviews)
    users, _ = build("users")
    assert users["age"].tolist()[1:3] == [5, 110]
    assert users["age"].isna().tolist() == [True, False, False, True, True, True]
    assert users["age_flagged"].tolist() == [True, False, False, True, False, True]
    assert users["monthly_spend_flagged"].tolist() == [True, False, False, True, False, False]
    assert users["monthly_spend"].tolist()[0] == -1.0  # flagged, not removed
    review_rows, _ = build("reviews")
    assert review_rows["rating"].astype("Int64").tolist() == [pd.NA, 1, 5, pd.NA, pd.NA]


def test_values_are_trimmed_and_empty_is_null(bucket: Bucket, build: Built) -> None:
    write_raw(
        bucket, "search_logs", [valid_row("search_logs", 1, search_query="  two words  ", device_type="   ")]
    )
    silver, _ = build("search_logs")
    assert silver["search_query"].tolist() == ["two words"]
    assert silver["device_type"].isna().all()


def test_quoted_fields_crlf_and_broken_lines(bucket: Bucket, build: Built) -> None:
    good = csv_text([valid_row("reviews", 1, review_text='Long, "quoted" text')], RAW_COLUMNS["reviews"])
    header, line = good.rstrip("\n").split("\n")
    second = csv_text([valid_row("reviews", 2)], RAW_COLUMNS["reviews"]).rstrip("\n").split("\n")[1]
    broken = [
        line.replace("R1,", "R3,", 1) + ",extra",  # one field too many
        'R4,U1,M1,4,2024-03-01,"unclosed,True,3,3,text,sentiment,0.5',  # quote never closed
        "",  # blank line
    ]
    text = "\r\n".join([header, line, second, *broken, second.replace("R2,", "R5,", 1)]) + "\r\n"
    bucket.write_bytes(raw_key("reviews"), text.encode())
    silver, quarantine = build("reviews")
    assert silver["review_text"].tolist()[0] == 'Long, "quoted" text'
    assert silver["review_id"].tolist() == ["R1", "R2", "R5"]
    assert silver["_source_line"].tolist() == [2, 3, 7]
    assert reasons(quarantine) == [(4, "malformed_row"), (5, "malformed_row"), (6, "malformed_row")]
    assert quarantine["raw_line"].tolist()[2] == ""


def test_a_quoted_field_may_hold_line_breaks(bucket: Bucket, build: Built) -> None:
    """A record spans lines inside quotes; its source line is its first line; a stray quote costs one row."""
    header = ",".join(RAW_COLUMNS["reviews"])
    rows = [valid_row("reviews", i) for i in range(1, 6)]
    rows[0]["review_text"] = "First paragraph.\r\n\r\nSecond, after a blank line."
    rows[2]["review_text"] = 'She said "wow"\nand left'
    stray = 'R9,U1,M1,4,2024-03-01,Device,True,3,3,"no closing quote,sentiment,0.5\n'

    def body(part: list[dict[str, str]]) -> str:
        return csv_text(part, RAW_COLUMNS["reviews"]).split("\n", 1)[1]

    text = f"{header}\n{body(rows[:3])}{stray}{body(rows[3:])}"
    bucket.write_bytes(raw_key("reviews"), text.encode())
    silver, quarantine = build("reviews")
    # R1 spans lines 2-4 (CR LF, blank line, CR LF), R2 is line 5, R3 lines 6-7, the stray quote line 8
    # stands alone, then R4 on 9 and R5 on 10.
    assert silver["review_id"].tolist() == ["R1", "R2", "R3", "R4", "R5"]
    assert silver["_source_line"].tolist() == [2, 5, 6, 9, 10]
    assert silver["review_text"].tolist()[0] == "First paragraph.\n\nSecond, after a blank line."
    assert silver["review_text"].tolist()[2] == 'She said "wow"\nand left'
    assert reasons(quarantine) == [(8, "malformed_row")]
    assert quarantine["raw_line"].tolist() == [stray.rstrip("\n")]


def test_bom_crlf_gzip_and_trailing_blank_lines(bucket: Bucket, build: Built) -> None:
    """A gzip-compressed export with a byte-order mark, CRLF line ends and blank lines at its end."""
    text = csv_text([valid_row("search_logs", i) for i in range(1, 4)], RAW_COLUMNS["search_logs"])
    data = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode() + b"\r\n\r\n"
    bucket.write_bytes(raw_key("search_logs") + ".gz", gzip.compress(data))
    silver, quarantine = build("search_logs")
    assert silver["search_id"].tolist() == ["Q1", "Q2", "Q3"] and len(quarantine) == 0
    assert silver["_source_line"].tolist() == [2, 3, 4]
    assert set(silver["_source_file"]) == {"raw/search_logs.csv.gz"}
    assert set(silver["search_query"]) == {"search_query 1", "search_query 2", "search_query 3"}  # no "\r"


def test_first_failing_field_in_column_order_names_the_reason(bucket: Bucket, build: Built) -> None:
    rows = [
        valid_row("watch_history", 1, user_id="", watch_date=""),  # two missing: user_id comes first
        valid_row("watch_history", 2, watch_date="soon", is_download="perhaps"),  # two invalid
        valid_row("watch_history", 3, session_id="", progress_percentage="x"),  # missing beats invalid
        valid_row("watch_history", 4, watch_duration_minutes="1441"),
        valid_row("watch_history", 5, progress_percentage="100.5"),
        valid_row("watch_history", 6, user_id="U404"),
        valid_row("watch_history", 7, user_id="U404", movie_id="M404"),  # orphan_user before orphan_movie
        valid_row("watch_history", 8, movie_id="M404"),
    ]
    write_raw(bucket, "watch_history", rows)
    _, quarantine = build("watch_history")
    assert reasons(quarantine) == [
        (2, "missing_user_id"),
        (3, "invalid_watch_date"),
        (4, "missing_session_id"),
        (5, "watch_duration_out_of_range"),
        (6, "progress_out_of_range"),
        (7, "orphan_user"),
        (8, "orphan_user"),
        (9, "orphan_movie"),
    ]


def test_duplicates_exact_copies_then_the_fullest_row_per_key(bucket: Bucket, build: Built) -> None:
    base = valid_row("watch_history", 1)
    sparse = {**base, "quality": "", "user_rating": ""}
    other = {**base, "device_type": "Tablet"}  # same key, as full as base, later line
    rows = [
        {**sparse},  # line 2: fewer values; loses the key to line 3
        {**base},  # line 3: survivor (most non-null; earliest among the fullest)
        {**base, "watch_duration_minutes": " 42.5 "},  # line 4: same after trimming -> exact copy
        other,  # line 5: duplicate_key (tie on non-null count, later line)
        {**sparse},  # line 6: exact copy of line 2
        {**base, "session_id": "S2", "user_id": "U404"},  # line 7: orphan...
        {**base, "session_id": "S2"},  # line 8: ...so this row is not its duplicate
    ]
    write_raw(bucket, "watch_history", rows)
    silver, quarantine = build("watch_history")
    assert silver["_source_line"].tolist() == [3, 8]
    assert reasons(quarantine) == [
        (2, "duplicate_key"),
        (4, "duplicate_row"),
        (5, "duplicate_key"),
        (6, "duplicate_row"),
        (7, "orphan_user"),
    ]


def test_a_malformed_line_does_not_make_a_later_good_copy_a_duplicate(bucket: Bucket, build: Built) -> None:
    """Rule 8 compares with rows that passed rules 1-7: a truncated line's padding never shadows data."""
    full = valid_row("search_logs", 1, used_filters="", location_country="")
    text = csv_text([full], RAW_COLUMNS["search_logs"]).rstrip("\n")
    header, line = text.split("\n")
    truncated = line.rstrip(",")  # the same values, but with fields missing
    bucket.write_bytes(raw_key("search_logs"), f"{header}\n{truncated}\n{line}\n".encode())
    silver, quarantine = build("search_logs")
    assert reasons(quarantine) == [(2, "malformed_row")]
    assert silver["_source_line"].tolist() == [3]


def test_line_numbers_survive_many_file_splits(spark: SparkSession, bucket: Bucket) -> None:
    """Dozens of 4 KB splits of one file, some records spanning a split boundary: every record must
    still carry the number of its first line."""
    rows = [valid_row("recommendation_logs", i) for i in range(1, 2001)]
    for i in range(0, 2000, 97):  # a quarantined row now and then, at known places
        rows[i]["recommendation_date"] = "not a date"
    for i in range(5, 2000, 61):  # a quoted line break now and then
        rows[i]["time_of_day"] = "late\nat night"
    write_raw(bucket, "recommendation_logs", rows)
    first_line, line = {}, 2
    for row in rows:
        first_line[row["recommendation_id"]] = line
        line += 1 + row["time_of_day"].count("\n")
    job = SilverJob(spark, bucket, split_bytes=4096)
    try:
        for _, outcome in job.run(["users", "movies", "recommendation_logs"]):
            assert not isinstance(outcome, Exception), outcome
        splits = spark.read.text(bucket.uri(raw_key("recommendation_logs"))).rdd.getNumPartitions()
    finally:
        SilverJob(spark, bucket)  # back to the default split size for the module's other tests
    silver = pd.read_parquet(bucket.uri("silver/recommendation_logs"))
    quarantine = pd.read_parquet(bucket.uri("quarantine/recommendation_logs"))
    assert splits > 20
    assert dict(zip(silver["recommendation_id"], silver["_source_line"], strict=True)) == {
        key: n for key, n in first_line.items() if key not in set(quarantine["recommendation_id"])
    }
    assert sorted(quarantine["line_number"]) == [first_line[f"C{i + 1}"] for i in range(0, 2000, 97)]
    assert len(silver) + len(quarantine) == 2000
    assert (silver["time_of_day"] == "late\nat night").sum() == len(range(5, 2000, 61)) - len(
        {i for i in range(5, 2000, 61)} & set(range(0, 2000, 97))
    )


def test_a_literal_key_set_matches_keys_holding_quotes_and_backslashes(spark: SparkSession) -> None:
    """The orphan rule's key set is one SQL text: every key must still match itself and nothing else."""
    keys = ["u_1", "o'brien", "back\\slash", "\\'both", "\\u0041", "tab\tand\nnewline", "ünï", "%_*"]
    near = ["O'BRIEN", "back\\\\slash", "A", "u_", "%", "tab", ""]
    frame = spark.createDataFrame([(k,) for k in [*keys, *near, None]], "_t0 string")
    rows = frame.select("_t0", is_one_of("_t0", keys).alias("member")).collect()
    assert {r["_t0"]: r["member"] for r in rows if r["_t0"] is not None} == {
        **dict.fromkeys(keys, True),
        **dict.fromkeys(near, False),
    }
    assert frame.select(is_one_of("_t0", []).alias("m")).where("m").count() == 0
