"""Users and movies: their CSV rows, and the hidden attributes the fact tables are drawn from.

Users and movies are generated first and in full (1M users at scale 100 is a few numpy arrays); each
fact row then samples a user in proportion to that user's activity, on a day inside the user's active
window, so the behaviour written into users.csv (plan, churn, signup cohort) is visible in the facts
without any join at generation time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.contracts.raw import (
    CONTENT_TYPES,
    COUNTRIES,
    DEVICES,
    GENDERS,
    GENRES,
    STATES,
    SUBSCRIPTION_PLANS,
)
from datagen import csv_text as text
from datagen import spec, vocab
from datagen.chunks import Chunk

STATE_DOMAIN: tuple[str, ...] = tuple(s for country in COUNTRIES for s in STATES[country])
_STATE_OFFSET = np.array([0, len(STATES[COUNTRIES[0]])])
_STATE_COUNT = np.array([len(STATES[c]) for c in COUNTRIES])
CANADA_SHARE = 0.30
SERIES_TYPES = (CONTENT_TYPES.index("TV Series"), CONTENT_TYPES.index("Limited Series"))
DAY_SECONDS = 86_400


def months_of_year(days: np.ndarray) -> np.ndarray:
    """0 = January … 11 = December, of days since the epoch."""
    return (days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12).astype(np.int8)


class WeightedIndex:
    """Draws indices with probability proportional to their weight, in O(1) per draw.

    A guide table (Chen & Asau) maps each of N equal slices of the total weight to the first index that
    can answer a query in it; a query then steps forward over at most a few entries. Same answer as
    ``searchsorted(cumulative, q, side="right")`` but without its log N random probes into a 1M-entry
    table (26 vs 61 ns per draw at 1M users).
    """

    def __init__(self, weights: np.ndarray) -> None:
        self.cumulative = np.cumsum(weights, dtype=np.float64)
        self.total = float(self.cumulative[-1]) if len(weights) else 0.0
        slices = len(weights)
        self._per_weight = slices / self.total if self.total > 0 else 0.0
        starts = np.arange(slices) / self._per_weight if self.total > 0 else np.zeros(slices)
        self._guide = np.searchsorted(self.cumulative, starts, side="right")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        query = np.minimum(rng.random(n) * self.total, np.nextafter(self.total, 0))
        index = self._guide[np.minimum((query * self._per_weight).astype(np.int64), len(self._guide) - 1)]
        behind = np.flatnonzero(self.cumulative[index] <= query)
        while behind.size:
            index[behind] += 1
            behind = behind[self.cumulative[index[behind]] <= query[behind]]
        return index


def null_mask(rng: np.random.Generator, n: int, table: str, column: str) -> np.ndarray:
    return rng.random(n) < spec.NULL_RATES[table][column]


@dataclass(frozen=True)
class Users:
    """Hidden attributes of distinct users (one chunk's, or all of them); position i is user number i + 1."""

    plan: np.ndarray
    country: np.ndarray
    device: np.ndarray
    first_day: np.ndarray  # first day the user can be active
    last_day: np.ndarray  # last day: the day before churn, within 2024–2025
    weight: np.ndarray  # expected activity over the window

    @classmethod
    def concat(cls, parts: Sequence[Users]) -> Users:
        return cls(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__}
        )

    @property
    def count(self) -> int:
        return len(self.plan)

    @cached_property
    def sampler(self) -> WeightedIndex:
        return WeightedIndex(self.weight)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (user index, activity day) pairs: users in proportion to activity, days in their window."""
        if self.sampler.total <= 0:  # degenerate tiny scale: every user churned before 2024
            index = rng.integers(0, self.count, n)
            return index, rng.integers(spec.ACTIVITY_START, spec.ACTIVITY_END + 1, n)
        index = self.sampler.draw(rng, n)
        span = self.last_day[index] - self.first_day[index] + 1
        days = self.first_day[index] + (rng.random(n) * span).astype(np.int64)
        return index, days


@dataclass(frozen=True)
class Movies:
    """Hidden attributes of distinct titles (a chunk's, or all of them); position i is movie number i + 1."""

    genre: np.ndarray
    content_type: np.ndarray
    runtime: np.ndarray  # minutes (per episode for series)
    quality: np.ndarray  # latent IMDb-like score, shown when imdb_rating is not null
    weight: np.ndarray  # popularity

    @classmethod
    def concat(cls, parts: Sequence[Movies]) -> Movies:
        return cls(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__}
        )

    @property
    def count(self) -> int:
        return len(self.genre)

    @cached_property
    def sampler(self) -> WeightedIndex:
        return WeightedIndex(self.weight)

    @cached_property
    def is_series(self) -> np.ndarray:
        return np.isin(self.content_type, SERIES_TYPES)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.sampler.draw(rng, n)


def _signup_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Signup days with a linearly growing density (inverse CDF of 1 + g·t on [0, 1])."""
    g = spec.SIGNUP_GROWTH
    t = (np.sqrt(1 + 2 * g * (1 + g / 2) * rng.random(n)) - 1) / g
    return spec.SIGNUP_START + (t * (spec.SIGNUP_END - spec.SIGNUP_START)).astype(np.int64)


def _names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, len(vocab.FIRST_NAMES), n), rng.integers(0, len(vocab.LAST_NAMES), n)


def _emails(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> pa.Array:
    n = len(first)
    # A number in every address keeps accidental collisions rare (~0.2% of users at 1M users).
    local = text.join(
        text.labels(first, [f.lower() for f in vocab.FIRST_NAMES]),
        text.labels(last, [name.lower() for name in vocab.LAST_NAMES]),
        text.integers(rng.integers(1, 10_000, n)),
    )
    email = text.join(
        local, "@", text.labels(rng.integers(0, len(vocab.EMAIL_DOMAINS), n), vocab.EMAIL_DOMAINS)
    )
    # A few accounts share one address (family members, re-registrations): point them at another row.
    shared = np.flatnonzero(rng.random(n) < spec.SHARED_EMAIL) if n > 1 else np.zeros(0, np.int64)
    source = np.arange(n)
    source[shared] = (shared + 1 + rng.integers(0, n - 1, shared.size)) % n if shared.size else shared
    return pc.take(email, pa.array(source))


def identifiers(table: str, numbers: np.ndarray, widths: dict[str, int]) -> pa.Array:
    """``table``'s ids (``user_00042``) for 1-based ``numbers``, at the scale's width."""
    return text.identifiers(spec.ID_PREFIXES[table], numbers, widths[table])


def user_rows(rng: np.random.Generator, chunk: Chunk, widths: dict[str, int]) -> tuple[list[pa.Array], Users]:
    """A chunk of users: their rendered columns and their hidden attributes."""
    n = chunk.size
    plan = rng.choice(len(SUBSCRIPTION_PLANS), n, p=spec.PLAN_SHARE).astype(np.int8)
    country = (rng.random(n) < CANADA_SHARE).astype(np.int8)
    state = _STATE_OFFSET[country] + (rng.random(n) * _STATE_COUNT[country]).astype(np.int64)
    first, last = _names(rng, n)

    age = np.clip(np.round(rng.normal(36, 12, n)), 16, 85)
    pick = rng.random(n)
    negative = pick < spec.AGE_NEGATIVE
    old = (pick >= spec.AGE_NEGATIVE) & (pick < spec.AGE_NEGATIVE + spec.AGE_OVER_100)
    age[negative] = rng.integers(-15, 0, negative.sum())
    age[old] = rng.integers(101, 121, old.sum())

    start = _signup_days(rng, n)
    created = (start - rng.integers(0, 31, n)) * DAY_SECONDS + rng.integers(0, DAY_SECONDS, n)
    hazard = (
        spec.CHURN_PER_MONTH / 30.44
        * np.asarray(spec.PLAN_CHURN)[plan]
        * np.asarray(spec.COHORT_CHURN)[months_of_year(start)]
    )  # fmt: skip
    churn_day = start + np.ceil(rng.exponential(1 / hazard))
    is_active = churn_day > spec.ACTIVITY_END

    spend = np.asarray(spec.PLAN_PRICE)[plan] * rng.lognormal(0, 0.2, n)
    outlier = rng.random(n) < spec.SPEND_OUTLIER
    spend[outlier] = rng.uniform(200, 1000, outlier.sum())
    device = rng.integers(0, len(DEVICES), n).astype(np.int8)
    household = rng.choice(np.arange(1, 9), n, p=np.array([17, 26, 17, 13, 7, 3.6, 1.7, 0.7]) / 86.0)

    first_day = np.maximum(start, spec.ACTIVITY_START)
    last_day = np.minimum(churn_day - 1, spec.ACTIVITY_END).astype(np.int64)
    engagement = rng.lognormal(0, 0.7, n) * np.asarray(spec.PLAN_ACTIVITY)[plan]
    traits = Users(
        plan=plan, country=country, device=device, first_day=first_day, last_day=last_day,
        weight=np.where(last_day >= first_day, engagement * (last_day - first_day + 1), 0.0),
    )  # fmt: skip

    city = text.join(
        text.labels(rng.integers(0, len(vocab.CITY_PREFIXES), n), vocab.CITY_PREFIXES),
        text.labels(rng.integers(0, len(vocab.LAST_NAMES), n), vocab.LAST_NAMES),
        text.labels(rng.integers(0, len(vocab.CITY_SUFFIXES), n), vocab.CITY_SUFFIXES),
    )
    gender = rng.choice(len(GENDERS), n, p=(0.455, 0.465, 0.04, 0.04))
    columns = [
        identifiers("users", np.arange(chunk.start + 1, chunk.start + n + 1), widths),
        _emails(rng, first, last),
        text.labels(first, vocab.FIRST_NAMES),
        text.labels(last, vocab.LAST_NAMES),
        text.integral_floats(age, null_mask(rng, n, "users", "age")),
        text.labels(gender, GENDERS, null_mask(rng, n, "users", "gender")),
        text.labels(country, COUNTRIES),
        text.labels(state, STATE_DOMAIN),
        city,
        text.labels(plan, SUBSCRIPTION_PLANS),
        text.dates(start),
        text.booleans(is_active),
        text.decimals(spend, 2, null_mask(rng, n, "users", "monthly_spend")),
        text.labels(device, DEVICES),
        text.integral_floats(household, null_mask(rng, n, "users", "household_size")),
        # The public file's created_at carries microseconds (2023-04-01 14:40:50.540242).
        text.timestamps(created * 1_000_000 + rng.integers(0, 1_000_000, n)),
    ]
    return columns, traits


def _runtimes(rng: np.random.Generator, content_type: np.ndarray) -> np.ndarray:
    # Mean, spread, floor, ceiling of a title's (episode) length, per content type.
    shape = np.array(
        [(108, 22, 60, 200), (45, 12, 20, 70), (85, 25, 40, 150), (62, 12, 35, 100), (55, 10, 35, 80)]
    )
    mean, sd, low, high = shape[content_type].T
    runtime = np.clip(rng.normal(mean, sd), low, high)
    pick = rng.random(len(runtime))
    short = pick < spec.RUNTIME_ANOMALY / 2
    long = (pick >= spec.RUNTIME_ANOMALY / 2) & (pick < spec.RUNTIME_ANOMALY)
    runtime[short] = rng.uniform(0, 10, short.sum())
    runtime[long] = rng.uniform(300, 600, long.sum())
    return np.round(runtime)


def movie_rows(
    rng: np.random.Generator, chunk: Chunk, widths: dict[str, int]
) -> tuple[list[pa.Array], Movies]:
    """A chunk of titles: their rendered columns and their hidden attributes."""
    n = chunk.size
    content_type = rng.choice(len(CONTENT_TYPES), n, p=(0.44, 0.26, 0.14, 0.11, 0.05))
    genre = rng.integers(0, len(GENRES), n)
    documentary = (content_type == CONTENT_TYPES.index("Documentary")) & (rng.random(n) < 0.6)
    genre[documentary] = GENRES.index("Documentary")
    standup = (content_type == CONTENT_TYPES.index("Stand-up Comedy")) & (rng.random(n) < 0.7)
    genre[standup] = GENRES.index("Comedy")
    secondary = (genre + rng.integers(1, len(GENRES), n)) % len(GENRES)  # never equal to the primary

    release = np.clip(np.round(rng.normal(2006, 11, n)), 1950, 2023)
    runtime = _runtimes(rng, content_type)
    quality = np.clip(rng.normal(6.3, 1.5, n), 1.0, 10.0)
    budget = np.round(rng.lognormal(np.log(4e6), 1.3, n))
    budget[np.isin(content_type, (2, 3))] /= 5  # documentaries and stand-up are cheap
    is_movie = content_type == CONTENT_TYPES.index("Movie")
    revenue = np.round(budget * rng.lognormal(0.8, 1.0, n))
    no_revenue = ~is_movie | (rng.random(n) >= spec.BOX_OFFICE_SHARE_OF_MOVIES)
    series = np.isin(content_type, SERIES_TYPES)
    limited = content_type == CONTENT_TYPES.index("Limited Series")
    seasons = np.where(limited, 1, np.minimum(rng.geometric(0.35, n), 12))
    episodes = np.where(limited, rng.integers(4, 11, n), seasons * rng.integers(6, 14, n))
    original = rng.random(n) < 0.30

    origin = rng.choice(
        len(vocab.ORIGIN_COUNTRIES), n, p=np.asarray(vocab.ORIGIN_SHARE) / sum(vocab.ORIGIN_SHARE)
    )
    language = text.labels(origin, vocab.LANGUAGES)
    foreign = rng.random(n) < 0.2
    other = text.labels(rng.integers(0, len(vocab.OTHER_LANGUAGES), n), vocab.OTHER_LANGUAGES)
    language = pc.if_else(pa.array(foreign), other, language)
    rating = rng.integers(0, len(vocab.CONTENT_RATINGS), n)
    mature = np.isin(rating, [vocab.CONTENT_RATINGS.index(r) for r in vocab.MATURE_RATINGS])
    warning = rng.random(n) < np.where(mature, 0.45, 0.1)
    earliest = np.maximum(spec.CATALOG_START, (release.astype(np.int64) - 1970) * 365.25).astype(np.int64)
    added = earliest + (rng.random(n) * (spec.ACTIVITY_START - earliest)).astype(np.int64)

    popularity = rng.lognormal(0, 1.0, n) * np.exp(0.3 * (quality - 6.3)) * np.where(original, 1.4, 1.0)
    traits = Movies(genre.astype(np.int8), content_type.astype(np.int8), runtime, quality, popularity)

    title = text.join(
        text.labels(rng.integers(0, len(vocab.TITLE_FIRST), n), vocab.TITLE_FIRST),
        text.labels(rng.integers(0, len(vocab.TITLE_SECOND), n), vocab.TITLE_SECOND),
        separator=" ",
    )
    columns = [
        identifiers("movies", np.arange(chunk.start + 1, chunk.start + n + 1), widths),
        title,
        text.labels(content_type, CONTENT_TYPES),
        text.labels(genre, GENRES),
        text.labels(secondary, GENRES, null_mask(rng, n, "movies", "genre_secondary")),
        text.integers(release),
        text.integral_floats(runtime),
        text.labels(rating, vocab.CONTENT_RATINGS),
        language,
        text.labels(origin, vocab.ORIGIN_COUNTRIES),
        text.decimals(quality, 1, null_mask(rng, n, "movies", "imdb_rating")),
        text.integral_floats(budget, null_mask(rng, n, "movies", "production_budget")),
        text.integral_floats(revenue, no_revenue),
        text.integral_floats(seasons, ~series),
        text.integral_floats(episodes, ~series),
        text.booleans(original),
        text.dates(added),
        text.booleans(warning),
    ]
    return columns, traits
