"""The stream's accepted events as BigQuery tables: the ``speed`` source of the batch layer's merge.

The stream writes its valid on-time events and its late events as Parquet in the bucket (``speed/silver``,
``speed/late``) whatever the warehouse. On DuckDB dbt reads those folders directly; on BigQuery the dbt
source ``speed`` is a table per folder in ``BigQueryTarget.speed_dataset``, and this is what fills them,
before each batch build:

* one load job per table, ``WRITE_TRUNCATE``, from every Parquet file of the folder
  (``core.bigquery_load``): atomic, and a rerun replaces the table instead of appending a second copy, so
  the table always equals the folder (a batch the stream replayed is in the folder once, so once here);
* the tables' columns and types are the dbt source's (``_speed__sources.yml``, ``empty_columns``), the
  same declaration DuckDB reads the folders with. Columns the files hold beyond it (Silver's dimensions,
  flags and window; the late sink's watermark) are not loaded; a column an older writer did not write
  loads as NULL; the stream's ``int32`` partition and its UTC timestamps become INT64 and TIMESTAMP;
* an empty or missing folder (no stream has run) loads an empty table, so the build still runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import yaml
from google.cloud import bigquery

from core.bigquery import ensure_dataset, table_id
from core.bigquery_load import LoadResult, load_parquet, parquet_keys
from core.bucket import Bucket
from core.contracts.speed import SPEED_PREFIX
from core.dbt import DBT_PROJECT_DIR
from core.warehouse import BigQueryTarget
from streaming.bigquery_store import DUCKDB_TO_BIGQUERY

SOURCES_FILE = DBT_PROJECT_DIR / "models" / "staging" / "_speed__sources.yml"
SOURCE_NAME = "speed"
DATASET_DESCRIPTION = "The stream's accepted events (bucket speed/silver, speed/late), reloaded per build."


@dataclass(frozen=True)
class SpeedEventTable:
    """One table of the ``speed`` source: its bucket folder and its declared columns in BigQuery types."""

    name: str
    key: str
    columns: tuple[tuple[str, str], ...]

    def load_config(self) -> bigquery.LoadJobConfig:
        return bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            schema=[bigquery.SchemaField(name, bq_type) for name, bq_type in self.columns],
        )


def speed_event_tables() -> list[SpeedEventTable]:
    """The ``speed`` source's tables, folders and columns, as dbt declares them."""
    sources = yaml.safe_load(SOURCES_FILE.read_text())
    [speed] = [source for source in sources["sources"] if source["name"] == SOURCE_NAME]
    con = duckdb.connect()
    try:
        described = con.execute(f"DESCRIBE SELECT {speed['config']['meta']['empty_columns']}").fetchall()
    finally:
        con.close()
    columns = tuple((name, DUCKDB_TO_BIGQUERY[duck_type]) for name, duck_type, *_ in described)
    return [
        SpeedEventTable(table["name"], f"{SPEED_PREFIX}/{table['config']['meta']['folder']}", columns)
        for table in speed["tables"]
    ]


def load_speed_events(client: bigquery.Client, target: BigQueryTarget, bucket: Bucket) -> list[LoadResult]:
    """Replace each ``<speed_dataset>.<table>`` with every Parquet file of its bucket folder."""
    ensure_dataset(client, target, target.speed_dataset, DATASET_DESCRIPTION)
    return [
        load_parquet(
            client,
            bucket,
            table.key,
            parquet_keys(bucket, table.key),
            table_id(target, target.speed_dataset, table.name),
            table.load_config(),
        )
        for table in speed_event_tables()
    ]
