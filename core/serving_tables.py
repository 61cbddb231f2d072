"""The batch layer's models as rows, from either warehouse: one query, two ways to qualify and run it.

Code that reads a model back (the batch watermark W after a build, the reconciliation check) writes its
SQL once, naming each model through :meth:`ServingTables.name`; DuckDB answers for the published file
(``batch.main.<model>``) or a build file (``main.<model>``), BigQuery for the dbt dataset
(```project.dataset.model```). Only aggregates and ``SELECT *`` that both dialects share go through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
from google.api_core.exceptions import NotFound

from core.warehouse import Warehouse, connect_serving

WATERMARK_MODEL = "batch_watermark"  # one row per build: W and when the build ran (built_at)
# A model that is not there (no build yet), as each warehouse says it.
MISSING_MODEL = (duckdb.CatalogException, NotFound)

Rows = tuple[list[str], list[tuple[Any, ...]]]


class ServingTables(Protocol):
    def name(self, model: str) -> str:
        """The model as the warehouse's SQL names it."""
        ...

    def rows(self, sql: str) -> Rows:
        """Column names and rows of ``sql``."""
        ...


class DuckDBTables:
    def __init__(self, con: duckdb.DuckDBPyConnection, schema: str) -> None:
        self.con, self.schema = con, schema

    def name(self, model: str) -> str:
        return f"{self.schema}.{model}"

    def rows(self, sql: str) -> Rows:
        cursor = self.con.execute(sql)
        return [column[0] for column in cursor.description], cursor.fetchall()


@contextmanager
def serving_tables(warehouse: Warehouse) -> Iterator[ServingTables]:
    """The published models of the configured warehouse."""
    if warehouse.on_bigquery:
        from core.bigquery import BigQueryTables, bigquery_client  # BigQuery only: see core.bigquery

        client = bigquery_client(warehouse.bigquery)
        try:
            yield BigQueryTables(client, warehouse.bigquery)
        finally:
            client.close()
        return
    con = connect_serving(warehouse.layout)
    try:
        yield DuckDBTables(con, "batch.main")
    finally:
        con.close()


@contextmanager
def build_tables(database: Path) -> Iterator[ServingTables]:
    """The models of a DuckDB build file, read-only (before it is published)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        yield DuckDBTables(con, "main")
    finally:
        con.close()
