"""The batch watermark W of a build (the dbt model ``batch_watermark``), read back as Dagster metadata.

dbt computes W inside the build (``dbt_project/models/intermediate/int_batch_watermark.sql``), so the marts
and W cannot disagree; the gold asset reads the one-row table from the finished build file, before it is
published, and attaches it to every model it materializes.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from dagster import MetadataValue

MODEL = "batch_watermark"


def read_watermark(database: Path) -> dict[str, Any] | None:
    """The ``batch_watermark`` row of a DuckDB warehouse file, or None if the build has none."""
    if not database.exists():
        return None
    con = duckdb.connect(str(database), read_only=True)
    try:
        cursor = con.execute(f"SELECT * FROM main.{MODEL}")
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def watermark_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """W as a timestamp the UI renders, and the whole row (what the build merged) as JSON."""
    detail = {k: _utc(v).isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
    return {
        "batch_watermark": MetadataValue.timestamp(_utc(row["batch_watermark"])),
        "batch_watermark_detail": MetadataValue.json(detail),
    }
