"""Reading a raw CSV as numbered text lines, and its header, without letting Spark guess anything.

Spark's CSV reader cannot say which line a record came from, and it silently pads short lines, so the
job reads the file as text (one row per physical line), numbers the lines itself and parses each with
``from_csv`` against an all-string schema built from the contract. Line numbers come from the scan's
own order: within one file split, ``monotonically_increasing_id`` is consecutive, so one small
aggregation (rows and first id per split) gives every split's first line number. That costs a count
over the text, but nothing like ``zipWithIndex``'s Python round trip.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core.bucket import Bucket
from core.contracts.silver import SOURCE_LINE, TableContract
from core.raw_files import header_problems

LINE = "_line"
PARSED = "_parsed"
WRONG_TOKEN_COUNT = "_wrong_token_count"
_CORRUPT = "_corrupt_record"
_BLOCK = "_block"
_ROW_ID = "_row_id"
_HEAD_BYTES = 1 << 20
# Python's csv module writes a doubled quote for a quote inside a field; Spark's default escape is '\'.
CSV_OPTIONS = {
    "sep": ",",
    "quote": '"',
    "escape": '"',
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": _CORRUPT,
}


class SilverInputError(ValueError):
    """An input Silver cannot use at all (raw file missing, empty or with a wrong header; a dimension's
    Silver missing); the message names the file and the problem, for the asset's failure."""


def check_header(bucket: Bucket, contract: TableContract) -> None:
    """Fail before Spark touches the file when its header is not exactly the contract's."""
    uri = bucket.uri(contract.raw_key)
    if not bucket.exists(contract.raw_key):
        raise SilverInputError(f"{uri} does not exist: materialize ['raw', '{contract.name}'] first")
    with bucket.open(contract.raw_key, "rb") as handle:
        first = handle.readline(_HEAD_BYTES)
    if not first:
        raise SilverInputError(
            f"{uri} is empty (0 bytes): expected a header line with {list(contract.columns)}"
        )
    text = first.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    found = [name.strip() for name in next(csv.reader(io.StringIO(text)), [])]
    problems = header_problems(found, contract.columns)
    if problems:
        raise SilverInputError(f"{uri}: header does not match the contract: " + "; ".join(problems))


@dataclass
class NumberedLines:
    """The file's lines (header included) with 1-based line numbers, and how many there are."""

    frame: DataFrame
    total_lines: int

    @property
    def data_rows(self) -> int:
        return max(self.total_lines - 1, 0)


def read_numbered_lines(spark: SparkSession, uri: str) -> NumberedLines:
    """Text lines of ``uri`` with ``_source_line``; runs one small job to learn where each split starts."""
    # Lines end at "\n" only (Hadoop's default also splits at a lone "\r"); a "\r" before it is dropped.
    # Spark keeps undecodable bytes as they are; replacing them with U+FFFD (a no-op on valid UTF-8) is
    # what rule 1 looks for and keeps every string written to Parquet valid.
    value = F.make_valid_utf8(F.col("value"))
    scan = (
        spark.read.option("lineSep", "\n")
        .text(uri)
        .select(
            F.when(value.endswith("\r"), value.substr(F.lit(1), F.length(value) - 1))
            .otherwise(value)
            .alias(LINE),
            F.col("_metadata.file_block_start").alias(_BLOCK),
            F.monotonically_increasing_id().alias(_ROW_ID),
        )
    )
    splits = (
        scan.groupBy(_BLOCK)
        .agg(F.count(F.lit(1)).alias("rows"), F.min(_ROW_ID).alias("first_id"))
        .orderBy(_BLOCK)
        .collect()
    )
    line: Column | None = None
    lines_before = 0
    for split in splits:
        number = F.col(_ROW_ID) - F.lit(split["first_id"]) + F.lit(lines_before + 1)
        line = number if line is None else F.when(F.col(_BLOCK) == split[_BLOCK], number).otherwise(line)
        lines_before += split["rows"]
    numbered = scan.select(
        LINE, (line if line is not None else F.lit(None)).cast("bigint").alias(SOURCE_LINE)
    )
    return NumberedLines(frame=numbered, total_lines=lines_before)


def parse_lines(lines: DataFrame, contract: TableContract) -> DataFrame:
    """Data lines (the header, line 1, dropped) with a ``_parsed`` struct of every raw column as text.

    ``_wrong_token_count`` is true when the parser found more or fewer fields than the contract has.
    """
    schema = ", ".join([*(f"`{column}` STRING" for column in contract.columns), f"`{_CORRUPT}` STRING"])
    parsed = lines.where(F.col(SOURCE_LINE) > 1).select(
        LINE, SOURCE_LINE, F.from_csv(F.col(LINE), schema, CSV_OPTIONS).alias(PARSED)
    )
    return parsed.withColumn(WRONG_TOKEN_COUNT, F.col(PARSED)[_CORRUPT].isNotNull())
