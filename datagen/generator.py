"""Orchestration: plan every table's chunks, render them, and stream them into ``raw/<table>.csv``.

Users and movies go first because every fact row is drawn from them; the four fact tables are then
independent of each other. Chunks render in a few worker threads (numpy's generators and Arrow's kernels
release the GIL) while the calling thread writes finished chunks strictly in order, so the bytes do not
depend on the number of workers and memory stays bounded by the chunks in flight plus the user/movie
attribute arrays, whatever the scale.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from core.bucket import Bucket
from core.contracts.raw import RAW_COLUMNS, RAW_TABLES, raw_key
from datagen import csv_text as text
from datagen import facts, spec
from datagen.chunks import Chunk, chunk_rng, interleave, plan_chunks
from datagen.facts import Rendered, World
from datagen.population import Movies, Users, movie_rows, user_rows
from datagen.writer import open_csv

log = logging.getLogger(__name__)

FACT_BUILDERS: dict[str, Callable[[np.random.Generator, Chunk, World], Rendered]] = {
    "watch_history": facts.watch_rows,
    "reviews": facts.review_rows,
    "search_logs": facts.search_rows,
    "recommendation_logs": facts.recommendation_rows,
}
_NO_KEY_DUPLICATES = np.zeros(0, np.int64)
# A renderer gives a chunk's columns, the key-duplicate sources, and what the table hands on (traits).
Renderer = Callable[[np.random.Generator, Chunk], tuple[list[pa.Array], np.ndarray, Any]]


@dataclass(frozen=True)
class GeneratedTable:
    table: str
    uri: str
    rows: int
    bytes: int
    seconds: float


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def planned_rows(scale: float) -> dict[str, int]:
    """Rows each table will have at ``scale`` (header excluded)."""
    return {table: spec.plan_rows(table, scale).total for table in RAW_TABLES}


def _render_chunk(table: str, seed: int, chunk: Chunk, render: Renderer) -> tuple[pa.Array, Any]:
    rng = chunk_rng(seed, table, chunk.index)
    columns, key_sources, traits = render(rng, chunk)
    if len(columns) != len(RAW_COLUMNS[table]):
        raise RuntimeError(
            f"{table}: rendered {len(columns)} columns, the contract has {len(RAW_COLUMNS[table])}"
        )
    return interleave(rng, text.rows(columns), chunk.size, key_sources, chunk.exact_duplicates), traits


def _in_order(pool: ThreadPoolExecutor, jobs: Iterator[Callable[[], Any]], ahead: int) -> Iterator[Any]:
    """Results of ``jobs`` in submission order, with at most ``ahead`` of them running or waiting."""
    pending: deque[Future[Any]] = deque()
    for job in jobs:
        pending.append(pool.submit(job))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write_table(
    bucket: Bucket,
    table: str,
    scale: float,
    seed: int,
    render: Renderer,
    pool: ThreadPoolExecutor,
    workers: int,
    bar: tqdm,
) -> tuple[GeneratedTable, list[Any]]:
    plan = spec.plan_rows(table, scale)
    key = raw_key(table)
    started = time.perf_counter()
    bar.set_description(table)
    traits: list[Any] = []
    jobs = (
        (lambda chunk=chunk: _render_chunk(table, seed, chunk, render))
        for chunk in plan_chunks(plan, spec.CHUNK_ROWS)
    )
    with open_csv(bucket, key, text.header(RAW_COLUMNS[table])) as sink:
        for lines, chunk_traits in _in_order(pool, jobs, ahead=workers + 1):
            sink.write(text.buffer_of(lines), len(lines))
            traits.append(chunk_traits)
            bar.update(len(lines))
        if sink.rows_written != plan.total:  # checked before the file is published
            raise RuntimeError(f"{bucket.uri(key)}: rendered {sink.rows_written} rows, planned {plan.total}")
    result = GeneratedTable(
        table, bucket.uri(key), sink.rows_written, sink.bytes_written, time.perf_counter() - started
    )
    log.info(
        "wrote %s: %s rows, %.1f MB in %.2f s",
        result.uri,
        f"{result.rows:,}",
        result.bytes / 1e6,
        result.seconds,
    )
    return result, traits


def generate_tables(
    bucket: Bucket, scale: float, seed: int = 42, progress: bool = False, workers: int | None = None
) -> Iterator[GeneratedTable]:
    """Write the six tables in dependency order, yielding each one's result as it lands."""
    total = sum(planned_rows(scale).values())
    widths = {table: spec.id_width(table, scale) for table in RAW_TABLES}
    workers = workers or default_workers()
    log.info("generating %s rows at scale %g (seed %d, %d threads) into %s",
             f"{total:,}", scale, seed, workers, bucket.uri("raw"))  # fmt: skip
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="datagen") as pool,
        tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr, disable=not progress) as bar,
    ):
        result, parts = _write_table(
            bucket, "users", scale, seed, lambda r, c: _dimension(user_rows(r, c, widths)), pool, workers, bar
        )
        yield result
        users = Users.concat(parts)
        result, parts = _write_table(
            bucket,
            "movies",
            scale,
            seed,
            lambda r, c: _dimension(movie_rows(r, c, widths)),
            pool,
            workers,
            bar,
        )
        yield result
        movies = Movies.concat(parts)
        world = World(users, movies, widths)
        world.users.sampler, world.movies.sampler, world.movies.is_series  # noqa: B018 - build caches once
        for table, build in FACT_BUILDERS.items():
            result, _ = _write_table(
                bucket,
                table,
                scale,
                seed,
                lambda r, c, build=build: (*build(r, c, world), None),
                pool,
                workers,
                bar,
            )
            yield result


def _dimension(rendered: tuple[list[pa.Array], Any]) -> tuple[list[pa.Array], np.ndarray, Any]:
    columns, traits = rendered
    return columns, _NO_KEY_DUPLICATES, traits


def generate(
    bucket: Bucket, scale: float, seed: int = 42, progress: bool = False, workers: int | None = None
) -> dict[str, int]:
    """Write ``raw/<table>.csv`` for the six tables; returns the data rows written per table.

    ``workers`` only changes speed, never the bytes written.
    """
    return {result.table: result.rows for result in generate_tables(bucket, scale, seed, progress, workers)}
