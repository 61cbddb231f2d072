"""The four fact tables, one chunk at a time, drawn from the users and movies already generated.

Each builder returns the chunk's rendered columns for its fresh rows followed by its key-duplicate rows,
and the index of the fresh row each key duplicate repeats (the chunk assembler places them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.contracts.raw import ACTIONS, COUNTRIES, DEVICES, GENRES, QUALITIES
from datagen import csv_text as text
from datagen import spec, vocab
from datagen.chunks import Chunk, duplicate_sources
from datagen.population import Movies, Users, identifiers, null_mask

_COMPLETION_BY_GENRE = np.array([spec.GENRE_COMPLETION.get(g, 1.0) for g in GENRES])
_QUALITY_CDF = np.cumsum(np.asarray(spec.PLAN_QUALITY), axis=1)
_MOBILE = np.array([d in ("Mobile", "Tablet") for d in DEVICES])
_LAPTOP = np.array([d == "Laptop" for d in DEVICES])
_STARTED, _COMPLETED, _STOPPED, _PAUSED = (
    ACTIONS.index(a) for a in ("started", "completed", "stopped", "paused")
)


@dataclass(frozen=True)
class World:
    users: Users
    movies: Movies
    widths: dict[str, int]  # digits of each table's ids at this scale (spec.id_width)


Rendered = tuple[list[pa.Array], np.ndarray]


def _ids(chunk: Chunk) -> np.ndarray:
    return np.arange(chunk.start + 1, chunk.start + chunk.size + 1, dtype=np.int64)


def _orphans(
    rng: np.random.Generator, world: World, user: np.ndarray, movie: np.ndarray
) -> tuple[np.ndarray, ...]:
    """user_id/movie_id numbers, a deliberate few pointing past the last user or title (unknown ids)."""
    n = len(user)
    pick = rng.random(n)
    lost_user = pick < spec.ORPHAN_SHARE / 2
    lost_movie = (pick >= spec.ORPHAN_SHARE / 2) & (pick < spec.ORPHAN_SHARE)
    user_no, movie_no = user + 1, movie + 1
    users, movies = world.users.count, world.movies.count
    user_no[lost_user] = users + 1 + rng.integers(0, spec.orphan_reach(users), lost_user.sum())
    movie_no[lost_movie] = movies + 1 + rng.integers(0, spec.orphan_reach(movies), lost_movie.sum())
    return user_no, movie_no


def _home_country(rng: np.random.Generator, world: World, user: np.ndarray) -> np.ndarray:
    """Where the row happened: the user's country, except when travelling (4%)."""
    away = rng.random(len(user)) < 0.04
    return np.where(away, 1 - world.users.country[user], world.users.country[user])


def _uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return low + rng.random(n) * (high - low)


def watch_rows(rng: np.random.Generator, chunk: Chunk, world: World) -> Rendered:
    users, movies = world.users, world.movies
    user, day = users.sample(rng, chunk.size)
    movie = movies.sample(rng, chunk.size)
    user_no, movie_no = _orphans(rng, world, user, movie)
    session = _ids(chunk)
    # Key duplicates: the same session (viewer, title, day) reported again with other measurements.
    again = duplicate_sources(rng, chunk.size, chunk.key_duplicates)
    session, user, movie, day, user_no, movie_no = (
        np.concatenate([a, a[again]]) for a in (session, user, movie, day, user_no, movie_no)
    )
    m = len(session)

    plan = users.plan[user]
    odds = (
        spec.BASE_COMPLETION
        * _COMPLETION_BY_GENRE[movies.genre[movie]]
        * np.asarray(spec.PLAN_COMPLETION)[plan]
    )
    split = rng.random(m)  # the unfinished: 30% just started, 40% stopped, 30% paused
    other = np.where(split < 0.3, _STARTED, np.where(split < 0.7, _STOPPED, _PAUSED))
    action = np.where(rng.random(m) < np.clip(odds, 0.02, 0.9), _COMPLETED, other).astype(np.int8)
    progress = np.empty(m)
    for code, draw in (
        (_STARTED, lambda k: 100 * (1 - rng.random(k) ** (1 / 9))),  # Beta(1, 9): barely begun
        (_COMPLETED, lambda k: _uniform(rng, 90, 100, k)),
        (_STOPPED, lambda k: 100 * rng.beta(1.3, 5, k)),  # mostly given up early
        (_PAUSED, lambda k: _uniform(rng, 15, 85, k)),
    ):
        rows = action == code
        progress[rows] = draw(rows.sum())
    watch_factor = np.asarray(spec.PLAN_WATCH)[plan]
    episodes = np.ones(m)
    series = movies.is_series[movie]
    episodes[series] += rng.poisson(0.7 * watch_factor[series])
    minutes = movies.runtime[movie] * progress / 100 * episodes * watch_factor * rng.lognormal(0, 0.15, m)
    minutes = np.minimum(minutes, 780.0)
    pick = rng.random(m)
    minutes[pick < spec.ZERO_DURATION] = 0.0
    binge = (pick >= spec.ZERO_DURATION) & (pick < spec.ZERO_DURATION + spec.BINGE_SESSION)
    minutes[binge] = _uniform(rng, 300, 780, binge.sum())
    # Rare values Silver must quarantine (rules 4 and 5 of docs/data-quality.md).
    flaw = rng.random(m)
    negative = flaw < spec.NEGATIVE_DURATION
    minutes[negative] = -_uniform(rng, 1, 60, negative.sum())
    over = (flaw >= spec.NEGATIVE_DURATION) & (flaw < spec.NEGATIVE_DURATION + spec.PROGRESS_OVER_100)
    progress[over] = _uniform(rng, 100.5, 125, over.sum())

    level = rng.random(m)
    quality = sum((level > _QUALITY_CDF[plan, k]).astype(np.int8) for k in range(len(QUALITIES) - 1))
    device = np.where(rng.random(m) < 0.55, users.device[user], rng.integers(0, len(DEVICES), m))
    download = rng.random(m) < np.where(_MOBILE[device], 0.15, np.where(_LAPTOP[device], 0.06, 0.01))
    stars = (
        2.2
        + 0.45 * (movies.quality[movie] - 6.3)
        + 1.5 * np.minimum(progress, 100) / 100
        + rng.normal(0, 0.8, m)
    )
    columns = [
        identifiers("watch_history", session, world.widths),
        identifiers("users", user_no, world.widths),
        identifiers("movies", movie_no, world.widths),
        text.dates(day),
        text.labels(device, DEVICES),
        text.decimals(minutes, 1, null_mask(rng, m, "watch_history", "watch_duration_minutes")),
        text.decimals(progress, 1, null_mask(rng, m, "watch_history", "progress_percentage")),
        text.labels(action, ACTIONS),
        text.labels(quality, QUALITIES),
        text.labels(_home_country(rng, world, user), COUNTRIES),
        text.booleans(download),
        text.integral_floats(
            np.clip(np.round(stars), 1, 5), null_mask(rng, m, "watch_history", "user_rating")
        ),
    ]
    return columns, again


def review_rows(rng: np.random.Generator, chunk: Chunk, world: World) -> Rendered:
    n = chunk.size
    user, day = world.users.sample(rng, n)
    movie = world.movies.sample(rng, n)
    user_no, movie_no = _orphans(rng, world, user, movie)
    rating = np.clip(np.round(3.7 + 0.4 * (world.movies.quality[movie] - 6.3) + rng.normal(0, 1.0, n)), 1, 5)
    sentiment = np.select([rating <= 2, rating == 3], [0, 1], 2)
    mixed = rng.random(n) < 0.06  # a lukewarm 4 written up as neutral, a harsh 3 as negative …
    sentiment[mixed] = np.clip(sentiment[mixed] + rng.choice((-1, 1), mixed.sum()), 0, 2)
    score = np.choose(
        sentiment, [_uniform(rng, 0, 0.45, n), _uniform(rng, 0.35, 0.65, n), _uniform(rng, 0.55, 1, n)]
    )
    phrases = [p for group in vocab.REVIEW_TEXTS for p in group]
    first = np.cumsum([0] + [len(g) for g in vocab.REVIEW_TEXTS])[:-1]
    count = np.array([len(g) for g in vocab.REVIEW_TEXTS])
    phrase = first[sentiment] + (rng.random(n) * count[sentiment]).astype(np.int64)
    total_votes = rng.poisson(5, n)
    no_votes = null_mask(rng, n, "reviews", "helpful_votes")
    columns = [
        identifiers("reviews", _ids(chunk), world.widths),
        identifiers("users", user_no, world.widths),
        identifiers("movies", movie_no, world.widths),
        text.integers(rating),
        text.dates(day),
        text.labels(rng.integers(0, len(vocab.REVIEW_DEVICES), n), vocab.REVIEW_DEVICES),
        text.booleans(rng.random(n) < 0.8),
        text.integral_floats(rng.binomial(total_votes, 0.55), no_votes),
        text.integral_floats(total_votes, no_votes),
        text.labels(phrase, phrases, null_mask(rng, n, "reviews", "review_text")),
        text.labels(sentiment, vocab.SENTIMENTS),
        text.decimals(score, 3, null_mask(rng, n, "reviews", "sentiment_score")),
    ]
    return columns, np.zeros(0, np.int64)


def search_rows(rng: np.random.Generator, chunk: Chunk, world: World) -> Rendered:
    n = chunk.size
    user, day = world.users.sample(rng, n)
    typo = rng.random(n) < 0.15
    filters = rng.random(n) < 0.25
    results = np.where(rng.random(n) < np.where(typo, 0.2, 0.04), 0, rng.integers(1, 101, n))
    clicked = (results > 0) & (rng.random(n) < 0.52 - 0.2 * typo + 0.1 * filters)
    position = np.minimum(np.minimum(rng.geometric(0.3, n), 10), np.maximum(results, 1))
    seconds = rng.gamma(2.2, 9, n) + 6 * typo + 4 * filters
    columns = [
        identifiers("search_logs", _ids(chunk), world.widths),
        identifiers("users", user + 1, world.widths),
        text.labels(rng.integers(0, len(vocab.SEARCH_QUERIES), n), vocab.SEARCH_QUERIES),
        text.dates(day),
        text.integers(results),
        text.integral_floats(position, ~clicked),
        text.labels(rng.integers(0, len(vocab.REVIEW_DEVICES), n), vocab.REVIEW_DEVICES),
        text.decimals(seconds, 1, null_mask(rng, n, "search_logs", "search_duration_seconds")),
        text.booleans(typo),
        text.booleans(filters),
        text.labels(_home_country(rng, world, user), COUNTRIES),
    ]
    return columns, np.zeros(0, np.int64)


def recommendation_rows(rng: np.random.Generator, chunk: Chunk, world: World) -> Rendered:
    n = chunk.size
    user, day = world.users.sample(rng, n)
    movie = world.movies.sample(rng, n)
    user_no, movie_no = _orphans(rng, world, user, movie)
    kind = rng.choice(len(vocab.RECOMMENDATION_TYPES), n, p=vocab.RECOMMENDATION_TYPE_SHARE)
    relevance = np.asarray(vocab.RECOMMENDATION_TYPE_SCORE)[kind] + 0.04 * (world.movies.quality[movie] - 6.3)
    score = np.clip(rng.normal(relevance, 0.15), 0, 1)
    position = rng.integers(1, 21, n)
    click_odds = -3.2 + 4.0 * score - 0.09 * (position - 1)
    clicked = rng.random(n) < 1 / (1 + np.exp(-click_odds))
    # Newer algorithm versions roll out over the two years.
    elapsed = (day - spec.ACTIVITY_START) / (spec.ACTIVITY_END - spec.ACTIVITY_START + 1)
    version = np.clip(np.floor(elapsed * len(vocab.ALGORITHM_VERSIONS) + rng.normal(0, 0.6, n)), 0, 4)
    columns = [
        identifiers("recommendation_logs", _ids(chunk), world.widths),
        identifiers("users", user_no, world.widths),
        identifiers("movies", movie_no, world.widths),
        text.dates(day),
        text.labels(kind, vocab.RECOMMENDATION_TYPES),
        text.decimals(score, 3, null_mask(rng, n, "recommendation_logs", "recommendation_score")),
        text.booleans(clicked),
        text.integers(position),
        text.labels(rng.integers(0, len(DEVICES), n), DEVICES),
        text.labels(rng.choice(len(vocab.TIMES_OF_DAY), n, p=vocab.TIME_OF_DAY_SHARE), vocab.TIMES_OF_DAY),
        text.labels(version.astype(np.int64), vocab.ALGORITHM_VERSIONS),
    ]
    return columns, np.zeros(0, np.int64)
