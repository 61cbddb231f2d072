"""Watch events written the way the original pipeline's producer wrote them (schema version 0).

That producer sent ``json.dumps`` of each watch_history record read with pandas, plus ``timestamp``:
Python's default encoder (``", "`` and ``": "`` separators, the CSV's column order), a float for every
numeric column holding a missing value (``4.0``), and the bare token ``NaN`` for every missing value, text
columns included. Nothing here uses the project's mapping: tests compare the stream against
:func:`expected_event`, computed from the same record.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime
from typing import Any

NAN = float("nan")
INF = float("inf")
WATCH_COLUMNS = (
    "session_id", "user_id", "movie_id", "watch_date", "device_type", "watch_duration_minutes",
    "progress_percentage", "action", "quality", "location_country", "is_download", "user_rating",
)  # fmt: skip
NUMBERS = ("watch_duration_minutes", "progress_percentage")


def legacy_record(
    rng: random.Random, index: int, moment: datetime, users: list[str], movies: list[str], **overrides: Any
) -> dict[str, Any]:
    """One record as ``DataFrame.to_dict("records")`` holds it, plus ``timestamp`` (naive text, UTC)."""
    action = rng.choice(["started", "completed", "stopped", "paused"])
    progress = 100.0 if action == "completed" else rng.choice([round(rng.uniform(0, 99), 1), NAN])
    record: dict[str, Any] = {
        "session_id": f"session_{index:06d}",
        "user_id": rng.choice(users),
        "movie_id": rng.choice(movies),
        "watch_date": moment.strftime("%Y-%m-%d"),
        "device_type": rng.choice(["Smart TV", "Mobile", "Laptop", NAN]),
        "watch_duration_minutes": rng.choice([round(rng.uniform(1, 180), 1), NAN]),
        "progress_percentage": progress,
        "action": action,
        "quality": rng.choice(["SD", "HD", "4K", "Ultra HD"]),
        "location_country": rng.choice(["USA", "Canada", NAN]),
        "is_download": rng.random() < 0.1,
        "user_rating": rng.choice([float(rng.randint(1, 5)), NAN, NAN]),
        "timestamp": moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    record.update(overrides)
    return record


def legacy_line(record: dict[str, Any]) -> str:
    """The message value the original producer sent: ``json.dumps`` with Python's defaults."""
    return json.dumps(record)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def expected_event(record: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """What the stream should read from a valid legacy record: its fields, NaN as null, the time in UTC."""
    out: dict[str, Any] = {
        name: None if _missing(record.get(name)) else record.get(name)
        for name in WATCH_COLUMNS
        if name != "watch_date"
    }
    for name in NUMBERS:
        out[name] = None if out[name] is None else float(out[name])
    out["user_rating"] = None if out["user_rating"] is None else int(out["user_rating"])
    out["event_time"] = moment.astimezone(UTC).replace(tzinfo=None)
    out["schema_version"] = 0
    return out
