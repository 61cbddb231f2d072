"""Splitting a table into fixed-size chunks, each with its own random stream and share of duplicates.

Determinism without global state: chunk ``c`` of table ``t`` draws only from a generator seeded with
``(seed, t, c)``, and the chunk boundaries depend only on the row counts, so the same (seed, scale) gives
the same bytes however the chunks are scheduled, and memory is bounded by one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.contracts.raw import RAW_TABLES
from datagen.spec import Plan


@dataclass(frozen=True)
class Chunk:
    """Rows ``[start, start + size)`` of a table's fresh keys, plus the duplicates placed among them."""

    index: int
    start: int  # 0-based number of the first fresh row (its id is start + 1)
    size: int
    exact_duplicates: int
    key_duplicates: int

    @property
    def total(self) -> int:
        return self.size + self.exact_duplicates + self.key_duplicates


def _share(count: int, base: int, upto: int) -> int:
    """Duplicates allotted to the first ``upto`` fresh rows: proportional, and summing to ``count``."""
    return (count * upto + base // 2) // base if base else 0


def plan_chunks(plan: Plan, chunk_rows: int) -> Iterator[Chunk]:
    for index, start in enumerate(range(0, plan.base, chunk_rows)):
        end = min(start + chunk_rows, plan.base)
        yield Chunk(
            index=index,
            start=start,
            size=end - start,
            exact_duplicates=_share(plan.exact_duplicates, plan.base, end)
            - _share(plan.exact_duplicates, plan.base, start),
            key_duplicates=_share(plan.key_duplicates, plan.base, end)
            - _share(plan.key_duplicates, plan.base, start),
        )


def chunk_rng(seed: int, table: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, RAW_TABLES.index(table), chunk]))


def duplicate_sources(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """Which fresh rows of a chunk get duplicated (with replacement: a row may repeat more than once)."""
    return rng.integers(0, size, count) if size else np.zeros(0, np.int64)


def interleave(
    rng: np.random.Generator, lines: pa.Array, size: int, key_sources: np.ndarray, exact: int
) -> pa.Array:
    """Final row order of a chunk: each duplicate lands at a random place after the row it repeats.

    ``lines`` holds the ``size`` fresh rows followed by one row per entry of ``key_sources`` (same key,
    other content); ``exact`` more rows are byte-identical copies of random fresh rows.
    """
    exact_sources = duplicate_sources(rng, size, exact)
    sources = np.concatenate([key_sources, exact_sources]).astype(np.int64)
    if sources.size == 0:
        return lines
    extra_rows = np.concatenate([np.arange(size, size + key_sources.size, dtype=np.int64), exact_sources])
    # A duplicate of fresh row s lands at a random point p in (s, size): before fresh row ceil(p).
    after = sources + 0.5 + rng.random(sources.size) * (size - 0.5 - sources)
    by_place = np.argsort(after, kind="stable")
    order = np.insert(
        np.arange(size, dtype=np.int64), np.ceil(after[by_place]).astype(np.int64), extra_rows[by_place]
    )
    return pc.take(lines, pa.array(order))
