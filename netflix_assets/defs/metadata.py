"""Metadata shapes the assets share, so the UI shows every preview and every JSON value the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> MetadataValue:
    """A preview table; ``None`` shows as an empty cell."""
    if not header:
        return MetadataValue.md("(no rows)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def metadata_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values as they are; dicts and lists as JSON metadata."""
    return {k: MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}
