"""Where watch records come from before they become events: a replay of the raw CSV, or a synthetic stream.

A source yields plain dicts holding the watch_history fields of the raw contract (``session_id`` …
``user_rating``), already typed as JSON values, and optionally ``event_time`` (an ISO-8601 UTC string)
when the record's own time is to be kept. The event envelope (ids, version, producer metadata, faults)
is added by :mod:`producer.publish`, so both sources get exactly the same treatment.

The synthetic source reads the ids of ``raw/users.csv`` and ``raw/movies.csv`` so every event joins to the
batch layer's dimensions, the way a live service's events would.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.bucket import Bucket
from core.contracts.raw import ACTIONS, COUNTRIES, DEVICES, QUALITIES, raw_key
from core.raw_files import open_text, raw_key_in

WATCH_FIELDS: tuple[str, ...] = (
    "session_id", "user_id", "movie_id", "device_type", "watch_duration_minutes", "progress_percentage",
    "action", "quality", "location_country", "is_download", "user_rating",
)  # fmt: skip
_BOOLEANS = {
    "true": True,
    "false": False,
    "t": True,
    "f": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
}


class SourceDataMissing(FileNotFoundError):
    """A raw file the source needs is not in the bucket."""


def _require(bucket: Bucket, table: str) -> str:
    key = raw_key_in(bucket, table)  # raw/<table>.csv or raw/<table>.csv.gz
    if key is None:
        raise SourceDataMissing(
            f"{bucket.uri(raw_key(table))} not found: the producer reads ids from the raw files; "
            "run `netflix-lambda generate` (or land the Kaggle CSVs) first"
        )
    return key


def _csv_rows(bucket: Bucket, table: str) -> Iterator[dict[str, str]]:
    with open_text(bucket, _require(bucket, table)) as handle:
        yield from csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline=""))


# -- replay -------------------------------------------------------------------------------------------------
def _number(text: str) -> Any:
    """A CSV number as JSON: int if integral text, float otherwise; unparseable or NaN text stays a string
    (the event then fails validation naming the field, as the row would in the batch layer)."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _typed(field: str, text: str | None) -> Any:
    text = (text or "").strip()
    if not text:
        return None
    if field in ("watch_duration_minutes", "progress_percentage"):
        return _number(text)
    if field == "user_rating":
        value = _number(text)
        # Ratings are written as "4" or "4.0" by different exporters; both mean the integer 4.
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if field == "is_download":
        return _BOOLEANS.get(text.lower(), text)
    return text


def replay_source(bucket: Bucket, keep_time: bool = False) -> Iterator[dict[str, Any]]:
    """The rows of ``raw/watch_history.csv`` in file order, as watch records.

    Raw rows only carry a ``watch_date``; with ``keep_time`` the event time is that day at 00:00 UTC,
    otherwise the publisher stamps the send time ("re-based to now").
    """
    for row in _csv_rows(bucket, "watch_history"):
        record = {name: _typed(name, row.get(name)) for name in WATCH_FIELDS}
        if keep_time:
            day = (row.get("watch_date") or "").strip()[:10]
            record["event_time"] = f"{day}T00:00:00Z" if day else None
        yield record


# -- synthetic ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """The ids (and home countries) a synthetic stream draws from."""

    user_ids: tuple[str, ...]
    user_countries: tuple[str | None, ...]
    movie_ids: tuple[str, ...]

    @classmethod
    def from_bucket(cls, bucket: Bucket) -> Catalog:
        users: dict[str, str | None] = {}
        for row in _csv_rows(bucket, "users"):
            user_id = (row.get("user_id") or "").strip()
            if user_id and user_id not in users:
                users[user_id] = (row.get("country") or "").strip() or None
        movies = dict.fromkeys(
            m for row in _csv_rows(bucket, "movies") if (m := (row.get("movie_id") or "").strip())
        )
        if not users or not movies:
            raise SourceDataMissing(
                f"raw users ({len(users)} ids) or movies ({len(movies)} ids) in {bucket.uri('raw')} are empty"
            )
        return cls(tuple(users), tuple(users.values()), tuple(movies))


_ACTION_WEIGHTS = (0.35, 0.3, 0.2, 0.15)  # started, completed, stopped, paused
_QUALITY_WEIGHTS = (0.1, 0.45, 0.3, 0.15)  # SD, HD, 4K, Ultra HD


def synthetic_source(catalog: Catalog, seed: int = 42) -> Iterator[dict[str, Any]]:
    """An endless, reproducible stream of plausible watch records over the catalog's users and movies."""
    rng = random.Random(seed)
    users, countries, movies = catalog.user_ids, catalog.user_countries, catalog.movie_ids
    while True:
        u = rng.randrange(len(users))
        action = rng.choices(ACTIONS, _ACTION_WEIGHTS)[0]
        progress = 100.0 if action == "completed" else round(rng.uniform(0, 99), 1)
        country = countries[u] if rng.random() > 0.04 else rng.choice(COUNTRIES)
        yield {
            "session_id": f"live_{rng.getrandbits(64):016x}",
            "user_id": users[u],
            "movie_id": movies[rng.randrange(len(movies))],
            "device_type": rng.choice(DEVICES),
            "watch_duration_minutes": round(rng.uniform(1, 180), 1) if rng.random() > 0.05 else None,
            "progress_percentage": progress,
            "action": action,
            "quality": rng.choices(QUALITIES, _QUALITY_WEIGHTS)[0],
            "location_country": country,
            "is_download": rng.random() < 0.1,
            "user_rating": rng.randint(1, 5) if rng.random() < 0.2 else None,
        }
