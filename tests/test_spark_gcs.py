"""Spark and a gs:// bucket: a clear start-up failure without the GCS connector, the cluster settings it uses.

The connector jar is not on PyPI and there is no Maven here, so the positive path (reading gs:// from
Spark) cannot run on this machine; what runs is the check every Spark start makes, against a real JVM.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster
from core.settings import Settings
from core.spark import GCS_FILESYSTEM, SparkCannotReadBucket, spark_config, start_spark
from core.warehouse import WarehouseLayout
from silver.job import SilverJob
from streaming.job import StreamOptions, run_stream


def gcs_settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(
        _env_file=None, data_dir=tmp_path / "data", spark_master="local[1]", spark_driver_memory="1g",
        bucket_url="gs://prod-bucket/netflix", gcs_endpoint="http://127.0.0.1:9", **values,
    )  # fmt: skip


def test_a_gs_bucket_without_the_connector_fails_at_spark_start_with_the_fix(tmp_path: Path) -> None:
    settings = gcs_settings(tmp_path)
    with pytest.raises(SparkCannotReadBucket) as raised:
        start_spark(settings, "gcs-check")
    message = str(raised.value)
    assert "gs://prod-bucket/netflix" in message and "NETFLIX_SPARK_JARS" in message
    assert "GoogleHadoopFileSystem" in message and "docs/deployment.md" in message
    assert SparkSession.getActiveSession() is None  # the session it started was stopped

    # The engines check too, whoever started the session (Dagster's PySparkResource, a benchmark).
    local = start_spark(
        Settings(_env_file=None, data_dir=tmp_path / "local", spark_master="local[1]"), "gcs-2"
    )
    try:
        bucket = Bucket.from_settings(settings)
        with pytest.raises(SparkCannotReadBucket, match="no Hadoop filesystem for 'gs://'"):
            SilverJob(local, bucket)
        with pytest.raises(SparkCannotReadBucket):
            kafka = KafkaCluster.from_settings(
                settings.model_copy(update={"kafka_bootstrap_servers": "k:9092"})
            )
            run_stream(local, bucket, WarehouseLayout.from_settings(settings), kafka, StreamOptions())
    finally:
        local.stop()


def test_cluster_settings_reach_spark(tmp_path: Path) -> None:
    jar = "/opt/jars/gcs-connector-hadoop3-2.2.22-shaded.jar"
    conf = spark_config(gcs_settings(tmp_path, spark_jars=f"{jar}, /opt/jars/extra.jar"))
    assert conf["spark.jars"] == f"{jar},/opt/jars/extra.jar"
    assert conf["spark.hadoop.fs.gs.impl"] == GCS_FILESYSTEM

    remote = spark_config(
        Settings(
            _env_file=None,
            spark_master="spark://spark-master:7077",
            spark_executor_memory="4g",
            spark_cores_max=16,
        )
    )
    assert "spark.driver.host" not in remote  # Spark announces this host's address to remote executors
    assert (remote["spark.executor.memory"], remote["spark.cores.max"]) == ("4g", "16")
    assert "spark.hadoop.fs.gs.impl" not in remote and "spark.jars" not in remote
    for master in ("local[2]", "spark://127.0.0.1:7077", "spark://localhost:7077"):
        assert spark_config(Settings(_env_file=None, spark_master=master))["spark.driver.host"] == "127.0.0.1"
    pinned = Settings(_env_file=None, spark_master="spark://m:7077", spark_driver_host="10.0.0.5")
    assert spark_config(pinned)["spark.driver.host"] == "10.0.0.5"
