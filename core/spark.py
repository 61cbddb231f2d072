"""The one Spark configuration of the project, and the session every Spark job starts from it.

The batch job (Silver) and the stream share it, whether Dagster's ``PySparkResource`` starts the session
or a command-line tool does; cluster specifics come from the master URL.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from core.settings import Settings


def spark_config(settings: Settings) -> dict[str, Any]:
    """Spark configuration shared by the batch job and the stream.

    The driver binds and advertises ``settings.spark_driver_address``: 127.0.0.1 with a local master, so
    nothing Spark opens (driver RPC, block manager) listens beyond this machine; without it Spark binds
    the machine's network address. A cluster's executors must reach the driver, so there Spark's own
    choice stands unless ``NETFLIX_SPARK_DRIVER_HOST`` names one.
    """
    host = settings.spark_driver_address
    network = {"spark.driver.host": host, "spark.driver.bindAddress": host} if host else {}
    return {
        **network,
        "spark.master": settings.spark_master,
        "spark.app.name": "netflix-lambda",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": settings.pyspark_python,
        "spark.pyspark.driver.python": settings.pyspark_python,
        "spark.executorEnv.PYSPARK_PYTHON": settings.pyspark_python,
        "spark.local.dir": str(settings.data_dir / "spark-tmp"),
        # -XX:-DontCompileHugeMethods: HotSpot never JIT-compiles methods over 8,000 bytes of bytecode, and
        # Spark's generated code for wide rule expressions (the stream's validation) exceeds that; measured
        # 2x faster validation with the flag (docs/speed-layer.md).
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=warn -XX:-DontCompileHugeMethods",
        "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
    }


def start_spark(settings: Settings, app_name: str = "netflix-lambda") -> SparkSession:
    """A SparkSession from :func:`spark_config` whose Python workers run this venv's interpreter."""
    builder = SparkSession.builder
    for key, value in {**spark_config(settings), "spark.app.name": app_name}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    use_python(spark, settings.pyspark_python)
    return spark


def use_python(spark: SparkSession, python: str) -> None:
    """Make Python data sources and UDFs start ``python`` (the venv's interpreter by default).

    PySpark takes the worker interpreter of a Python data source from ``SparkContext.pythonExec``, which
    it reads once from ``PYSPARK_PYTHON`` and which ``spark.pyspark.python`` does not change; without
    this, the source's planner runs the system ``python3`` and fails on ``import pyarrow``.
    """
    spark.sparkContext.pythonExec = python
