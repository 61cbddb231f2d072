"""The one settings model: every component switch of the project, read from the environment.

This is the only module that reads ``os.environ`` (through pydantic-settings). Everything else receives a
``Settings`` instance, so a test can build one with explicit values and production is a matter of
environment variables, never of editing code. Every field is documented in the README's settings table;
``tests/test_settings.py`` keeps the two in step.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Deployment(StrEnum):
    LOCAL = "local"
    PRODUCTION = "production"


class WarehouseKind(StrEnum):
    DUCKDB = "duckdb"
    BIGQUERY = "bigquery"


class Settings(BaseSettings):
    """Component switches; defaults are the embedded stack of one laptop."""

    model_config = SettingsConfigDict(
        env_prefix="NETFLIX_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    deployment: Deployment = Field(
        Deployment.LOCAL,
        description="`local` (embedded defaults allowed) or `production` (start-up fails unless GCS, a real "
        "Kafka and BigQuery are configured).",
    )
    data_dir: Path = Field(
        PROJECT_ROOT / "data",
        description="Local working directory: default bucket, warehouse files, Spark scratch, Dagster home.",
    )

    # -- bucket -------------------------------------------------------------------------------------
    bucket_url: str | None = Field(
        None,
        description="Where raw/, silver/, quarantine/ and checkpoints live: a local folder (default "
        "`<data_dir>/bucket`) or `gs://bucket/prefix`.",
    )
    raw_landing_dir: Path | None = Field(
        None,
        description="Optional local folder of CSV exports; a raw asset copies `<table>.csv` (or "
        "`<table>.csv.gz`) from it into the bucket's raw/ before profiling. Unset: files are expected in "
        "raw/ already.",
    )
    gcs_project: str | None = Field(None, description="GCP project for the GCS client (default: ADC's).")
    gcs_endpoint: str | None = Field(
        None, description="GCS endpoint override, e.g. a gcp-storage-emulator at http://127.0.0.1:PORT."
    )

    # -- kafka --------------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        None, description="Bootstrap servers of a real Kafka cluster; unset starts the embedded Tansu broker."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka `security.protocol`."
    )
    kafka_sasl_mechanism: str | None = Field(None, description="e.g. PLAIN, SCRAM-SHA-512, OAUTHBEARER.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (environment only).")
    kafka_ssl_ca_location: str | None = Field(None, description="CA bundle for TLS to the brokers.")
    kafka_topic: str = Field("netflix_watch_events", description="Watch-event topic.")
    kafka_dead_letter_topic: str = Field(
        "netflix_watch_events_dlq", description="Topic that receives messages the stream rejects."
    )
    kafka_partitions: int = Field(3, ge=1, description="Partitions of the event topic when it is created.")
    embedded_broker_port: int = Field(
        0, ge=0, le=65535, description="Port of the embedded broker on 127.0.0.1; 0 picks a free one."
    )
    embedded_broker_max_rss_mb: int = Field(
        2048,
        ge=64,
        description="Memory cap of the embedded (memory-only) broker: `netflix-lambda broker` restarts "
        "it EMPTY above this RSS; the stream then logs the loss and starts over from the new topic "
        "(see docs/speed-layer.md).",
    )

    # -- spark --------------------------------------------------------------------------------------
    spark_master: str = Field(
        "local[*]", description="`local[*]`, `spark://host:7077`, `yarn` (Dataproc) or any Spark master URL."
    )
    spark_driver_memory: str = Field("4g", description="spark.driver.memory.")
    spark_shuffle_partitions: int = Field(
        8, ge=1, description="spark.sql.shuffle.partitions (small on 2 cores; raise on a cluster)."
    )
    pyspark_python: str = Field(
        sys.executable, description="Python used by Spark's Python workers (default: this interpreter)."
    )
    spark_driver_host: str | None = Field(
        None,
        description="Address the Spark driver binds and advertises. Unset: 127.0.0.1 with a `local` master "
        "(nothing listens beyond this machine), Spark's own choice (the host name) with a cluster master, "
        "whose executors must reach the driver.",
    )

    # -- stream -------------------------------------------------------------------------------------
    stream_trigger_seconds: float = Field(
        10.0,
        gt=0,
        description="Micro-batch trigger interval of the speed layer's Structured Streaming query.",
    )
    stream_max_events_per_trigger: int = Field(
        500_000,
        ge=0,
        description="Admission control: most Kafka messages read per micro-batch (0 = no limit).",
    )
    stream_min_tasks_per_batch: int = Field(
        0,
        ge=0,
        description=(
            "Spark tasks a micro-batch's Kafka ranges are cut into at least, in ranges of 10,000 messages or "
            "more (0 = four per core of Spark's default parallelism, so every core stays busy whatever the "
            "partition count)."
        ),
    )
    stream_retention_hours: float = Field(
        48.0, gt=0, description="Windows kept in realtime.duckdb, counted back from the newest event time."
    )
    stream_reset_on_broker_loss: bool = Field(
        True,
        description="Embedded broker only: when it restarted empty, the stream archives its checkpoint, "
        "logs the loss at ERROR and restarts from the new topic (docs/speed-layer.md). Never applies to a "
        "real Kafka cluster, where the stream always stops with the data-loss error.",
    )
    stream_accept_v0: bool = Field(
        True,
        description="Read legacy events without a schema_version (the original pipeline's kafka-python "
        "producer: `timestamp`, bare NaN, no event_id) as schema version 0 through the compatibility mapping "
        "(docs/speed-layer.md, Legacy events). `false` = strict schemas: they go to the dead-letter sink as "
        "`legacy_v0_disabled`.",
    )

    # -- warehouse ----------------------------------------------------------------------------------
    warehouse: WarehouseKind = Field(WarehouseKind.DUCKDB, description="`duckdb` (default) or `bigquery`.")
    duckdb_dir: Path | None = Field(
        None, description="Folder of the DuckDB warehouse files (default `<data_dir>/warehouse`)."
    )
    bigquery_project: str | None = Field(None, description="BigQuery project (production).")
    bigquery_dataset: str = Field("netflix", description="BigQuery dataset for dbt models.")
    bigquery_silver_dataset: str = Field(
        "silver",
        description="BigQuery dataset holding the Silver tables dbt reads as sources (bigquery target).",
    )
    bigquery_location: str = Field("US", description="BigQuery location.")
    bigquery_method: Literal["oauth", "service-account"] = Field(
        "oauth", description="dbt-bigquery auth: `oauth` uses ADC; `service-account` uses a keyfile."
    )
    bigquery_keyfile: str | None = Field(
        None, description="Service-account keyfile path (method=service-account)."
    )

    # -- data quality -------------------------------------------------------------------------------
    quarantine_warn_share: float = Field(
        0.10, ge=0, le=1, description="Quarantine share above which a Silver check warns."
    )
    quarantine_error_share: float = Field(
        0.25, ge=0, le=1, description="Quarantine share above which a Silver check fails (blocking)."
    )

    # -- dagster ------------------------------------------------------------------------------------
    batch_niceness: int = Field(
        5,
        ge=0,
        le=19,
        description="Unix niceness of the batch layer's run (its Spark JVM and dbt inherit it): on a small "
        "machine the stream (sub-minute SLO) gets about three quarters of the cores when both want them. "
        "0 = normal priority; higher values starve the batch layer when other work keeps the cores busy.",
    )
    dagster_port: int = Field(3000, description="Port of the Dagster UI served by `make run`.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="What `netflix-lambda up` prints: `INFO` one sentence per stage, warnings and errors; "
        "`DEBUG` also every line the processes log (Dagster run events included); `WARNING` only problems. "
        "Files under `<data_dir>/logs/` always get everything.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bucket_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _production_has_no_embedded_fallbacks(self) -> Settings:
        """A forgotten variable in production must fail at start-up, not fall back to a laptop stack."""
        if self.deployment is Deployment.PRODUCTION:
            missing = []
            if not self.is_gcs:
                missing.append("NETFLIX_BUCKET_URL=gs://…")
            if self.embedded_kafka:
                missing.append("NETFLIX_KAFKA_BOOTSTRAP_SERVERS")
            if self.warehouse is not WarehouseKind.BIGQUERY or not self.bigquery_project:
                missing.append("NETFLIX_WAREHOUSE=bigquery with NETFLIX_BIGQUERY_PROJECT")
            if missing:
                raise ValueError("deployment=production needs " + ", ".join(missing))
        return self

    # -- derived ------------------------------------------------------------------------------------
    @property
    def resolved_bucket_url(self) -> str:
        return self.bucket_url or str(self.data_dir / "bucket")

    @property
    def is_gcs(self) -> bool:
        return self.resolved_bucket_url.startswith("gs://")

    @property
    def warehouse_dir(self) -> Path:
        return self.duckdb_dir or self.data_dir / "warehouse"

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def spark_driver_address(self) -> str | None:
        """Where the Spark driver listens: the setting, else loopback with a local master, else None
        (Spark's own choice: a cluster's executors must reach the driver)."""
        if self.spark_driver_host:
            return self.spark_driver_host
        return "127.0.0.1" if self.spark_master.startswith("local") else None

    def kafka_security_config(self) -> dict[str, str]:
        """librdkafka security settings (secrets included) every client adds to the bootstrap servers."""
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        return kafka_security_config(
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            password,
            self.kafka_ssl_ca_location,
        )

    def subprocess_env(self) -> dict[str, str]:
        """Environment for child processes (Spark workers, dbt) so they use this venv's tools."""
        env = dict(os.environ)
        bin_dir = str(Path(self.pyspark_python).parent)
        env["PYSPARK_PYTHON"] = self.pyspark_python
        env["PYSPARK_DRIVER_PYTHON"] = self.pyspark_python
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        if self.spark_driver_address:  # else Spark looks up the host's address first, and says so
            env["SPARK_LOCAL_IP"] = self.spark_driver_address
        return env


def kafka_security_config(
    protocol: str,
    sasl_mechanism: str | None = None,
    sasl_username: str | None = None,
    sasl_password: str | None = None,
    ssl_ca_location: str | None = None,
) -> dict[str, str]:
    """librdkafka's names for the security settings that are set."""
    conf = {"security.protocol": protocol}
    optional = {
        "sasl.mechanism": sasl_mechanism,
        "sasl.username": sasl_username,
        "sasl.password": sasl_password,
        "ssl.ca.location": ssl_ca_location,
    }
    conf.update({name: value for name, value in optional.items() if value})
    return conf


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings(...)`` instead of patching this."""
    return Settings()
