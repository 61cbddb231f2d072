"""The warehouse side of the monitor's readings: the stream's ledger and when the marts were last built.

Two warehouses, one contract (:class:`WarehouseReader`):

* **DuckDB** (embedded): the ledger snapshot ``realtime/stream_batches.parquet`` the stream republishes,
  and the modification time of ``batch.duckdb``, which a build replaces atomically. Files only, never a
  writer's database.
* **BigQuery** (production): the sink's ledger table ``<realtime dataset>.stream_batches`` (the same
  columns: ``streaming.bigquery_store`` derives them from the DuckDB DDL) and ``built_at`` of the dbt model
  ``batch_watermark``, which every build writes (``oncall.bigquery_reader``). Each query is billed (10 MB
  at least), so results are kept for :data:`LEDGER_REFRESH_S` and :data:`MARTS_REFRESH_S`: about 7,000
  small queries a day, not the 35,000 of a query per SLI and 5-s sample. The refresh delays a validation
  page by at most 15 s; freshness, the one SLO paged on within 30 s, reads the topic, not the warehouse.

A warehouse that cannot be read raises :class:`WarehouseUnavailable`, and the SLI says "not measured" and
why; a table that does not exist yet (no stream, no build) reads as empty.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow.parquet as pq

from core.contracts.speed import LEDGER_TABLE
from core.warehouse import Warehouse, WarehouseLayout

LEDGER_COLUMNS = ("batch_id", "rows_in", "dead_letters", "published_at", "latency_p95_s", "dead_by_reason")
LEDGER_REFRESH_S = 15.0
MARTS_REFRESH_S = 60.0  # the marts' objective is 80 minutes


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read right now (the message says why)."""


class WarehouseReader(Protocol):
    def ledger(self, window_s: float, now: float) -> list[dict[str, Any]]:
        """Micro-batches published in the ``window_s`` before ``now`` (epoch s), oldest first, with
        :data:`LEDGER_COLUMNS`."""
        ...

    def marts_published_at(self) -> float | None:
        """When the marts readers see were built (epoch s), or None before the first build."""
        ...

    def close(self) -> None: ...


class LocalWarehouse:
    def __init__(self, layout: WarehouseLayout) -> None:
        self.layout = layout

    def ledger(self, window_s: float, now: float) -> list[dict[str, Any]]:
        since = now - window_s
        path = self.layout.realtime_snapshot(LEDGER_TABLE)
        try:
            schema = pq.read_schema(path)
        except (FileNotFoundError, OSError):
            return []
        if "published_at" not in schema.names:  # written by a stream older than these columns
            return []
        table = pq.read_table(path, columns=list(LEDGER_COLUMNS), filters=[("published_at", ">=", since)])
        return sorted(table.to_pylist(), key=lambda row: row["published_at"])

    def marts_published_at(self) -> float | None:
        try:
            return self.layout.batch_published.stat().st_mtime
        except FileNotFoundError:
            return None

    def close(self) -> None:
        pass


def open_warehouse_reader(warehouse: Warehouse) -> WarehouseReader:
    if warehouse.on_bigquery:
        from oncall.bigquery_reader import BigQueryWarehouse  # BigQuery only: see core.bigquery

        return BigQueryWarehouse(warehouse.bigquery)
    return LocalWarehouse(warehouse.layout)
