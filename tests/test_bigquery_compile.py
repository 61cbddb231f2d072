"""The bigquery target works offline: dbt parses and compiles it, and every statement is BigQuery SQL.

There is no BigQuery here, so the proof is static: ``dbt parse``, then ``dbt compile --no-populate-cache``
with a well-formed dummy service-account key (without one dbt refuses; with one and the cache on it
hangs retrying Google's token endpoint), then each compiled model and test is parsed by sqlglot's
BigQuery dialect and scanned for DuckDB-only syntax that BigQuery would reject at run time.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlglot import exp

from core.bucket import Bucket
from core.dbt import DBT_PROJECT_DIR, dbt_vars, vars_args
from core.settings import Settings
from core.warehouse import Warehouse
from netflix_assets.resources import dbt_resource

PROJECT = "netflix-offline-test"
# DuckDB spellings BigQuery does not accept (each was, or could easily be, written by hand in a model).
DUCKDB_ONLY = {
    "read_parquet": r"\bread_parquet\s*\(",
    ":: cast": r"::",
    "isodow": r"\bisodow\b",
    "strftime": r"\bstrftime\s*\(",
    "date_diff with a quoted part": r"\bdate_diff\s*\(\s*'",
    "date_trunc with a quoted part": r"\bdate_trunc\s*\(\s*'",
    "list functions": r"\blist_\w+\s*\(",
    "interval arithmetic on a bigint": r"\*\s*interval\b",
    "DuckDB type names": r"\bas\s+(double|varchar|text|hugeint|decimal\s*\(\s*18)\b",
    "GROUP BY ALL": r"\bgroup\s+by\s+all\b",
}
# Types a BigQuery CAST may name (with their documented aliases).
BIGQUERY_TYPES = {
    "string", "bytes", "int64", "int", "integer", "bigint", "smallint", "tinyint", "byteint", "float64",
    "numeric", "decimal", "bignumeric", "bigdecimal", "bool", "boolean", "date", "datetime", "time",
    "timestamp", "json",
}  # fmt: skip


def dummy_service_account_key(path: Path) -> Path:
    """A syntactically valid key: real RSA material, a project that does not exist."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "0" * 40,
                "private_key": pem,
                "client_email": f"dbt-offline@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1" * 21,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": "https://oauth2.googleapis.com/token",
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/dbt-offline",
            }
        )
    )
    return path


def run_dbt(settings: Settings, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    dbt = dbt_resource(settings)
    values = dbt_vars(Bucket.from_settings(settings), Warehouse.from_settings(settings))
    command = [
        dbt.dbt_executable, *args, "--target", settings.warehouse.value,
        "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs"), *vars_args(values),
    ]  # fmt: skip
    result = subprocess.run(
        command, env=settings.subprocess_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    )
    return result


def compile_project(settings: Settings, tmp: Path) -> tuple[dict[str, str], dict]:
    """``dbt parse`` + ``dbt compile --no-populate-cache``: compiled SQL by path, and the manifest."""
    run_dbt(settings, tmp, "parse")
    manifest = json.loads((tmp / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == settings.warehouse.value
    run_dbt(settings, tmp, "compile", "--no-populate-cache")
    root = tmp / "target" / "compiled" / "netflix_analytics"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.sql"))}, manifest


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every compiled model and test of the bigquery target, by path relative to the project."""
    tmp = tmp_path_factory.mktemp("bigquery")
    settings = Settings(
        data_dir=tmp / "data",
        warehouse="bigquery",
        bigquery_project=PROJECT,
        bigquery_dataset="netflix_gold",
        bigquery_silver_dataset="netflix_silver",
        bigquery_method="service-account",
        bigquery_keyfile=str(dummy_service_account_key(tmp / "key.json")),
    )
    files, manifest = compile_project(settings, tmp)
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {Path(p).stem for p in files if is_model(p)} == models
    return files


@pytest.fixture(scope="module")
def compiled_for_duckdb(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same project rendered for DuckDB: the control group for the DuckDB-only scan."""
    tmp = tmp_path_factory.mktemp("duckdb")
    files, _ = compile_project(Settings(data_dir=tmp / "data"), tmp)
    return files


def is_model(path: str) -> bool:
    """Compiled models sit at their own path; generic tests under ``<properties file>.yml/``."""
    return path.startswith("models/") and not any(part.endswith(".yml") for part in Path(path).parts)


def model_files(files: dict[str, str], folder: str) -> dict[str, str]:
    return {p: s for p, s in files.items() if is_model(p) and p.startswith(f"models/{folder}/")}


def test_every_statement_parses_as_bigquery(compiled: dict[str, str]) -> None:
    failures = {}
    for path, sql in compiled.items():
        try:
            sqlglot.parse_one(sql, read="bigquery")
        except sqlglot.errors.ParseError as err:
            failures[path] = str(err)[:300]
    assert not failures, failures
    assert len(compiled) > 100  # models and the ~140 data tests


def test_no_duckdb_only_syntax(compiled: dict[str, str]) -> None:
    found = {
        f"{path}: {what}": re.search(pattern, sql, re.IGNORECASE).group(0)
        for path, sql in compiled.items()
        for what, pattern in DUCKDB_ONLY.items()
        if re.search(pattern, sql, re.IGNORECASE)
    }
    assert not found, found


def test_casts_name_bigquery_types(compiled: dict[str, str]) -> None:
    bad = {}
    for path, sql in compiled.items():
        for match in re.finditer(r"\bcast\s*\(", sql, re.IGNORECASE):
            # The type is what follows the AS that closes this CAST's parenthesis level.
            depth, i = 1, match.end()
            while depth and i < len(sql):
                depth += {"(": 1, ")": -1}.get(sql[i], 0)
                i += 1
            inner = sql[match.end() : i - 1]
            type_name = re.search(
                r"\bas\s+([a-z0-9_]+)\s*(\([^()]*\))?\s*$", inner, re.IGNORECASE | re.DOTALL
            )
            if not type_name or type_name.group(1).lower() not in BIGQUERY_TYPES:
                bad.setdefault(path, []).append(inner[-60:].strip())
    assert not bad, bad


def test_functions_are_known_to_the_bigquery_dialect(compiled: dict[str, str]) -> None:
    """sqlglot maps every BigQuery function it knows to a typed node; anything else is suspect."""
    unknown = {
        f"{path}: {node.name}"
        for path, sql in compiled.items()
        for node in sqlglot.parse_one(sql, read="bigquery").find_all(exp.Anonymous)
    }
    assert not unknown, unknown


def test_the_scan_catches_the_duckdb_rendering(
    compiled: dict[str, str], compiled_for_duckdb: dict[str, str]
) -> None:
    """Re-rendered for DuckDB, the dispatching macros produce exactly what the scan forbids on BigQuery."""
    duckdb_hits = {
        what for sql in compiled_for_duckdb.values() for what, pattern in DUCKDB_ONLY.items()
        if re.search(pattern, sql, re.IGNORECASE)
    }  # fmt: skip
    assert {"read_parquet", "isodow", "DuckDB type names", "interval arithmetic on a bigint"} <= duckdb_hits
    assert set(compiled) == set(compiled_for_duckdb)


# Staging models over the speed layer's tables (datasets `speed` and `realtime`, dbt_project.yml vars).
SPEED_STAGING = {
    "stg_stream_batches": ["`realtime`.`stream_batches`"],
    "stg_stream_watch_events": ["`speed`.`silver_watch_events`", "`speed`.`late_events`"],
}


def test_sources_are_tables_of_the_silver_dataset(compiled: dict[str, str]) -> None:
    staging = model_files(compiled, "staging")
    assert len(staging) == 6 + len(SPEED_STAGING)
    for path, sql in staging.items():
        table = Path(path).stem.removeprefix("stg_")
        if Path(path).stem in SPEED_STAGING:
            assert all(f"`{PROJECT}`.{name}" in sql for name in SPEED_STAGING[Path(path).stem]), path
        else:
            assert f"`{PROJECT}`.`netflix_silver`.`{table}`" in sql, path
