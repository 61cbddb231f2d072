"""``netflix-lambda generate``: write the six Kaggle-shaped CSVs into the configured bucket's raw/."""

from __future__ import annotations

import argparse
import logging
import math
import time
from contextlib import nullcontext

from tqdm.contrib.logging import logging_redirect_tqdm

from core.bucket import Bucket
from core.settings import Settings
from datagen.generator import generate_tables


def _scale(value: str) -> float:
    try:
        scale = float(value)
    except ValueError:
        scale = math.nan
    if not (scale > 0 and math.isfinite(scale)):
        raise argparse.ArgumentTypeError(
            f"--scale must be a positive number (1 = 105,000 watch rows), got {value!r}"
        )
    return scale


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        type=_scale,
        default=1.0,
        help="size relative to the public dataset (1 = 210k rows, 100 = 21M)",
    )
    parser.add_argument("--seed", type=int, default=42, help="same seed and scale give byte-identical files")
    parser.add_argument(
        "--workers", type=int, default=None, help="render threads (speed only; default: cores, max 4)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bucket = Bucket.from_settings(settings)
    started = time.perf_counter()
    rows = 0
    # While the bar is live, log lines go through tqdm so they do not tear it apart.
    with nullcontext() if args.no_progress else logging_redirect_tqdm():
        for result in generate_tables(
            bucket, args.scale, args.seed, progress=not args.no_progress, workers=args.workers
        ):
            rows += result.rows
    elapsed = time.perf_counter() - started
    rate = rows / max(elapsed, 1e-9)
    print(f"Wrote {rows:,} rows into {bucket.uri('raw')}/ in {elapsed:.1f} s ({rate:,.0f} rows/s)")
    return 0
