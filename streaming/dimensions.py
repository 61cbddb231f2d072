"""The dimensions the stream joins: users and movies from the batch layer's Silver, one row per key.

Silver is the contract (``docs/architecture.md``): it is cleaned, typed and unique per key. When the batch
layer has not run yet, the stream falls back to the raw CSVs, de-duplicated with the Silver survivor rule
(the row with the most non-null fields, then the earliest line), and says so in the log: the original
notebook joined raw users and double-counted every duplicated user.

A user's **usual quality** is the modal quality class of their Silver watch history, ties broken towards
the *lower* class so that a session is flagged as a downgrade only when it is below every one of the
user's most frequent classes. Classes are ranked SD (1) < HD (2) < 4K (3) = Ultra HD (3): the two top
tiers are the same resolution class sold under two names, so their sessions are counted together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
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


def silver_signature(bucket: Bucket) -> tuple[tuple[str, int, float], ...]:
    """(file, size, mtime) of every Silver file the stream reads: a change means the batch layer re-ran."""
    entries = []
    for table in ("users", "movies", "watch_history"):
        base = bucket.path(CONTRACTS[table].silver_key)
        if not bucket.fs.exists(base):
            continue
        for path, info in sorted(bucket.fs.find(base, detail=True).items()):
            if path.endswith(".parquet"):
                entries.append(
                    (path, int(info.get("size") or 0), float(info.get("mtime") or info.get("updated") or 0))
                )
    return tuple(entries)


def _has_silver(bucket: Bucket, table: str) -> bool:
    base = bucket.path(CONTRACTS[table].silver_key)
    return bucket.fs.exists(base) and any(p.endswith(".parquet") for p in bucket.fs.find(base))


def load_dimensions(spark: SparkSession, bucket: Bucket) -> Dimensions:
    """Users (with usual quality) and movies, cached; each from Silver, else from raw with a warning."""
    source: dict[str, str] = {}
    signature = silver_signature(bucket)
    users = _dimension(spark, bucket, "users", USER_COLUMNS, _raw_users, USERS_SCHEMA, source)
    movies = _dimension(spark, bucket, "movies", MOVIE_COLUMNS, _raw_movies, MOVIES_SCHEMA, source)
    if _has_silver(bucket, "watch_history"):
        source["usual_quality"] = bucket.uri(CONTRACTS["watch_history"].silver_key)
        usual = usual_quality(spark.read.parquet(source["usual_quality"]))
        users = users.join(usual, "user_id", "left")
    else:
        users = users.withColumn("usual_quality_rank", F.lit(None).cast("int"))
        source["usual_quality"] = "unknown (Silver watch_history missing: no quality downgrade is flagged)"
        log.warning("Silver watch_history not found: quality downgrades cannot be detected until it exists")
    users = users.cache()
    movies = movies.cache()
    log.info(
        "dimensions loaded: %d users, %d movies (%s)",
        users.count(),
        movies.count(),
        "; ".join(f"{k}: {v}" for k, v in source.items()),
    )
    return Dimensions(users, movies, source, signature)


def _dimension(
    spark: SparkSession,
    bucket: Bucket,
    table: str,
    columns: tuple[str, ...],
    raw_rows: Callable[[Bucket], pd.DataFrame],
    raw_schema: str,
    source: dict[str, str],
) -> DataFrame:
    """One row per key of ``table`` from Silver, else from the raw CSV with a warning; notes the source."""
    if _has_silver(bucket, table):
        source[table] = bucket.uri(CONTRACTS[table].silver_key)
        return spark.read.parquet(source[table]).select(*columns).dropDuplicates([columns[0]])
    source[table] = bucket.uri(find_raw_key(bucket, table)) + f" (fallback: Silver {table} missing)"
    log.warning(
        "Silver %s not found at %s: joining raw %s.csv, de-duplicated",
        table,
        bucket.uri(CONTRACTS[table].silver_key),
        table,
    )
    return spark.createDataFrame(raw_rows(bucket), raw_schema)


def usual_quality(watch_history: DataFrame) -> DataFrame:
    """user_id → usual_quality_rank: the most frequent quality *class* (4K and Ultra HD counted together,
    since they rank the same), ties towards the lower rank."""
    counted = (
        watch_history.where(F.col("user_id").isNotNull())
        .withColumn("rank", quality_rank("quality"))
        .where(F.col("rank").isNotNull())
        .groupBy("user_id", "rank")
        .count()
    )
    order = Window.partitionBy("user_id").orderBy(F.col("count").desc(), F.col("rank").asc())
    return (
        counted.withColumn("n", F.row_number().over(order))
        .where("n = 1")
        .select("user_id", F.col("rank").cast("int").alias("usual_quality_rank"))
    )


# -- raw fallback --------------------------------------------------------------------------------------------
USERS_SCHEMA = "user_id string, country string, monthly_spend double"
MOVIES_SCHEMA = (
    "movie_id string, genre_primary string, content_type string, is_netflix_original boolean, "
    "imdb_rating double"
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
