"""The monitor's readings from BigQuery: the sink's ledger table and ``built_at`` of ``batch_watermark``.

The contract, the refresh intervals and why results are cached are in ``oncall.warehouse_reader``; this
module is imported only where BigQuery is configured (``core.bigquery`` says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.api_core.exceptions import GoogleAPIError, NotFound
from google.cloud import bigquery
from requests import RequestException

from core.bigquery import bigquery_client, literal, quoted, table_id
from core.contracts.speed import LEDGER_TABLE
from core.serving_tables import WATERMARK_MODEL
from core.warehouse import BigQueryTarget
from oncall.warehouse_reader import (
    LEDGER_COLUMNS,
    LEDGER_REFRESH_S,
    MARTS_REFRESH_S,
    WarehouseUnavailable,
)

QUERY_TIMEOUT_S = 10.0  # a sample must not wait on BigQuery for long: freshness pages within 30 s
RETRY = bigquery.DEFAULT_RETRY.with_deadline(QUERY_TIMEOUT_S)  # the default retries for 10 minutes


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
