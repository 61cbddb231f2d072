"""How the dashboards print numbers and times: one spelling, so the browser tests can read them back."""

from __future__ import annotations

from typing import Any

import pandas as pd


def count(value: Any) -> str:
    """An integer with thousands separators (``1,234``); missing is ``0``."""
    return "0" if value is None or pd.isna(value) else f"{int(value):,}"


def when(value: Any) -> str:
    """A naive-UTC timestamp as ``YYYY-MM-DD HH:MM``; missing is ``none``."""
    return "none" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def instant(value: Any) -> str:
    """A naive-UTC timestamp to the second, ``YYYY-MM-DD HH:MM:SS``; missing is ``none``."""
    return "none" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """How long ago, in the largest sensible unit: ``12 s ago``, ``4 min ago``, ``3.5 h ago``."""
    if seconds is None:
        return "no batch yet"
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
