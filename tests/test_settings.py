"""Each component is switched by the environment alone, and every setting is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.bucket import Bucket
from core.kafka.cluster import BrokerNotRunning, KafkaCluster
from core.settings import PROJECT_ROOT, Deployment, InvalidSettings, Settings, WarehouseKind
from core.spark import spark_config
from netflix_assets.resources import build_resources


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("NETFLIX_"):
            monkeypatch.delenv(name)


def from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(f"NETFLIX_{name.upper()}", value)
    return Settings(_env_file=None)


def test_defaults_are_the_embedded_stack(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.deployment is Deployment.LOCAL
    assert settings.resolved_bucket_url == str(tmp_path / "bucket") and not settings.is_gcs
    assert settings.embedded_kafka
    assert settings.spark_master == "local[*]"
    assert settings.warehouse is WarehouseKind.DUCKDB
    assert settings.warehouse_dir == tmp_path / "warehouse"


def test_bucket_switches_to_gcs(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, bucket_url="gs://prod-bucket/netflix/", gcs_project="proj")
    assert settings.is_gcs and settings.resolved_bucket_url == "gs://prod-bucket/netflix"
    bucket = build_resources(settings)["bucket"]
    assert bucket.url == "gs://prod-bucket/netflix"
    assert Bucket.from_settings(settings).uri("raw/users.csv") == "gs://prod-bucket/netflix/raw/users.csv"


def test_kafka_switches_to_a_real_cluster_with_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(
        monkeypatch,
        kafka_bootstrap_servers="b1:9092,b2:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="s3cret",
    )
    assert not settings.embedded_kafka
    conf = KafkaCluster.from_settings(settings).client_config()
    assert conf == {
        "bootstrap.servers": "b1:9092,b2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(settings), "secrets must not leak into logs through repr"


def test_embedded_kafka_needs_a_running_broker(tmp_path: Path) -> None:
    with pytest.raises(BrokerNotRunning, match="embedded broker not running"):
        KafkaCluster.from_settings(Settings(_env_file=None, data_dir=tmp_path)).client_config()


def test_spark_master_switches_to_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(monkeypatch, spark_master="spark://spark-master:7077", spark_shuffle_partitions="200")
    conf = spark_config(settings)
    assert conf["spark.master"] == "spark://spark-master:7077"
    assert conf["spark.sql.shuffle.partitions"] == "200"
    assert conf["spark.pyspark.python"] == settings.pyspark_python


def test_warehouse_switches_to_bigquery(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(
        monkeypatch, warehouse="bigquery", bigquery_project="acme-analytics", bigquery_dataset="netflix_gold"
    )
    assert settings.warehouse is WarehouseKind.BIGQUERY
    warehouse = build_resources(settings)["warehouse"]
    assert (warehouse.kind, warehouse.bigquery_project, warehouse.bigquery_dataset) == (
        "bigquery",
        "acme-analytics",
        "netflix_gold",
    )


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("NETFLIX_SPARK_MASTER=spark://from-dotenv:7077\n")
    assert Settings(_env_file=env_file).spark_master == "spark://from-dotenv:7077"


def test_bad_values_are_rejected_with_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFLIX_WAREHOUSE", "snowflake")
    with pytest.raises(ValueError, match="warehouse"):
        Settings(_env_file=None)


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(NETFLIX_[A-Z0-9_]+)`", readme))
    declared = {f"NETFLIX_{name.upper()}" for name in Settings.model_fields}
    assert declared - documented == set(), "settings missing from the README table"
    assert documented - declared == set(), "README documents settings that do not exist"


def test_only_the_settings_module_reads_the_environment() -> None:
    offenders = []
    packages = (
        "core",
        "datagen",
        "silver",
        "producer",
        "streaming",
        "embedded_broker",
        "netflix_assets",
        "cli",
    )
    for folder in (*packages, "cli"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            if path == PROJECT_ROOT / "core" / "settings.py":
                continue
            text = path.read_text()
            if re.search(r"os\.environ|os\.getenv|getenv\(", text):
                offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []


PRODUCTION = {
    "deployment": "production",
    "bucket_url": "gs://prod/netflix",
    "kafka_bootstrap_servers": "kafka:9092",
    "warehouse": "bigquery",
    "bigquery_project": "acme",
    "spark_master": "yarn",
}


def test_production_refuses_embedded_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidSettings) as raised:
        from_env(monkeypatch, deployment="production")
    message = str(raised.value)
    assert "(4 problems; deployment=production)" in message
    for fix in ("NETFLIX_BUCKET_URL=gs://", "NETFLIX_KAFKA_BOOTSTRAP_SERVERS", "NETFLIX_WAREHOUSE=bigquery",
                "NETFLIX_SPARK_MASTER"):  # fmt: skip
        assert fix in message
    settings = from_env(monkeypatch, **PRODUCTION)
    assert settings.deployment is Deployment.PRODUCTION and settings.problems() == []


def test_every_problem_is_listed_in_one_message_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Incomplete and contradictory production settings: one error, one line per problem, no secret."""
    env = {
        **PRODUCTION,
        "bucket_url": "gs://prod/netflix",
        "spark_master": "spark://spark-master:7077",  # a standalone cluster: no connector unless given
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_password": "hunter2-secret",  # no user name
        "bigquery_project": "",
        "bigquery_method": "service-account",
        "bigquery_api_endpoint": "http://127.0.0.1:9050",
    }
    with pytest.raises(InvalidSettings) as raised:
        from_env(monkeypatch, **env)
    lines = str(raised.value).splitlines()
    assert lines[0].startswith("settings are incomplete or contradictory (5 problems")
    problems = [line.removeprefix("  - ") for line in lines[1:]]
    assert len(problems) == 5, problems
    expected = (
        "SCRAM-SHA-512 needs NETFLIX_KAFKA_SASL_USERNAME",
        "NETFLIX_WAREHOUSE=bigquery needs NETFLIX_BIGQUERY_PROJECT",
        "NETFLIX_BIGQUERY_METHOD=service-account needs NETFLIX_BIGQUERY_KEYFILE",
        "the bucket is gs:// but Spark has no GCS connector",
        "NETFLIX_BIGQUERY_API_ENDPOINT=http://127.0.0.1:9050 points at an emulator",
    )
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("jars", "provided", "master", "ok"),
    [
        ("/opt/jars/gcs-connector-hadoop3-2.2.22-shaded.jar", False, "spark://m:7077", True),
        ("/opt/jars/other.jar", False, "spark://m:7077", False),
        (None, True, "spark://m:7077", True),
        (None, False, "yarn", True),  # Dataproc's Spark ships the connector
        (None, False, "local[8]", False),
    ],
)
def test_gcs_bucket_needs_a_spark_connector_in_production(
    monkeypatch: pytest.MonkeyPatch, jars: str | None, provided: bool, master: str, ok: bool
) -> None:
    env = {**PRODUCTION, "spark_master": master, "spark_gcs_connector_provided": str(provided)}
    if jars:
        env["spark_jars"] = jars
    if ok:
        assert from_env(monkeypatch, **env).problems() == []
    else:
        with pytest.raises(InvalidSettings, match="Spark has no GCS connector"):
            from_env(monkeypatch, **env)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "embedded broker would be used"),
        ({"kafka_bootstrap_servers": "k:9093", "kafka_security_protocol": "SASL_SSL"},
         "needs NETFLIX_KAFKA_SASL_MECHANISM"),
        ({"kafka_bootstrap_servers": "k:9093", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u",
          "kafka_sasl_password": "p"}, "is ignored with NETFLIX_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"warehouse": "bigquery"}, "needs NETFLIX_BIGQUERY_PROJECT"),
    ],
)  # fmt: skip
def test_contradictions_fail_in_any_deployment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    with pytest.raises(InvalidSettings, match=problem):
        from_env(monkeypatch, **env)


def test_oauthbearer_needs_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = from_env(
        monkeypatch,
        kafka_bootstrap_servers="pkc-1.confluent.cloud:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
    )
    assert settings.problems() == []
