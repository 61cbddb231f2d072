"""Servers we start listen on 127.0.0.1 only: here the Spark driver's JVM (RPC, block manager), started
from the project's one Spark configuration with the default local master, and doing a job with a shuffle
(which opens the block transfer service). The whole ``netflix-lambda up`` tree (UI, broker, runs' JVMs) is
checked the same way in tests/test_launcher.py; the broker alone in tests/test_broker.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pyspark.sql import SparkSession

from core.settings import Settings
from core.spark import start_spark
from tests.launcher_stack import LOOPBACK_ADDRESSES


@pytest.fixture(name="spark")
def local_spark(tmp_path: Path) -> Iterator[SparkSession]:
    settings = Settings(_env_file=None, data_dir=tmp_path, spark_master="local[2]", spark_driver_memory="1g")
    session = start_spark(settings, "netflix-lambda-loopback")
    try:
        yield session
    finally:
        session.stop()


def test_the_spark_driver_listens_on_loopback_only(spark: SparkSession) -> None:
    frame = spark.range(1000).selectExpr("id % 7 AS k").groupBy("k").count()  # a shuffle
    assert sorted(row["k"] for row in frame.collect()) == list(range(7))
    jvms = [p for p in psutil.Process(os.getpid()).children(recursive=True) if p.name() == "java"]
    assert jvms, "no Spark JVM below the test process"
    listening = [
        conn.laddr
        for jvm in jvms
        for conn in jvm.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening, "the driver listens on nothing: the check would prove nothing"
    elsewhere = [f"{a.ip}:{a.port}" for a in listening if a.ip not in LOOPBACK_ADDRESSES]
    assert elsewhere == [], f"Spark listens beyond loopback: {elsewhere}"
    assert spark.conf.get("spark.driver.host") == "127.0.0.1"
