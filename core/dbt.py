"""How dbt is pointed at the bucket and the warehouse: the ``--vars`` of every dbt invocation.

dbt reads no environment variable of ours: Dagster, the benchmarks and ``netflix-lambda dbt`` all pass
these values, built from the same bucket and warehouse objects the other layers use, so a setting has one
source of truth (``core/settings.py``).
"""

from __future__ import annotations

import json

from core.bucket import Bucket
from core.contracts.silver import SILVER_PREFIX
from core.contracts.speed import SPEED_PREFIX
from core.settings import PROJECT_ROOT
from core.warehouse import REALTIME_ROOT_VARIABLE, Warehouse

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
UNSET_PROJECT = "unset-project"  # parses and compiles; any real BigQuery call fails and names it
# An emulator takes any bearer token; a static one (dbt's oauth-secrets method) keeps dbt from looking for
# Application Default Credentials, which do not exist offline. Not a secret.
EMULATOR_TOKEN = "emulator-anonymous"


# Vars that say where data and the warehouse are, not what the graph holds: a manifest parsed with other
# values of these still describes every asset and check (netflix_assets/defs/dbt/project.py).
LOCATION_VARS = frozenset(
    {
        "silver_root", "speed_root", "realtime_root", "duckdb_path", "bigquery_api_endpoint",
        "bigquery_keyfile", "bigquery_token", "bigquery_method", "bigquery_location",
    }
)  # fmt: skip


def dbt_vars(bucket: Bucket, warehouse: Warehouse) -> dict[str, str]:
    """Where Silver, the speed layer's sinks and the warehouse are, for ``profiles.yml`` and the sources."""
    bigquery = warehouse.bigquery
    return {
        "silver_root": bucket.uri(SILVER_PREFIX),
        "speed_root": bucket.uri(SPEED_PREFIX),
        "realtime_root": str(warehouse.layout.realtime_snapshots),
        "realtime_root_variable": REALTIME_ROOT_VARIABLE,
        "duckdb_path": str(warehouse.layout.batch_build),
        "bigquery_project": bigquery.project or UNSET_PROJECT,
        "bigquery_dataset": bigquery.dataset,
        "silver_dataset": bigquery.silver_dataset,
        "realtime_dataset": bigquery.realtime_dataset,
        "speed_dataset": bigquery.speed_dataset,
        "bigquery_location": bigquery.location,
        "bigquery_method": "oauth-secrets" if bigquery.api_endpoint else bigquery.method,
        "bigquery_keyfile": bigquery.keyfile or "",
        "bigquery_api_endpoint": bigquery.api_endpoint or "",
        "bigquery_token": EMULATOR_TOKEN if bigquery.api_endpoint else "",
    }


def vars_args(values: dict[str, str]) -> list[str]:
    """``--vars`` as dbt's command line takes it (sorted, so equal values give equal arguments)."""
    return ["--vars", json.dumps(values, sort_keys=True)]
