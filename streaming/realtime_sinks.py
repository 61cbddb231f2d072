"""Which realtime sink the stream writes: ``realtime.duckdb`` (embedded default) or BigQuery (production).

Both give the stream the same calls (:class:`RealtimeSink`) and the same guarantee: one transaction per
micro-batch that merges it and records its id in a ledger, so a replayed batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from core.warehouse import Warehouse, WarehouseLayout
from streaming.realtime_store import BatchRecord, RealtimeStore


class RealtimeSink(Protocol):
    """What the stream asks of its warehouse sink."""

    def is_committed(self, batch_id: int) -> bool: ...

    def next_batch_id(self) -> int: ...

    def max_event_time(self) -> datetime | None: ...

    def counts(self) -> dict[str, Any]: ...

    def first_unseen(self, candidates: pa.Table) -> np.ndarray: ...

    def commit_batch(
        self,
        record: BatchRecord,
        sessions: pa.Table,
        before_commit: Callable[[], None] | None = None,
        counted: pa.Table | None = None,
    ) -> int: ...

    def publish(self) -> dict[str, str]: ...

    def record_outcome(
        self,
        batch_id: int,
        published_at: float,
        latency_p50_s: float | None,
        latency_p95_s: float | None,
        dead_by_reason: dict[str, int],
    ) -> None: ...

    def close(self) -> None: ...


def open_realtime_sink(warehouse: Warehouse | WarehouseLayout, retention_hours: float) -> RealtimeSink:
    """The sink of the configured warehouse (a bare layout means the DuckDB files)."""
    if isinstance(warehouse, WarehouseLayout):
        return RealtimeStore(warehouse, retention_hours)
    if warehouse.on_bigquery:
        # BigQuery only: see core.bigquery
        from core.bigquery import bigquery_client
        from streaming.bigquery_store import BigQueryRealtimeStore

        client = bigquery_client(warehouse.bigquery)
        return BigQueryRealtimeStore(client, warehouse.bigquery, warehouse.layout, retention_hours)
    return RealtimeStore(warehouse.layout, retention_hours)
