"""The Spark driver's class archive: written by the real JVM, mapped by a real Spark start, never fatal.

Each Spark start here runs in a child process: a driver JVM takes its options only when it starts, and the
test session's own Spark may be up already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from core.spark import class_archive_options
from core.spark_classes import write_archive

pytestmark = pytest.mark.slow

# Starts Spark from the settings (NETFLIX_* environment) plus the driver options in argv[1]; prints the
# driver JVM's arguments and a query's result.
START = """
import sys
from core.settings import get_settings
from core.spark import start_spark
spark = start_spark(get_settings(), "class-archive-test", sys.argv[1])
args = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
print(" ".join(str(a) for a in args))
print("rows", spark.range(5).count())
spark.stop()
"""


def _start_spark(tmp_path: Path, archive: Path, driver_options: str = "") -> list[str]:
    env = {**os.environ, "NETFLIX_SPARK_CLASS_ARCHIVE": str(archive), "NETFLIX_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", START, driver_options], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()[-2:]  # the JVM may print its own notices first


def test_the_archive_written_once_is_mapped_by_spark_starts(tmp_path: Path) -> None:
    archive = tmp_path / "cache" / "spark-classes.jsa"
    settings = Settings(_env_file=None, data_dir=tmp_path, spark_class_archive=str(archive))
    assert class_archive_options(settings) == ""  # nothing to map yet
    assert write_archive(settings) == archive
    assert archive.stat().st_size > 10_000_000  # Spark's classes, not an empty dump
    assert list(archive.parent.iterdir()) == [archive]  # no partial file left behind
    written = archive.stat().st_mtime_ns
    assert write_archive(settings) == archive and archive.stat().st_mtime_ns == written  # kept
    # -Xshare:on makes the JVM refuse to start unless it maps the archive: Spark started, so it did.
    arguments, rows = _start_spark(tmp_path, archive, "-Xshare:on")
    assert f"-XX:SharedArchiveFile={archive}" in arguments.split()
    assert rows == "rows 5"


def test_a_foreign_or_broken_archive_costs_the_saving_not_the_start(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsa"
    broken.write_bytes(b"not a class archive" * 1000)
    arguments, rows = _start_spark(tmp_path, broken)
    assert f"-XX:SharedArchiveFile={broken}" in arguments.split()
    assert rows == "rows 5"


def test_an_empty_setting_turns_the_archive_off(tmp_path: Path) -> None:
    assert class_archive_options(Settings(_env_file=None, data_dir=tmp_path, spark_class_archive="")) == ""
    assert write_archive(Settings(_env_file=None, data_dir=tmp_path, spark_class_archive="")) is None
