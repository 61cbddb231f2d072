"""BigQuery for both layers: one way to connect, one type mapping, literals for scripts.

Everything that talks to BigQuery (the Silver load, the stream's sink, the Dagster ``bigquery`` resource,
tests and benchmarks) gets its client from :func:`bigquery_client`, so the three ways of authenticating
are decided in one place: Application Default Credentials (``method=oauth``: the VM's or workload's
service account, or ``gcloud auth application-default login``), a service-account keyfile
(``method=service-account``), or an emulator endpoint with anonymous credentials (tests; refused in
production by the settings).

Import this module, and the other BigQuery-only ones (``core.bigquery_load``, ``silver.bigquery_load``,
``streaming.bigquery_*``, ``oncall.bigquery_reader``), only in code that has found BigQuery configured:
Google's library takes ~0.3 s to import, which every Dagster process (code server, run worker), the stream
and the monitor would otherwise pay on the DuckDB default. ``tests/test_definitions.py`` holds the code
location to it.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from core.contracts.silver import SOURCE_FILE, SOURCE_LINE, Kind, TableContract
from core.warehouse import BigQueryTarget

if TYPE_CHECKING:
    from core.serving_tables import Rows

# A job that runs longer than this is reported as stuck rather than waited on forever.
JOB_TIMEOUT_S = 900.0
# Retries of API calls on transient errors (429, 5xx): BigQuery's default keeps trying for 10 minutes.
RETRY: Retry = bigquery.DEFAULT_RETRY.with_deadline(180.0)

SILVER_TYPES: dict[Kind, str] = {
    Kind.STRING: "STRING",
    Kind.INT: "INT64",
    Kind.DOUBLE: "FLOAT64",
    Kind.BOOLEAN: "BOOL",
    Kind.DATE: "DATE",
    # Silver's timestamps are wall-clock times without a zone (Spark timestamp_ntz, Parquet
    # isAdjustedToUTC=false): BigQuery's DATETIME, not TIMESTAMP.
    Kind.TIMESTAMP: "DATETIME",
}


def bigquery_client(target: BigQueryTarget) -> bigquery.Client:
    """A client for the target's project and location, authenticated as the target says."""
    if target.api_endpoint:
        return bigquery.Client(
            project=target.project,
            location=target.location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=target.api_endpoint),
        )
    if target.method == "service-account" and target.keyfile:
        return bigquery.Client.from_service_account_json(
            target.keyfile, project=target.project, location=target.location
        )
    return bigquery.Client(project=target.project, location=target.location)


def table_id(target: BigQueryTarget, dataset: str, table: str) -> str:
    """``project.dataset.table``, as the client's calls take it."""
    return f"{target.project}.{dataset}.{table}"


def quoted(table: str) -> str:
    """A ``project.dataset.table`` id as SQL names it."""
    return f"`{table}`"


def ensure_dataset(client: bigquery.Client, target: BigQueryTarget, dataset: str, description: str) -> None:
    """Create the dataset in the target's location if it does not exist (the pipeline owns its datasets)."""
    spec = bigquery.Dataset(f"{target.project}.{dataset}")
    spec.location = target.location
    spec.description = description
    client.create_dataset(spec, exists_ok=True, retry=RETRY)


def silver_schema(contract: TableContract, columns: tuple[str, ...]) -> list[bigquery.SchemaField]:
    """BigQuery columns of a Silver table: the contract's types, the lineage columns, in ``columns`` order."""
    kinds = {**{c: contract.kind(c) for c in contract.columns}, **contract.extra_columns}
    fields = []
    for column in columns:
        if column == SOURCE_LINE:
            fields.append(bigquery.SchemaField(column, "INT64"))
        elif column == SOURCE_FILE:
            fields.append(bigquery.SchemaField(column, "STRING"))
        else:
            fields.append(bigquery.SchemaField(column, SILVER_TYPES[kinds[column]]))
    return fields


class BigQueryTables:
    """The dbt dataset's models as :class:`core.serving_tables.ServingTables` reads them."""

    def __init__(self, client: bigquery.Client, target: BigQueryTarget) -> None:
        self.client, self.target = client, target

    def name(self, model: str) -> str:
        return quoted(table_id(self.target, self.target.dataset, model))

    def rows(self, sql: str) -> Rows:
        result = self.client.query(sql, retry=RETRY).result(timeout=JOB_TIMEOUT_S)
        return [field.name for field in result.schema], [tuple(row.values()) for row in result]


def literal(value: Any, bq_type: str) -> str:
    """``value`` as a BigQuery SQL literal of ``bq_type``.

    Scripts inline their values: bqemulator does not bind query parameters inside multi-statement
    scripts, and every value here is ours (numbers, timestamps, JSON we serialised), quoted by this
    function only.
    """
    if value is None:
        return f"CAST(NULL AS {bq_type})"
    if bq_type == "INT64":
        return str(int(value))
    if bq_type == "FLOAT64":
        number = float(value)
        return repr(number) if math.isfinite(number) else f"CAST('{number}' AS FLOAT64)"
    if bq_type == "BOOL":
        return "TRUE" if value else "FALSE"
    if bq_type == "TIMESTAMP":
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"TIMESTAMP '{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"
    if bq_type == "DATE" and isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if bq_type == "STRING":
        escaped = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        return f"'{escaped}'"
    raise ValueError(f"no literal for {bq_type} value {value!r}")


def naive_utc(moment: datetime | None) -> datetime | None:
    """A BigQuery TIMESTAMP (aware, UTC) as the naive UTC datetime the DuckDB side uses."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)
