"""deploy/ is consistent with the code: the compose file's settings exist and pass production validation,
the image copies every package, the workspace points at the code location. (Nothing here needs Docker;
no test may. ``tests/test_dagster_postgres.py`` runs ``deploy/dagster.yaml`` itself.)"""

from __future__ import annotations

import os
import re
import tomllib

import pytest
import yaml

from core.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def dotenv_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def test_the_stack_has_every_service_the_issue_names() -> None:
    services = compose()["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "spark-master", "spark-worker-1", "spark-worker-2", "postgres",
            "code-location", "dagster-daemon", "dagster-webserver"} <= set(services)  # fmt: skip
    voters = services["kafka-1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert (
        voters.count("@kafka-") == 3 and services["kafka-1"]["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == 2
    )
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host's loopback"


def test_the_compose_environment_is_a_valid_production_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every NETFLIX_* the compose file and .env.example set is a real setting, and together they pass the
    production checks (no embedded fallback, a Spark GCS connector, BigQuery with a project)."""
    env = {**compose()["services"]["code-location"]["environment"], **dotenv_example()}
    declared = {f"NETFLIX_{name.upper()}" for name in Settings.model_fields}
    used = {name for name in env if name.startswith("NETFLIX_")}
    assert used - declared == set()
    for name in list(os.environ):
        if name.startswith("NETFLIX_"):
            monkeypatch.delenv(name)
    for name in used:
        monkeypatch.setenv(name, str(env[name]))
    settings = Settings(_env_file=None)
    assert settings.deployment.value == "production" and settings.problems() == []
    jar = settings.spark_jar_list[0]
    assert jar.rsplit("/", 1)[-1] in (DEPLOY / "Dockerfile").read_text()  # the image downloads that jar


def test_the_image_copies_every_package_and_the_dbt_project() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE))
    include = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages | {"dbt_project"} <= copied
    for path in copied - {"pyproject.toml"}:
        assert (PROJECT_ROOT / path).exists(), path


def test_webserver_and_daemon_reach_the_code_location_over_grpc() -> None:
    [location] = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    services = compose()["services"]
    assert location["grpc_server"]["host"] == "code-location" and "code-location" in services
    assert str(location["grpc_server"]["port"]) in (DEPLOY / "Dockerfile").read_text()
    for role in ("dagster-daemon", "dagster-webserver"):
        assert "/opt/netflix-lambda/deploy/workspace.yaml" in services[role]["command"]
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert all("env" in instance["storage"]["postgres"]["postgres_db"][k] for k in ("hostname", "password"))
