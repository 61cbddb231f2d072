"""The Spark driver's class-data-sharing archive (Java AppCDS): written once per venv, used by every start.

A dynamic archive is dumped by a JVM when it exits normally, holding every class it loaded. ``write_archive``
runs a short representative Spark workload (CSV text parsed with ``from_csv``, a shuffle, Parquet written and
read: the classes Silver and the stream load) in a child process whose JVM dumps to a temporary file, and
renames it into place once that JVM has exited; concurrent writers each rename a whole file. Spark starts
then use it through :func:`core.spark.class_archive_options`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from core.settings import Settings, get_settings
from core.spark import start_spark

JVM_EXIT_TIMEOUT_S = 300.0  # the dump takes a few seconds; only a hung JVM takes this long


def write_archive(settings: Settings, replace: bool = False) -> Path | None:
    """The archive's path once written (None when turned off); keeps an existing one unless ``replace``."""
    if not settings.spark_class_archive:
        return None
    archive = Path(settings.spark_class_archive)
    if archive.is_file() and not replace:
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    # The child reads its settings from the environment: the same data folder (Spark's local dir), and no
    # archive for the dumping JVM to map.
    env = {
        **settings.subprocess_env(),
        "NETFLIX_DATA_DIR": str(settings.data_dir),
        "NETFLIX_SPARK_CLASS_ARCHIVE": "",
    }
    try:
        subprocess.run([sys.executable, "-m", "core.spark_classes", str(partial)], env=env, check=True)
        if not partial.is_file():
            raise RuntimeError(f"the Spark JVM exited without writing its class archive {partial}")
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive


def _dump(partial: Path) -> None:
    """Run the workload in a JVM that dumps its classes to ``partial`` at exit, and wait for that exit."""
    spark = start_spark(
        get_settings(),
        "netflix-lambda-class-archive",
        f"-XX:ArchiveClassesAtExit={partial} -Xlog:cds=off -Xlog:cds+dynamic=off",
    )
    gateway = spark.sparkContext._gateway
    with tempfile.TemporaryDirectory(prefix="spark-classes-") as scratch:
        text = Path(scratch, "in.csv")
        text.write_text("".join(f'{i},"name {i}",{i * 0.5}\n' for i in range(2000)))
        lines = spark.read.text(str(text))
        rows = lines.selectExpr("from_csv(value, 'id INT, name STRING, score DOUBLE') AS r").select("r.*")
        rows.groupBy((rows.id % 7).alias("k")).count().write.parquet(str(Path(scratch, "out")))
        spark.read.parquet(str(Path(scratch, "out"))).collect()
    spark.stop()
    # The gateway JVM exits on end of input (PythonGatewayServer), dumping the archive on the way out.
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=JVM_EXIT_TIMEOUT_S)


if __name__ == "__main__":
    _dump(Path(sys.argv[1]))
