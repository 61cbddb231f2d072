"""Reading a raw CSV as numbered records, and its header, without letting Spark guess anything.

Spark's CSV reader cannot say which line a record came from, and it silently pads short lines, so the
job reads the file as text (one row per physical line) and parses each record with ``from_csv`` against an
all-string schema built from the contract. Where the records are comes from one streamed pass in the
driver (``core.raw_records``, the documented record model): the number of records, the blank lines at
the end, the few records whose quoted field spans lines, and the newlines before every split boundary.

Line numbers then cost no Spark job: splits are cut at fixed multiples of ``SPLIT_BYTES`` (Spark's own
``maxPartitionBytes`` and ``openCostInBytes`` both set to it, so one split = one partition), the driver
knows the first line number of each split, and within a partition ``monotonically_increasing_id`` counts
rows in scan order. Multi-line records (rare) are assembled by joining their lines, which the driver
listed, with a small broadcast; a file without them pays nothing for the feature.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core.bucket import Bucket
from core.contracts.silver import SOURCE_LINE, TableContract
from core.raw_files import RawFileError, find_raw_key, header_problems, is_compressed, record_layout
from core.raw_records import RecordLayout

LINE = "_line"
PARSED = "_parsed"
WRONG_TOKEN_COUNT = "_wrong_token_count"
SPLIT_BYTES = 64 << 20
_CORRUPT = "_corrupt_record"
_BLOCK_START = "_metadata.file_block_start"
_FIRST = "_first_line"
_ROW_ID = (1 << 33) - 1  # monotonically_increasing_id: partition id in the upper bits, row number below
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


@dataclass
class RawRecords:
    """A raw file's data records (``_line`` text, ``_source_line`` = first line) and where they came from."""

    key: str
    frame: DataFrame
    layout: RecordLayout

    @property
    def data_rows(self) -> int:
        return self.layout.data_records


def locate(bucket: Bucket, contract: TableContract) -> str:
    """The table's raw key (``.csv`` or ``.csv.gz``), or a SilverInputError naming what is wrong."""
    try:
        return find_raw_key(bucket, contract.name)
    except RawFileError as exc:
        raise SilverInputError(str(exc)) from exc


def check_header(bucket: Bucket, contract: TableContract, layout: RecordLayout, key: str) -> None:
    """Fail before Spark touches the file when its header is not exactly the contract's."""
    uri = bucket.uri(key)
    if layout.text_bytes == 0:
        raise SilverInputError(
            f"{uri} is empty (0 bytes): expected a header line with {list(contract.columns)}"
        )
    text = layout.header.decode("utf-8", errors="replace").lstrip("\ufeff")
    found = [name.strip() for name in next(csv.reader(io.StringIO(text)), [])]
    problems = header_problems(found, contract.columns)
    if problems:
        raise SilverInputError(f"{uri}: header does not match the contract: " + "; ".join(problems))


def split_conf(split_bytes: int) -> dict[str, str]:
    """One split per partition, cut at multiples of ``split_bytes`` whatever the parallelism: the reader
    then knows where each split starts, hence its first line (``RecordLayout.first_line_of_split``)."""
    return {
        "spark.sql.files.maxPartitionBytes": str(split_bytes),
        "spark.sql.files.openCostInBytes": str(split_bytes),
    }


def read_records(
    spark: SparkSession, bucket: Bucket, contract: TableContract, split_bytes: int = SPLIT_BYTES
) -> RawRecords:
    """The data records of the table's raw file, numbered, after checking its header (no Spark job).

    The session must read with :func:`split_conf` of the same ``split_bytes`` (``SilverJob`` sets it).
    """
    key = locate(bucket, contract)
    splittable = not is_compressed(key)  # a gzip stream is one split, from byte 0
    layout = record_layout(bucket, key, len(contract.columns), split_bytes if splittable else 0)
    check_header(bucket, contract, layout, key)
    lines = _numbered_lines(spark, bucket.uri(key), layout)
    return RawRecords(key=key, frame=_records(spark, lines, layout), layout=layout)


def _numbered_lines(spark: SparkSession, uri: str, layout: RecordLayout) -> DataFrame:
    """Every line with its 1-based number (``_source_line``), from where its split starts."""
    # Lines end at "\n" only (Hadoop's default also splits at a lone "\r"); a "\r" before it is dropped.
    # Spark keeps undecodable bytes as they are; replacing them with U+FFFD (a no-op on valid UTF-8) is
    # what rule 1 looks for and keeps every string written to Parquet valid.
    value = F.make_valid_utf8(F.col("value"))
    first: Column | None = None
    for start, number in layout.first_line_of_split().items():
        here = F.col(_BLOCK_START) == F.lit(start)
        first = F.when(here, F.lit(number)) if first is None else first.when(here, F.lit(number))
    assert first is not None, "every file has a split at byte 0"
    # A split the driver did not foresee would number its lines wrongly: stop rather than guess.
    first = first.otherwise(
        F.raise_error(
            F.concat(F.lit(f"{uri}: unexpected file split at byte "), F.col(_BLOCK_START).cast("string"))
        )
    )
    position = F.monotonically_increasing_id().bitwiseAND(F.lit(_ROW_ID))
    return (
        spark.read.option("lineSep", "\n")
        .text(uri)
        .select(
            F.when(value.endswith("\r"), value.substr(F.lit(1), F.length(value) - 1))
            .otherwise(value)
            .alias(LINE),
            (first + position).cast("bigint").alias(SOURCE_LINE),
        )
    )


def _records(spark: SparkSession, lines: DataFrame, layout: RecordLayout) -> DataFrame:
    """Data records: lines 2..last, with each multi-line record's lines joined under its first line."""
    data = lines.where(F.col(SOURCE_LINE).between(2, layout.last_line))
    if not layout.spans:
        return data
    members = spark.createDataFrame(
        [(line, first) for first, last in layout.spans for line in range(first, last + 1)],
        f"{SOURCE_LINE} bigint, {_FIRST} bigint",
    )
    tagged = data.join(F.broadcast(members), SOURCE_LINE, "left")
    single = tagged.where(F.col(_FIRST).isNull()).select(LINE, SOURCE_LINE)
    parts = F.sort_array(F.collect_list(F.struct(F.col(SOURCE_LINE), F.col(LINE))))
    joined = (
        tagged.where(F.col(_FIRST).isNotNull())
        .groupBy(_FIRST)
        .agg(F.concat_ws("\n", parts[LINE]).alias(LINE))
        .select(LINE, F.col(_FIRST).alias(SOURCE_LINE))
    )
    return single.unionByName(joined)


def parse_lines(records: DataFrame, contract: TableContract) -> DataFrame:
    """Records with a ``_parsed`` struct of every raw column as text.

    ``_wrong_token_count`` is true when the parser found more or fewer fields than the contract has.
    """
    schema = ", ".join([*(f"`{column}` STRING" for column in contract.columns), f"`{_CORRUPT}` STRING"])
    parsed = records.select(LINE, SOURCE_LINE, F.from_csv(F.col(LINE), schema, CSV_OPTIONS).alias(PARSED))
    return parsed.withColumn(WRONG_TOKEN_COUNT, F.col(PARSED)[_CORRUPT].isNotNull())
