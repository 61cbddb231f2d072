"""The one Spark configuration of the project, and the session every Spark job starts from it.

The batch job (Silver) and the stream share it, whether Dagster's ``PySparkResource`` starts the session
or a command-line tool does; cluster specifics come from the master URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from core.settings import Settings

GCS_FILESYSTEM = "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem"
GCS_ABSTRACT_FILESYSTEM = "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS"


class SparkCannotReadBucket(RuntimeError):
    """Spark has no Hadoop filesystem for the bucket's scheme (``gs://`` without the GCS connector)."""


def spark_config(settings: Settings) -> dict[str, Any]:
    """Spark configuration shared by the batch job and the stream (cluster specifics included).

    The driver binds and advertises ``settings.spark_driver_address``: 127.0.0.1 in local mode (or with a
    standalone master on loopback), so nothing Spark opens (driver RPC, block manager) listens beyond this
    machine; without it Spark binds the machine's network address. A cluster's executors must reach the
    driver, so there Spark's own choice stands unless ``NETFLIX_SPARK_DRIVER_HOST`` names one.
    """
    return {**_base_config(settings), **_cluster_config(settings)}


def _cluster_config(settings: Settings) -> dict[str, str]:
    """Where the driver listens, what executors get, extra jars and the GCS filesystem, when they apply."""
    conf: dict[str, str] = {}
    host = settings.spark_driver_address
    if host:
        conf["spark.driver.host"] = conf["spark.driver.bindAddress"] = host
    if settings.spark_executor_memory:
        conf["spark.executor.memory"] = settings.spark_executor_memory
    if settings.spark_cores_max:
        conf["spark.cores.max"] = str(settings.spark_cores_max)
    if settings.spark_jar_list:
        conf["spark.jars"] = ",".join(settings.spark_jar_list)
    if settings.is_gcs:  # the connector's classes, as Dataproc configures them (harmless where they are set)
        conf["spark.hadoop.fs.gs.impl"] = GCS_FILESYSTEM
        conf["spark.hadoop.fs.AbstractFileSystem.gs.impl"] = GCS_ABSTRACT_FILESYSTEM
    return conf


def require_bucket_filesystem(spark: SparkSession, bucket_uri: str) -> None:
    """Fail at start-up, clearly, when Spark cannot open the bucket (``gs://`` without the connector).

    Asks Hadoop for the scheme's filesystem class, which is exactly what the first read would do, minutes
    later and with a stack trace instead of a sentence.
    """
    scheme = bucket_uri.split("://", 1)[0] if "://" in bucket_uri else "file"
    context = spark.sparkContext
    hadoop = context._jvm.org.apache.hadoop
    try:
        hadoop.fs.FileSystem.getFileSystemClass(scheme, context._jsc.hadoopConfiguration())
    except Exception as exc:  # py4j's Py4JJavaError: UnsupportedFileSystemException / ClassNotFoundException
        java = getattr(exc, "java_exception", None)  # the Java exception's own sentence, not py4j's
        cause = (str(java.toString()) if java is not None else str(exc)).strip().splitlines()[0][:300]
        raise SparkCannotReadBucket(
            f"Spark cannot read the bucket {bucket_uri}: no Hadoop filesystem for '{scheme}://' ({cause}). "
            "Spark needs Google's GCS connector for gs:// buckets: set NETFLIX_SPARK_JARS to the "
            "gcs-connector-hadoop3 shaded jar (or run on Dataproc, whose Spark has it and then set "
            "NETFLIX_SPARK_GCS_CONNECTOR_PROVIDED=true); see docs/deployment.md"
        ) from exc


def _base_config(settings: Settings) -> dict[str, Any]:
    return {
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
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=warn -XX:-DontCompileHugeMethods"
        + class_archive_options(settings),
        "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
    }


def class_archive_options(settings: Settings) -> str:
    """Driver JVM options that load Spark's classes from the settings' AppCDS archive, when it exists.

    Loading and verifying Spark's ~10,000 classes is half of what a Spark start costs here (JVM CPU 17.0 s
    → 9.7 s, start 6.9 s → 3.7 s with the archive; bench/bench_spark_start.py). The JVM checks the
    archive against its own build and classpath and silently runs without it on any mismatch (a JDK update,
    another pyspark), so a stale archive costs the saving, never a failure.
    """
    archive = Path(settings.spark_class_archive) if settings.spark_class_archive else None
    if archive is None or not archive.is_file():
        return ""
    return f" -XX:SharedArchiveFile={archive} -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"


def with_driver_options(conf: dict[str, Any], options: str) -> dict[str, Any]:
    """``conf`` (a copy) with ``options`` added to the driver JVM's; only a JVM not yet started takes them."""
    key = "spark.driver.extraJavaOptions"
    return {**conf, key: f"{conf.get(key, '')} {options}".strip()} if options else dict(conf)


def start_spark(
    settings: Settings, app_name: str = "netflix-lambda", driver_options: str = ""
) -> SparkSession:
    """A SparkSession from :func:`spark_config` whose Python workers run this venv's interpreter.

    ``driver_options`` are appended to the driver JVM's options (only a fresh JVM takes them).
    """
    conf = with_driver_options({**spark_config(settings), "spark.app.name": app_name}, driver_options)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    use_python(spark, settings.pyspark_python)
    try:
        require_bucket_filesystem(spark, settings.resolved_bucket_url)
    except SparkCannotReadBucket:
        spark.stop()
        raise
    return spark


def use_python(spark: SparkSession, python: str) -> None:
    """Make Python data sources and UDFs start ``python`` (the venv's interpreter by default).

    PySpark takes the worker interpreter of a Python data source from ``SparkContext.pythonExec``, which
    it reads once from ``PYSPARK_PYTHON`` and which ``spark.pyspark.python`` does not change; without
    this, the source's planner runs the system ``python3`` and fails on ``import pyarrow``.
    """
    spark.sparkContext.pythonExec = python
