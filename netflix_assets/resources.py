"""Dagster resources: the deployment's components, built from :class:`Settings` in this one place.

The same assets run everywhere; only what this module hands them differs: a local folder or GCS for the
bucket, local Spark or a cluster master, dbt's ``duckdb`` or ``bigquery`` target, the embedded broker or a
real Kafka cluster. Each resource is configuration plus one method that returns the ready object the
layers work with (a :class:`Bucket`, a :class:`Warehouse`, a :class:`KafkaCluster`); nothing in an asset
rebuilds those from settings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from dagster_dbt import DbtCliResource
from dagster_pyspark import PySparkResource
from dagster_pyspark.resources import spark_session_from_config
from packaging import version
from pydantic import PrivateAttr

from core.bucket import Bucket
from core.dbt import DBT_PROJECT_DIR
from core.kafka.admin import cluster_id
from core.kafka.cluster import KafkaCluster, embedded_state_dir, read_state
from core.kafka.offsets import end_offsets
from core.settings import Settings, WarehouseKind, kafka_security_config
from core.spark import spark_config, with_driver_options
from core.warehouse import BigQueryTarget, Warehouse, WarehouseLayout
from embedded_broker.process import EmbeddedBroker
from silver.job import driver_jvm_options

if TYPE_CHECKING:
    from google.cloud import bigquery

# dbt's own file log (``dbt.log`` in the run's target folder) at debug level repeats every event dbt prints
# plus each statement it sends: formatting those lines cost 0.6-0.8 s of an 8.5 s scale-1 build (dbt alone,
# alternating runs; docs/benchmarks.md). What dbt prints still reaches the step's log; NETFLIX_LOG_LEVEL=DEBUG
# brings the file back.
DBT_FILE_LOG_OFF = ("--log-level-file", "none")


class BucketResource(ConfigurableResource):
    """The raw/silver/quarantine/speed bucket: a local folder or ``gs://bucket/prefix``."""

    url: str
    gcs_project: str | None = None
    gcs_endpoint: str | None = None

    def get(self) -> Bucket:
        return Bucket.at(self.url, self.gcs_project, self.gcs_endpoint)


class SilverSparkResource(PySparkResource):
    """Spark for the Silver step: a batch driver JVM (throughput collector), whose JIT is chosen from the
    raw input's size at step start (``silver.job.driver_jvm_options``).

    The stream's Spark (``pyspark``) keeps G1 and both JIT tiers whatever the input: its validation runs
    for hours and its generated code is what C2 repays (docs/speed-layer.md).
    """

    bucket: BucketResource

    def setup_for_execution(self, context: InitResourceContext) -> None:
        del context
        options = driver_jvm_options(self.bucket.get())
        self._spark_session = spark_session_from_config(with_driver_options(self.spark_config, options))


class WarehouseResource(ConfigurableResource):
    """Which engine serves the warehouse, and where (``core.warehouse``)."""

    kind: str = WarehouseKind.DUCKDB.value
    duckdb_dir: str
    bigquery_project: str | None = None
    bigquery_dataset: str = "netflix"
    bigquery_silver_dataset: str = "silver"
    bigquery_realtime_dataset: str = "realtime"
    bigquery_location: str = "US"
    bigquery_method: str = "oauth"
    bigquery_keyfile: str | None = None
    bigquery_api_endpoint: str | None = None

    @classmethod
    def from_warehouse(cls, warehouse: Warehouse) -> WarehouseResource:
        target = warehouse.bigquery
        return cls(
            kind=warehouse.kind.value,
            duckdb_dir=str(warehouse.layout.root),
            bigquery_project=target.project,
            bigquery_dataset=target.dataset,
            bigquery_silver_dataset=target.silver_dataset,
            bigquery_realtime_dataset=target.realtime_dataset,
            bigquery_location=target.location,
            bigquery_method=target.method,
            bigquery_keyfile=target.keyfile,
            bigquery_api_endpoint=target.api_endpoint,
        )

    def get(self) -> Warehouse:
        bigquery = BigQueryTarget(
            project=self.bigquery_project,
            dataset=self.bigquery_dataset,
            silver_dataset=self.bigquery_silver_dataset,
            location=self.bigquery_location,
            method=self.bigquery_method,
            keyfile=self.bigquery_keyfile,
            realtime_dataset=self.bigquery_realtime_dataset,
            api_endpoint=self.bigquery_api_endpoint,
        )
        return Warehouse(WarehouseKind(self.kind), self.layout(), bigquery)

    def layout(self) -> WarehouseLayout:
        return WarehouseLayout(Path(self.duckdb_dir).expanduser().resolve())


class BigQueryClientResource(ConfigurableResource):
    """The ``bigquery`` resource: a client for the warehouse's project, or for an emulator.

    Clients come from :func:`core.bigquery.bigquery_client`, the one factory the stream and the tests use
    as well: Application Default Credentials by default, a service-account keyfile, or an emulator endpoint
    with anonymous credentials. A plain resource rather than dagster-gcp's ``BigQueryResource``: this class
    builds every client itself anyway, and importing dagster-gcp (which imports Google's BigQuery library)
    costs every Dagster process ~0.5 s even on the DuckDB default (docs/deployment.md). On the DuckDB
    warehouse it is configured but never asked for a client.
    """

    project: str | None = None
    location: str | None = None
    api_endpoint: str | None = None
    method: str = "oauth"
    keyfile: str | None = None

    @classmethod
    def from_target(cls, target: BigQueryTarget) -> BigQueryClientResource:
        return cls(
            project=target.project,
            location=target.location,
            api_endpoint=target.api_endpoint,
            method=target.method,
            keyfile=target.keyfile,
        )

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        from core.bigquery import bigquery_client  # BigQuery only: see core.bigquery

        target = BigQueryTarget(
            project=self.project,
            location=self.location or "US",
            method=self.method,
            keyfile=self.keyfile,
            api_endpoint=self.api_endpoint,
        )
        client = bigquery_client(target)
        try:
            yield client
        finally:
            client.close()


class DataQualityResource(ConfigurableResource):
    """Thresholds of the Silver quarantine-share checks and of the speed-vs-batch reconciliation."""

    quarantine_warn_share: float = 0.10
    quarantine_error_share: float = 0.25
    reconciliation_warn_share: float = 0.01
    reconciliation_error_share: float = 0.05


class KafkaResource(ConfigurableResource):
    """The event broker for assets and sensors: a real cluster, or the embedded Tansu broker.

    With ``bootstrap_servers`` set nothing is started and the same calls go to that cluster (SASL/TLS
    from the security fields). Without it the resource attaches to the broker that
    ``netflix-lambda broker`` runs (found through its state file); with ``manage_embedded`` it starts
    its own broker for the run when none is running and stops it afterwards (tests, one-shot runs: the
    topic dies with the run, since Tansu keeps everything in memory).
    """

    state_dir: str
    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    topic: str = "netflix_watch_events"
    dead_letter_topic: str = "netflix_watch_events_dlq"
    partitions: int = 3
    manage_embedded: bool = False

    _broker: EmbeddedBroker | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> KafkaResource:
        values: dict[str, Any] = {
            "state_dir": str(embedded_state_dir(settings)),
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "security_protocol": settings.kafka_security_protocol,
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_username": settings.kafka_sasl_username,
            "ssl_ca_location": settings.kafka_ssl_ca_location,
            "topic": settings.kafka_topic,
            "dead_letter_topic": settings.kafka_dead_letter_topic,
            "partitions": settings.kafka_partitions,
        }
        if settings.kafka_sasl_password is not None:
            # Resolved from the environment at run time, so the secret never appears in run config.
            values["sasl_password"] = EnvVar("NETFLIX_KAFKA_SASL_PASSWORD")
        return cls(**{**values, **overrides})

    def get(self) -> KafkaCluster:
        security = kafka_security_config(
            self.security_protocol,
            self.sasl_mechanism,
            self.sasl_username,
            self.sasl_password,
            self.ssl_ca_location,
        )
        return KafkaCluster(
            bootstrap_servers=self.bootstrap_servers,
            state_dir=Path(self.state_dir),
            security=security,
            topic=self.topic,
            dead_letter_topic=self.dead_letter_topic,
            partitions=self.partitions,
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        cluster = self.get()
        if self.manage_embedded and cluster.embedded and read_state(cluster.state_dir) is None:
            self._broker = EmbeddedBroker(cluster.state_dir, topics=cluster.topics()).start()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None

    def end_offsets(self, topic: str | None = None, timeout_s: float = 30.0) -> dict[int, int]:
        return end_offsets(self.get().client_config(), topic or self.topic, timeout_s)

    def cluster_id(self) -> str:
        return cluster_id(self.get().client_config())


class DbtOnceResource(DbtCliResource):
    """``DbtCliResource`` that starts dbt once per invocation, not three times.

    dagster-dbt 0.29 runs ``dbt --version`` in a subprocess (a full dbt start-up) and loads a dbt adapter
    in-process, parsing every macro of the project, before each ``dbt build``: about a third of the gold
    step at scale 1 (docs/benchmarks.md). The version is the installed dbt-core's, and the adapter only
    serves ``fetch_row_counts``/``fetch_column_metadata``, which no asset here calls, so both are skipped.
    """

    @property
    def _cli_version(self) -> version.Version:  # type: ignore[override]
        return version.parse(metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        del args
        return None


def dbt_resource(settings: Settings) -> DbtCliResource:
    """dbt for the configured warehouse (profile target `duckdb` or `bigquery`), run from this venv.

    The executable is resolved on ``subprocess_env()``'s PATH (venv bin first) because dagster-dbt looks
    for a bare ``dbt`` on the PATH of whatever shell started Dagster. Bucket and warehouse locations reach
    dbt as ``--vars`` built from the bucket and warehouse resources (``netflix_assets.defs.dbt.project``).
    """
    executable = shutil.which("dbt", path=settings.subprocess_env()["PATH"]) or "dbt"
    return DbtOnceResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        target=settings.warehouse.value,
        dbt_executable=executable,
        global_config_flags=[] if settings.log_level == "DEBUG" else list(DBT_FILE_LOG_OFF),
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource the asset graph needs, for the deployment the settings describe."""
    warehouse = Warehouse.from_settings(settings)
    bucket = BucketResource(
        url=settings.resolved_bucket_url, gcs_project=settings.gcs_project, gcs_endpoint=settings.gcs_endpoint
    )
    return {
        "bucket": bucket,
        "warehouse": WarehouseResource.from_warehouse(warehouse),
        "bigquery": BigQueryClientResource.from_target(warehouse.bigquery),
        "data_quality": DataQualityResource(
            quarantine_warn_share=settings.quarantine_warn_share,
            quarantine_error_share=settings.quarantine_error_share,
            reconciliation_warn_share=settings.reconciliation_warn_share,
            reconciliation_error_share=settings.reconciliation_error_share,
        ),
        "pyspark": PySparkResource(spark_config=spark_config(settings)),
        "silver_spark": SilverSparkResource(spark_config=spark_config(settings), bucket=bucket),
        "dbt": dbt_resource(settings),
        "kafka": KafkaResource.from_settings(settings),
    }
