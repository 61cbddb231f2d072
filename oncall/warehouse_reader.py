"""The warehouse side of the monitor's readings: the stream's ledger and when the marts were last built.

Two warehouses, one contract (:class:`WarehouseReader`):

* **DuckDB** (embedded): the ledger snapshot ``realtime/stream_batches.parquet`` the stream republishes,
  and the modification time of ``batch.duckdb``, which a build replaces atomically. Files only, never a
  writer's database.
* **BigQuery** (production): the sink's ledger table ``<realtime dataset>.stream_batches`` (the same
  columns: ``streaming.bigquery_store`` derives them from the DuckDB DDL) and ``built_at`` of the dbt model
  ``batch_watermark``, which every build writes. Each query is billed (10 MB at least), so results are
  kept for :data:`LEDGER_REFRESH_S` and :data:`MARTS_REFRESH_S`: about 7,000 small queries a day, not the
  35,000 of a query per SLI and 5-s sample. The refresh delays a validation page by at most 15 s;
  freshness, the one SLO paged on within 30 s, reads the topic, not the warehouse.

A warehouse that cannot be read raises :class:`WarehouseUnavailable`, and the SLI says "not measured" and
why; a table that does not exist yet (no stream, no build) reads as empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow.parquet as pq
from google.api_core.exceptions import GoogleAPIError, NotFound
from google.cloud import bigquery
from requests import RequestException

from core.bigquery import bigquery_client, literal, quoted, table_id
from core.contracts.speed import LEDGER_TABLE
from core.serving_tables import WATERMARK_MODEL
from core.warehouse import BigQueryTarget, Warehouse, WarehouseLayout

LEDGER_COLUMNS = ("batch_id", "rows_in", "dead_letters", "published_at", "latency_p95_s", "dead_by_reason")
LEDGER_REFRESH_S = 15.0
MARTS_REFRESH_S = 60.0  # the marts' objective is 80 minutes
QUERY_TIMEOUT_S = 10.0  # a sample must not wait on BigQuery for long: freshness pages within 30 s
RETRY = bigquery.DEFAULT_RETRY.with_deadline(QUERY_TIMEOUT_S)  # the default retries for 10 minutes


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


class BigQueryWarehouse:
    def __init__(self, target: BigQueryTarget) -> None:
        self.target = target
        self.client = bigquery_client(target)
        self._span_s = 0.0  # the widest window asked for (the SLO file's): one query serves every SLI
        self._cache: dict[str, tuple[float, Any]] = {}  # name → (monotonic time read, rows or error)

    def ledger(self, window_s: float, now: float) -> list[dict[str, Any]]:
        if window_s > self._span_s:
            self._span_s = window_s
            cached = self._cache.get("ledger")
            if cached is not None and not isinstance(cached[1], WarehouseUnavailable):
                del self._cache["ledger"]  # read the wider window (in an outage, wait for the refresh)
        rows = self._cached("ledger", LEDGER_REFRESH_S, lambda: self._read_ledger(now - self._span_s))
        return [row for row in rows if row["published_at"] >= now - window_s]

    def marts_published_at(self) -> float | None:
        return self._cached("marts", MARTS_REFRESH_S, self._read_built_at)

    def close(self) -> None:
        self.client.close()

    def _read_ledger(self, since: float) -> list[dict[str, Any]]:
        ledger = quoted(table_id(self.target, self.target.realtime_dataset, LEDGER_TABLE))
        return self._query(
            f"SELECT {', '.join(LEDGER_COLUMNS)} FROM {ledger} "
            f"WHERE published_at >= {literal(since, 'FLOAT64')} ORDER BY published_at"
        )

    def _read_built_at(self) -> float | None:
        model = quoted(table_id(self.target, self.target.dataset, WATERMARK_MODEL))
        rows = self._query(f"SELECT MAX(built_at) AS built_at FROM {model}")
        built = rows[0]["built_at"] if rows else None
        return _epoch(built) if built is not None else None

    def _cached(self, name: str, max_age_s: float, read: Callable[[], Any]) -> Any:
        """``read()``'s result, or its failure, for ``max_age_s``: a BigQuery outage costs one timeout per
        refresh, not one per SLI and sample."""
        entry = self._cache.get(name)
        if entry is None or time.monotonic() - entry[0] > max_age_s:
            try:
                value: Any = read()
            except WarehouseUnavailable as exc:
                value = exc
            entry = self._cache[name] = (time.monotonic(), value)
        if isinstance(entry[1], WarehouseUnavailable):
            raise entry[1]
        return entry[1]

    def _query(self, sql: str) -> list[dict[str, Any]]:
        try:
            job = self.client.query(sql, retry=RETRY, job_retry=None, timeout=QUERY_TIMEOUT_S)
            result = job.result(retry=RETRY, timeout=QUERY_TIMEOUT_S)
        except NotFound:
            return []  # no stream or no build yet
        except (GoogleAPIError, RequestException, TimeoutError) as exc:
            raise WarehouseUnavailable(f"cannot read BigQuery project {self.target.project}: {exc}") from exc
        return [dict(row.items()) for row in result]


def _epoch(value: datetime) -> float:
    """A timestamp BigQuery returns (aware) or a DATETIME (naive, UTC by the model's macro)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def open_warehouse_reader(warehouse: Warehouse) -> WarehouseReader:
    if warehouse.on_bigquery:
        return BigQueryWarehouse(warehouse.bigquery)
    return LocalWarehouse(warehouse.layout)
