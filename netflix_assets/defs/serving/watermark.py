"""The batch watermark W of a build (the dbt model ``batch_watermark``), read back as Dagster metadata.

dbt computes W inside the build (``dbt_project/models/intermediate/int_batch_watermark.sql``), so the marts
and W cannot disagree; the gold asset reads the one-row table after the build (on DuckDB from the build
file, before it is published; on BigQuery from the dbt dataset) and attaches it to every model it
materializes.
"""

from datetime import UTC, datetime
from typing import Any

from dagster import MetadataValue

from core.serving_tables import MISSING_MODEL, WATERMARK_MODEL, ServingTables


def read_watermark(tables: ServingTables) -> dict[str, Any] | None:
    """The ``batch_watermark`` row, or None if the warehouse has none."""
    try:
        names, rows = tables.rows(f"SELECT * FROM {tables.name(WATERMARK_MODEL)}")
    except MISSING_MODEL:
        return None
    return dict(zip(names, rows[0], strict=True)) if rows else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def watermark_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """W as a timestamp the UI renders, and the whole row (what the build merged) as JSON."""
    detail = {k: _utc(v).isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
    return {
        "batch_watermark": MetadataValue.timestamp(_utc(row["batch_watermark"])),
        "batch_watermark_detail": MetadataValue.json(detail),
    }
