"""Dagster resources, built from :class:`Settings` in this one place and chosen by deployment.

The same assets run everywhere; only what this module hands them differs: a local folder or GCS for
the bucket, local Spark or a cluster master, dbt's ``duckdb`` or ``bigquery`` target, the embedded
broker or a real Kafka cluster. Nothing else in the package decides which component is in use.
"""

from __future__ import annotations

import shutil
from typing import Any

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource
from dagster_pyspark import PySparkResource

from netflix_assets.bucket import Bucket
from netflix_assets.kafka_resource import KafkaResource
from netflix_assets.settings import PROJECT_ROOT, Settings, WarehouseKind
from netflix_assets.warehouse import WarehouseLayout


class BucketResource(ConfigurableResource):
    """The raw/silver/quarantine bucket: a local folder or ``gs://bucket/prefix``."""

    url: str
    gcs_project: str | None = None
    gcs_endpoint: str | None = None

    def get(self) -> Bucket:
        return Bucket.from_settings(
            Settings(bucket_url=self.url, gcs_project=self.gcs_project, gcs_endpoint=self.gcs_endpoint)
        )


class WarehouseResource(ConfigurableResource):
    """Where the warehouse lives and which engine serves it (see ``netflix_assets.warehouse``)."""

    kind: str = WarehouseKind.DUCKDB.value
    duckdb_dir: str
    bigquery_project: str | None = None
    bigquery_dataset: str = "netflix"

    def layout(self) -> WarehouseLayout:
        return WarehouseLayout(root=WarehouseLayout.from_settings(Settings(duckdb_dir=self.duckdb_dir)).root)


class DataQualityResource(ConfigurableResource):
    """Thresholds of the Silver quarantine-share checks."""

    quarantine_warn_share: float = 0.10
    quarantine_error_share: float = 0.25


def spark_config(settings: Settings) -> dict[str, Any]:
    """Spark configuration shared by the batch job and the stream; cluster specifics come from the master."""
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
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=warn -XX:-DontCompileHugeMethods",
        "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
    }


DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def dbt_resource(settings: Settings) -> DbtCliResource:
    """dbt for the configured warehouse (profile target `duckdb` or `bigquery`), run from this venv.

    The executable is resolved on ``subprocess_env()``'s PATH (venv bin first) because dagster-dbt looks
    for a bare ``dbt`` on the PATH of whatever shell started Dagster. Bucket and warehouse locations reach
    dbt as ``--vars`` built from the same settings (``netflix_assets.defs.dbt.dbt_vars``).
    """
    executable = shutil.which("dbt", path=settings.subprocess_env()["PATH"]) or "dbt"
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        target=settings.warehouse.value,
        dbt_executable=executable,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource the asset graph needs, for the deployment the settings describe."""
    resources: dict[str, Any] = {
        "bucket": BucketResource(
            url=settings.resolved_bucket_url,
            gcs_project=settings.gcs_project,
            gcs_endpoint=settings.gcs_endpoint,
        ),
        "warehouse": WarehouseResource(
            kind=settings.warehouse.value,
            duckdb_dir=str(settings.warehouse_dir),
            bigquery_project=settings.bigquery_project,
            bigquery_dataset=settings.bigquery_dataset,
        ),
        "data_quality": DataQualityResource(
            quarantine_warn_share=settings.quarantine_warn_share,
            quarantine_error_share=settings.quarantine_error_share,
        ),
        "pyspark": PySparkResource(spark_config=spark_config(settings)),
        "dbt": dbt_resource(settings),
        "kafka": KafkaResource.from_settings(settings),
    }
    return resources
