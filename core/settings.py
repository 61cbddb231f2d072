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


GCS_CONNECTOR_JAR = "gcs-connector"  # gcs-connector-hadoop3-<version>-shaded.jar, Google's Hadoop connector
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class InvalidSettings(RuntimeError):
    """Settings that cannot run; the message lists every problem (and never a secret's value).

    Not a ``ValueError`` on purpose: pydantic would wrap that and append the raw input, secrets included.
    """


class Deployment(StrEnum):
    LOCAL = "local"
    PRODUCTION = "production"


class WarehouseKind(StrEnum):
    DUCKDB = "duckdb"
    BIGQUERY = "bigquery"


# The alert notifiers and the environment variable(s) one of which each needs (`log` needs none).
NOTIFIER_SECRETS: dict[str, tuple[str, ...]] = {
    "log": (),
    "pagerduty": ("NETFLIX_PAGERDUTY_ROUTING_KEY",),
    "slack": ("NETFLIX_SLACK_BOT_TOKEN", "NETFLIX_SLACK_WEBHOOK_URL"),
    "webhook": ("NETFLIX_ALERT_WEBHOOK_URL",),
}


class Settings(BaseSettings):
    """Component switches; defaults are the embedded stack of one laptop."""

    model_config = SettingsConfigDict(
        env_prefix="NETFLIX_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a validation error must not print a secret it was given
    )

    deployment: Deployment = Field(
        Deployment.LOCAL,
        description="`local` (embedded defaults allowed) or `production` (start-up fails unless GCS with a "
        "Spark GCS connector, a real Kafka, BigQuery and an explicit Spark master are configured; every "
        "problem is listed at once).",
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
        description="Address the Spark driver binds and advertises (spark.driver.bindAddress and "
        "spark.driver.host). Unset: 127.0.0.1 in local mode and with a master on 127.0.0.1 (nothing Spark "
        "opens listens beyond this machine), Spark's own choice (this host's address) otherwise: a "
        "cluster's executors must reach the driver.",
    )
    spark_executor_memory: str | None = Field(
        None, description="spark.executor.memory on a cluster (unset: Spark's default, 1g)."
    )
    spark_cores_max: int | None = Field(
        None, ge=1, description="spark.cores.max: most cores the application takes from a standalone cluster."
    )
    spark_jars: str | None = Field(
        None,
        description="Comma-separated jars (paths or URLs) for Spark's classpath (spark.jars), e.g. the GCS "
        "connector's shaded jar `gcs-connector-hadoop3-…-shaded.jar` that Spark needs to read `gs://`.",
    )
    spark_class_archive: str = Field(
        str(Path(sys.prefix) / "share" / "netflix-lambda" / "spark-classes.jsa"),
        description="Class-data-sharing archive of the Spark driver JVM (Java AppCDS), written once by "
        "`netflix-lambda spark-classes` (`make setup` runs it) and used by every Spark start when it exists: "
        "half the JVM's start-up CPU (docs/benchmarks.md). A stale or foreign archive is ignored by the JVM; "
        "empty turns it off.",
    )
    spark_gcs_connector_provided: bool = Field(
        False,
        description="The cluster's Spark already has the GCS connector (Dataproc images do): no jar in "
        "NETFLIX_SPARK_JARS is required. Every Spark start still checks that the connector's class loads "
        "when the bucket is `gs://`.",
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
    bigquery_realtime_dataset: str = Field(
        "realtime",
        description="BigQuery dataset of the speed layer's tables (engagement_health_realtime, "
        "churn_risk_alerts, the stream_batches ledger and the open windows' state) when the warehouse is "
        "bigquery.",
    )
    bigquery_location: str = Field("US", description="BigQuery location.")
    bigquery_method: Literal["oauth", "service-account"] = Field(
        "oauth", description="dbt-bigquery auth: `oauth` uses ADC; `service-account` uses a keyfile."
    )
    bigquery_keyfile: str | None = Field(
        None, description="Service-account keyfile path (method=service-account)."
    )
    bigquery_api_endpoint: str | None = Field(
        None,
        description="BigQuery REST endpoint of an emulator (tests, benchmarks), reached with anonymous "
        "credentials. Unset in production (refused there).",
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
        "Files under `<data_dir>/logs/` always get everything. `DEBUG` also makes dbt write its own debug "
        "log (every statement it sends) into each run's dbt target folder.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    # -- serving ------------------------------------------------------------------------------------
    dashboard_port: int = Field(
        8501,
        ge=1,
        le=65535,
        description="Port of the dashboards (Streamlit) on 127.0.0.1: `/realtime` and `/history`.",
    )
    dashboard_refresh_seconds: float = Field(
        5.0,
        ge=1.0,
        le=10.0,
        description="How often the real-time dashboard re-reads the speed layer (1-10 s).",
    )
    reconciliation_warn_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Relative speed-vs-batch difference of a measure above which the reconciliation check "
        "warns (docs/serving.md).",
    )
    reconciliation_error_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Relative speed-vs-batch difference of a measure above which the reconciliation check "
        "fails with ERROR.",
    )

    # -- on-call: SLO monitor and alert routing (docs/slos.md) ---------------------------------------
    slo_file: Path | None = Field(
        None,
        description="YAML file of the SLOs, their objectives and alert rules (default: the project's "
        "`oncall/slos.yaml`).",
    )
    slo_sample_interval_s: float = Field(
        5.0, gt=0, le=10, description="How often the monitor samples every SLI (at most 10 s)."
    )
    slo_window_scale: float = Field(
        1.0,
        gt=0,
        description="Multiplies every window of the SLO file (budget, burn-rate and SLI windows); tests "
        "use e.g. 0.01 to compress an hour into 36 s.",
    )
    slo_traffic_expected: bool = Field(
        True,
        description="Whether events are expected on the topic (the input-traffic SLO warns only then); "
        "`netflix-lambda up --rate 0` turns it off for its monitor.",
    )
    alert_notifiers: str = Field(
        "log",
        description="Comma-separated alert destinations: `log` (alert log + terminal + Dagster UI), "
        "`pagerduty`, `slack`, `webhook` (Alertmanager-compatible JSON).",
    )
    alert_log_file: Path | None = Field(
        None, description="Alert log of the `log` notifier (default `<data_dir>/oncall/alerts.log`)."
    )
    alert_source: str | None = Field(
        None,
        description="Name of this deployment in alerts and in PagerDuty dedup keys (default: the host name).",
    )
    dagster_ui_url: str | None = Field(
        None,
        description="Base URL of the Dagster UI that alert links point to (default "
        "`http://127.0.0.1:<NETFLIX_DAGSTER_PORT>`).",
    )
    runbook_base_url: str | None = Field(
        None,
        description="Where alert links point for runbooks, e.g. your repository's `docs/runbooks` web URL "
        "(default: the local `docs/runbooks` folder as a file:// URL).",
    )
    pagerduty_routing_key: SecretStr | None = Field(
        None, description="PagerDuty Events API v2 integration (routing) key (environment only)."
    )
    pagerduty_events_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint."
    )
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming-webhook URL (environment only); messages are not threaded."
    )
    slack_bot_token: SecretStr | None = Field(
        None,
        description="Slack bot token (environment only) for chat.postMessage: resolves and reminders are "
        "threaded under the page. Needs `NETFLIX_SLACK_CHANNEL`; takes precedence over the webhook.",
    )
    slack_channel: str | None = Field(None, description="Slack channel id or name for the bot token.")
    slack_api_url: str = Field("https://slack.com/api", description="Slack Web API base URL.")
    alert_webhook_url: SecretStr | None = Field(
        None,
        description="URL that receives Alertmanager-compatible webhook JSON (environment only: URLs often "
        "carry a token).",
    )
    alert_webhook_token: SecretStr | None = Field(
        None, description="Optional bearer token sent to the alert webhook (environment only)."
    )
    monitor_heartbeat_max_age_s: float = Field(
        60.0,
        gt=0,
        description="The Dagster watchdog pages when the monitor's heartbeat is older than this; the "
        "monitor also exits (and is restarted) when one of its samples hangs this long.",
    )

    @field_validator("bucket_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _complete_and_consistent(self) -> Settings:
        """Refuse to start on incomplete or contradictory settings, naming every problem at once.

        A forgotten variable in production must fail at start-up, never fall back to a laptop component
        (the embedded broker, local Spark, DuckDB, a local folder); contradictions (SASL without its
        secret, BigQuery without a project) fail in any deployment. One message lists them all, so one
        fix-and-retry cycle is enough.
        """
        problems = self.problems()
        if problems:
            count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
            raise InvalidSettings(
                f"settings are incomplete or contradictory ({count}; deployment={self.deployment.value}), "
                "nothing was started:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return self

    def problems(self) -> list[str]:
        """Every reason these settings cannot run, as sentences naming the variables to set."""
        problems = self._kafka_problems() + self._bigquery_problems() + self._notifier_problems()
        if self.deployment is Deployment.PRODUCTION:
            problems += self._production_problems()
        return problems

    def _kafka_problems(self) -> list[str]:
        problems = []
        mechanism = (self.kafka_sasl_mechanism or "").upper()
        sasl_protocol = self.kafka_security_protocol.startswith("SASL_")
        secured = sasl_protocol or self.kafka_security_protocol == "SSL"
        production = self.deployment is Deployment.PRODUCTION  # there a missing cluster is reported anyway
        if self.embedded_kafka and not production and (secured or mechanism or self.kafka_sasl_username):
            problems.append(
                f"NETFLIX_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} / NETFLIX_KAFKA_SASL_* are "
                "set but NETFLIX_KAFKA_BOOTSTRAP_SERVERS is not: the embedded broker would be used instead "
                "of your cluster; set NETFLIX_KAFKA_BOOTSTRAP_SERVERS"
            )
        if sasl_protocol and not mechanism:
            problems.append(
                f"NETFLIX_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "NETFLIX_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            )
        if mechanism and not sasl_protocol:
            problems.append(
                f"NETFLIX_KAFKA_SASL_MECHANISM={mechanism} is ignored with "
                f"NETFLIX_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}; use SASL_SSL "
                "(or SASL_PLAINTEXT)"
            )
        if mechanism in PASSWORD_MECHANISMS:
            missing = [
                name
                for name, value in (
                    ("NETFLIX_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("NETFLIX_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                )
                if not value
            ]
            if missing:
                problems.append(f"NETFLIX_KAFKA_SASL_MECHANISM={mechanism} needs {' and '.join(missing)}")
        return problems

    def _bigquery_problems(self) -> list[str]:
        if self.warehouse is not WarehouseKind.BIGQUERY:
            return []
        problems = []
        if not self.bigquery_project:
            problems.append("NETFLIX_WAREHOUSE=bigquery needs NETFLIX_BIGQUERY_PROJECT")
        if self.bigquery_method == "service-account" and not self.bigquery_keyfile:
            problems.append("NETFLIX_BIGQUERY_METHOD=service-account needs NETFLIX_BIGQUERY_KEYFILE")
        return problems

    def _production_problems(self) -> list[str]:
        problems = []
        if not self.is_gcs:
            problems.append("NETFLIX_BUCKET_URL=gs://… is required (the bucket is a local folder)")
        elif self.spark_lacks_gcs_connector:
            problems.append(
                "the bucket is gs:// but Spark has no GCS connector: set NETFLIX_SPARK_JARS to the "
                "gcs-connector-hadoop3 shaded jar, or NETFLIX_SPARK_GCS_CONNECTOR_PROVIDED=true when the "
                "cluster's Spark already has it (Dataproc; docs/deployment.md)"
            )
        if self.embedded_kafka:
            problems.append("NETFLIX_KAFKA_BOOTSTRAP_SERVERS is required (unset starts the embedded broker)")
        if self.warehouse is not WarehouseKind.BIGQUERY:
            problems.append(
                "NETFLIX_WAREHOUSE=bigquery is required (with NETFLIX_BIGQUERY_PROJECT), not "
                f"{self.warehouse.value}"
            )
        if "spark_master" not in self.model_fields_set:
            problems.append(
                "NETFLIX_SPARK_MASTER is required: yarn (Dataproc), spark://host:7077, or local[N] on "
                "purpose (unset runs Spark in local mode on the Dagster host)"
            )
        for name, value in (
            ("NETFLIX_BIGQUERY_API_ENDPOINT", self.bigquery_api_endpoint),
            ("NETFLIX_GCS_ENDPOINT", self.gcs_endpoint),
        ):
            if value:
                problems.append(f"{name}={value} points at an emulator; unset it in production")
        return problems

    def _notifier_problems(self) -> list[str]:
        """A notifier without its secret must stop start-up: nothing may page with an empty routing key."""
        unknown = set(self.notifier_names) - set(NOTIFIER_SECRETS)
        if unknown:
            return [
                f"NETFLIX_ALERT_NOTIFIERS names unknown notifier(s) {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(NOTIFIER_SECRETS)}"
            ]
        missing = [
            f"NETFLIX_ALERT_NOTIFIERS includes {name} but {' or '.join(keys)} is not set (or empty)"
            for name, keys in NOTIFIER_SECRETS.items()
            if name in self.notifier_names and keys and not any(self._secret(key) for key in keys)
        ]
        bot = self._secret("NETFLIX_SLACK_BOT_TOKEN")
        if "slack" in self.notifier_names and bot and not self.slack_channel:
            missing.append("NETFLIX_SLACK_BOT_TOKEN is set but NETFLIX_SLACK_CHANNEL is not")
        return missing

    def _secret(self, env_name: str) -> str:
        value = getattr(self, env_name.removeprefix("NETFLIX_").lower())
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return (text or "").strip()

    @property
    def notifier_names(self) -> list[str]:
        return [name.strip().lower() for name in self.alert_notifiers.split(",") if name.strip()]

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
        """Where the Spark driver listens: the setting, else loopback in local mode or with a standalone
        master on loopback (tests, benchmarks), else None (Spark's own choice: executors must reach it)."""
        if self.spark_driver_host:
            return self.spark_driver_host
        master = self.spark_master
        master_host = master.split("://", 1)[-1].split(":", 1)[0]
        on_loopback = master.startswith("local") or (
            master.startswith("spark://") and master_host in ("127.0.0.1", "localhost")
        )
        return "127.0.0.1" if on_loopback else None

    @property
    def spark_jar_list(self) -> list[str]:
        return [jar.strip() for jar in (self.spark_jars or "").split(",") if jar.strip()]

    @property
    def spark_lacks_gcs_connector(self) -> bool:
        """Nothing says Spark can read ``gs://``: no connector jar, not Dataproc (yarn), not declared."""
        has_jar = any(GCS_CONNECTOR_JAR in Path(jar).name for jar in self.spark_jar_list)
        provided = self.spark_gcs_connector_provided or self.spark_master.startswith("yarn")
        return not (has_jar or provided)

    @property
    def oncall_dir(self) -> Path:
        """The SLO monitor's state: incidents and deliveries, heartbeat, status (not the sample history,
        which lives in the warehouse folder)."""
        return self.data_dir / "oncall"

    @property
    def resolved_alert_log_file(self) -> Path:
        return self.alert_log_file or self.oncall_dir / "alerts.log"

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
