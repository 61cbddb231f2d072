"""``netflix-lambda spark-classes``: write the Spark driver's class archive once (``make setup`` runs it)."""

from __future__ import annotations

import argparse
import time

from core.settings import Settings
from core.spark_classes import write_archive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="write it again even if it exists")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.spark_class_archive:
        print("NETFLIX_SPARK_CLASS_ARCHIVE is empty: Spark starts without a class archive.")
        return 0
    started = time.perf_counter()
    archive = write_archive(settings, replace=args.force)
    print(
        f"Spark's class archive is at {archive} ({time.perf_counter() - started:.0f} s); every Spark start "
        "of this venv loads its classes from it."
    )
    return 0
