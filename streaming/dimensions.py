"""The dimensions the stream joins: users and movies from the batch layer's Silver, one row per key.

Silver is the contract (``docs/architecture.md``): it is cleaned, typed and unique per key. When the batch
layer has not run yet, the stream falls back to the raw CSVs, de-duplicated with the Silver survivor rule
(the row with the most non-null fields, then the earliest line), and says so in the log: the original
notebook joined raw users and double-counted every duplicated user.

A user's **usual quality** is the modal quality class of their Silver watch history, ties broken towards
the *lower* class so that a session is flagged as a downgrade only when it is below every one of the
user's most frequent classes. Classes are ranked SD (1) < HD (2) < 4K (3) = Ultra HD (3): the two top
tiers are the same resolution class sold under two names, so their sessions are counted together.

The dimensions are computed in the driver, with DuckDB over Arrow, and handed to Spark as local relations
ready to broadcast: they are broadcast-sized by design, and the same work as Spark jobs (reading three
Parquet tables, a shuffle and a window for the usual quality, two counts to fill the caches) cost a fresh
JVM about 20 CPU-seconds before the stream's first micro-batch, against about 3 here (measured with
bench/bench_stream_start.py during development; docs/benchmarks.md says what is still to re-measure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS
from core.contracts.silver import CONTRACTS
from core.contracts.tokens import DECIMAL_NOTATION, FALSE_TOKENS, NULL_TOKENS, TRUE_TOKENS
from core.raw_files import find_raw_key, open_text

log = logging.getLogger(__name__)

QUALITY_RANK: dict[str, int] = {"SD": 1, "HD": 2, "4K": 3, "Ultra HD": 3}
USER_COLUMNS = ("user_id", "country", "monthly_spend")
MOVIE_COLUMNS = ("movie_id", "genre_primary", "content_type", "is_netflix_original", "imdb_rating")


@dataclass
class Dimensions:
    """Broadcast-sized lookup frames, and where they came from (for logs and asset metadata)."""

    users: DataFrame  # user_id, country, monthly_spend, usual_quality_rank
    movies: DataFrame  # movie_id, genre_primary, content_type, is_netflix_original, imdb_rating
    source: dict[str, str]
    signature: tuple[tuple[str, int, float], ...]

    def unpersist(self) -> None:
        self.users.unpersist()
        self.movies.unpersist()


def quality_rank(column: str = "quality") -> F.Column:
    mapping = F.create_map(*[F.lit(x) for pair in QUALITY_RANK.items() for x in pair])
    return mapping[F.col(column)]


def _committed_parquet(bucket: Bucket, table: str) -> dict[str, dict]:
    """The table's Parquet files as readers see them: files under a folder or with a name starting with
    ``_`` or ``.`` (a Spark job's ``_temporary/`` while it writes) are not part of the table yet."""
    base = bucket.path(CONTRACTS[table].silver_key)
    if not bucket.fs.exists(base):
        return {}
    return {
        path: info
        for path, info in sorted(bucket.fs.find(base, detail=True).items())
        if path.endswith(".parquet")
        and not any(part.startswith(("_", ".")) for part in path[len(base) :].strip("/").split("/"))
    }


def silver_signature(bucket: Bucket) -> tuple[tuple[str, int, float], ...]:
    """(file, size, mtime) of every Silver file the stream reads: a change means the batch layer re-ran."""
    return tuple(
        (path, int(info.get("size") or 0), float(info.get("mtime") or info.get("updated") or 0))
        for table in ("users", "movies", "watch_history")
        for path, info in _committed_parquet(bucket, table).items()
    )


def _has_silver(bucket: Bucket, table: str) -> bool:
    return bool(_committed_parquet(bucket, table))


def load_dimensions(spark: SparkSession, bucket: Bucket) -> Dimensions:
    """Users (with usual quality) and movies; each from Silver, else from raw with a warning."""
    source: dict[str, str] = {}
    signature = silver_signature(bucket)
    users = _dimension(bucket, "users", USER_COLUMNS, _raw_users, USERS_SCHEMA, source)
    movies = _dimension(bucket, "movies", MOVIE_COLUMNS, _raw_movies, MOVIES_SCHEMA, source)
    if _has_silver(bucket, "watch_history"):
        source["usual_quality"] = bucket.uri(CONTRACTS["watch_history"].silver_key)
        users = with_usual_quality(users, _silver_table(bucket, "watch_history", ("user_id", "quality")))
    else:
        users = users.append_column("usual_quality_rank", pa.nulls(users.num_rows, pa.int32()))
        source["usual_quality"] = "unknown (Silver watch_history missing: no quality downgrade is flagged)"
        log.warning("Silver watch_history not found: quality downgrades cannot be detected until it exists")
    log.info(
        "dimensions loaded: %d users, %d movies (%s)",
        users.num_rows,
        movies.num_rows,
        "; ".join(f"{k}: {v}" for k, v in source.items()),
    )
    return Dimensions(spark.createDataFrame(users), spark.createDataFrame(movies), source, signature)


def _silver_table(bucket: Bucket, table: str, columns: tuple[str, ...]) -> pa.Table:
    """Columns of a Silver table (partitioned or not), read through the bucket's filesystem."""
    path = bucket.path(CONTRACTS[table].silver_key)
    dataset = ds.dataset(path, filesystem=bucket.fs, format="parquet", partitioning="hive")
    return dataset.to_table(columns=list(columns))


def _dimension(
    bucket: Bucket,
    table: str,
    columns: tuple[str, ...],
    raw_rows: Callable[[Bucket], pd.DataFrame],
    raw_schema: pa.Schema,
    source: dict[str, str],
) -> pa.Table:
    """One row per key of ``table`` from Silver, else from the raw CSV with a warning; notes the source."""
    if _has_silver(bucket, table):
        source[table] = bucket.uri(CONTRACTS[table].silver_key)
        key = columns[0]
        return _query(f"SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY {key}) = 1",
                      t=_silver_table(bucket, table, columns))  # fmt: skip
    source[table] = bucket.uri(find_raw_key(bucket, table)) + f" (fallback: Silver {table} missing)"
    log.warning(
        "Silver %s not found at %s: joining raw %s.csv, de-duplicated",
        table,
        bucket.uri(CONTRACTS[table].silver_key),
        table,
    )
    return pa.Table.from_pandas(raw_rows(bucket), schema=raw_schema, preserve_index=False)


def with_usual_quality(users: pa.Table, watch_history: pa.Table) -> pa.Table:
    """``users`` plus usual_quality_rank: the most frequent quality *class* of each user's sessions (4K and
    Ultra HD counted together, since they rank the same), ties towards the lower rank; null without any
    ranked session."""
    ranks = " ".join(f"WHEN '{quality}' THEN {rank}" for quality, rank in QUALITY_RANK.items())
    query = f"""
        WITH ranked AS (
            SELECT user_id, CASE quality {ranks} END AS quality_rank FROM watch_history
            WHERE user_id IS NOT NULL),
        counted AS (
            SELECT user_id, quality_rank, count(*) AS sessions FROM ranked
            WHERE quality_rank IS NOT NULL GROUP BY user_id, quality_rank),
        usual AS (
            SELECT user_id, CAST(quality_rank AS INTEGER) AS usual_quality_rank FROM counted
            QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY sessions DESC, quality_rank) = 1)
        SELECT users.*, usual.usual_quality_rank FROM users LEFT JOIN usual USING (user_id)
    """
    return _query(query, users=users, watch_history=watch_history)


def _query(sql: str, **tables: pa.Table) -> pa.Table:
    """``sql`` over Arrow tables, in a connection of its own (the stream reloads dimensions from its
    micro-batch thread)."""
    with duckdb.connect() as con:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table()


# -- raw fallback --------------------------------------------------------------------------------------------
USERS_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("country", pa.string()), ("monthly_spend", pa.float64())]
)
MOVIES_SCHEMA = pa.schema(
    [
        ("movie_id", pa.string()),
        ("genre_primary", pa.string()),
        ("content_type", pa.string()),
        ("is_netflix_original", pa.bool_()),
        ("imdb_rating", pa.float64()),
    ]
)


def _raw_survivors(bucket: Bucket, table: str, key: str) -> pd.DataFrame:
    """Raw rows as trimmed text (empty or a null token → null, as Silver cleans them), one per key by the
    Silver rule: most non-null raw fields, then the earliest line. Reads ``.csv`` or ``.csv.gz``."""
    with open_text(bucket, find_raw_key(bucket, table)) as handle:
        frame = pd.read_csv(
            handle, dtype=str, keep_default_na=False, usecols=list(RAW_COLUMNS[table]), encoding="utf-8-sig"
        )
    frame = frame.apply(lambda column: column.str.strip(" ")).replace(["", *NULL_TOKENS], None)
    frame["_filled"] = frame.notna().sum(axis=1)
    frame["_line"] = range(len(frame))
    frame = frame[frame[key].notna()].sort_values([key, "_filled", "_line"], ascending=[True, False, True])
    return frame.drop_duplicates(key, keep="first")


def _decimal(text: pd.Series) -> pd.Series:
    """Numbers in Silver's plain decimal notation; anything else (1e3, inf) is null, as Silver rejects it."""
    return pd.to_numeric(text.where(text.str.fullmatch(DECIMAL_NOTATION, na=False)), errors="coerce")


def _raw_users(bucket: Bucket) -> pd.DataFrame:
    users = _raw_survivors(bucket, "users", "user_id")
    spend = _decimal(users["monthly_spend"])
    return (
        pd.DataFrame(
            {
                "user_id": users["user_id"],
                "country": users["country"],
                "monthly_spend": spend.where(spend.abs() != float("inf")),
            }
        )
        .astype(object)
        .where(lambda f: f.notna(), None)
    )


def _raw_movies(bucket: Bucket) -> pd.DataFrame:
    movies = _raw_survivors(bucket, "movies", "movie_id")
    flag = movies["is_netflix_original"].str.lower()
    rating = _decimal(movies["imdb_rating"])
    return (
        pd.DataFrame(
            {
                "movie_id": movies["movie_id"],
                "genre_primary": movies["genre_primary"],
                "content_type": movies["content_type"],
                "is_netflix_original": flag.map(
                    lambda t: True if t in TRUE_TOKENS else False if t in FALSE_TOKENS else None
                ),
                "imdb_rating": rating.where(rating.abs() != float("inf")),
            }
        )
        .astype(object)
        .where(lambda f: f.notna(), None)
    )
