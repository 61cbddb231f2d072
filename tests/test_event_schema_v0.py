"""Legacy v0 events (the original pipeline's producer) through the compatibility mapping, in plain Python.

Each message is written here the way that producer wrote it (``json.dumps`` of a pandas record, bare
``NaN``); expectations come from the record itself (:func:`tests.legacy_fixtures.expected_event`) and from
a stock JSON Schema validator over ``watch_event.v0.json``, never from the mapping under test.
``tests/test_streaming_validation.py`` holds the stream's Spark side to the same verdicts and
``tests/test_streaming_legacy_client.py`` runs such events end to end from a foreign client.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from core.contracts import events, legacy_v0
from streaming.validation import reason_code
from tests.legacy_fixtures import INF, NAN, expected_event, legacy_line, legacy_record
from tests.test_event_schema import INVALID, VALID

MOMENT = datetime(2025, 12, 1, 0, 47, 16, tzinfo=UTC)
USERS, MOVIES = ["user_00001", "user_00002"], ["movie_0001", "movie_0002"]
REQUIRED = tuple(events.load_schema(events.LEGACY_VERSION)["required"])
NULLABLE = ("watch_date", "device_type", "watch_duration_minutes", "progress_percentage", "location_country",
            "user_rating")  # fmt: skip


def record(seed: int = 1, moment: datetime = MOMENT, **overrides: Any) -> dict[str, Any]:
    return legacy_record(random.Random(seed), seed, moment, USERS, MOVIES, **overrides)


def mapped(line: str | bytes) -> dict[str, Any]:
    event, errors = legacy_v0.map_event(legacy_v0.parse(line))
    assert errors == [] and event is not None
    return event


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """A mapped event in the shape of :func:`expected_event` (event time as a naive UTC datetime)."""
    out = {k: v for k, v in event.items() if k != "event_id"}
    out["event_time"] = datetime.fromisoformat(out["event_time"]).astimezone(UTC).replace(tzinfo=None)
    return out


def stock_v0_valid(line: str) -> bool:
    """The stock validator on the v0 schema, after the documented NaN rule (non-finite → null)."""
    doc = json.loads(line, parse_constant=lambda _token: None)
    return Draft202012Validator(events.load_schema(events.LEGACY_VERSION)).is_valid(doc)


# -- valid legacy events ------------------------------------------------------------------------------------
def test_the_original_producers_events_are_read_as_their_records_say() -> None:
    for seed in range(200):
        rec = record(seed, MOMENT + timedelta(seconds=seed))
        line = legacy_line(rec)
        assert events.validate_message(line) == [], line
        assert stock_v0_valid(line)
        assert comparable(mapped(line)) == expected_event(rec, MOMENT + timedelta(seconds=seed)), line
    assert "NaN" in legacy_line(record(3, device_type=NAN))  # the fixture writes what real exports hold


@pytest.mark.parametrize("field", NULLABLE)
@pytest.mark.parametrize("token", [NAN, INF, -INF])
def test_nan_and_infinity_in_a_nullable_field_read_as_null(field: str, token: float) -> None:
    line = legacy_line(record(5, **{field: token}))
    assert re.search(r"\b-?(NaN|Infinity)\b", line)
    assert events.validate_message(line) == []
    if field != "watch_date":
        assert mapped(line)[field] is None


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize(("token", "text"), [(NAN, "NaN"), (INF, "Infinity"), (-INF, "-Infinity")])
def test_nan_in_a_required_field_is_a_dead_letter_naming_it(field: str, token: float, text: str) -> None:
    line = legacy_line(record(6, **{field: token}))
    errors = events.validate_message(line)
    assert errors == [f"{field}: {text} where a value is required"]
    assert reason_code(errors[0]) == f"missing_{field}"
    assert legacy_v0.mapped_value(line) is None


def test_missing_timestamp_and_bad_values_name_the_field() -> None:
    base = record(7)
    cases = {
        "timestamp: missing required field": {k: v for k, v in base.items() if k != "timestamp"},
        "timestamp: must not be null": {**base, "timestamp": None},
        "timestamp: not an ISO-8601 timestamp": {**base, "timestamp": "2025-02-30 10:00:00"},
        "timestamp: expected string": {**base, "timestamp": 1_764_550_036},
        "user_rating: not a whole number": {**base, "user_rating": 4.5},
        "user_rating: out of range [1, 5]": {**base, "user_rating": 0.0},
        "is_download: expected boolean": {**base, "is_download": "False"},
        "quality: not one of SD|HD|4K|Ultra HD": {**base, "quality": "8K"},
        "session_id: shorter than 1": {**base, "session_id": ""},
    }
    overflow = legacy_line({**base, "timestamp": "0001-01-01 00:30:00+01:00"})  # before year 1 in UTC
    assert events.validate_message(overflow) == ["timestamp: not an ISO-8601 timestamp"]
    for expected, rec in cases.items():
        line = legacy_line(rec)
        assert events.validate_message(line) == [expected], line
        assert not stock_v0_valid(line) or expected.startswith("timestamp: not an ISO"), line
        code = reason_code(expected)
        assert code.split("_", 1)[1] == expected.split(":")[0], code
    assert reason_code("timestamp: missing required field") == "missing_timestamp"
    several = legacy_line({**base, "user_id": NAN, "quality": "8K", "timestamp": "yesterday"})
    assert events.validate_message(several) == [
        "user_id: NaN where a value is required",
        "quality: not one of SD|HD|4K|Ultra HD",
        "timestamp: not an ISO-8601 timestamp",
    ]


def test_timestamps_in_any_iso_form_become_utc_event_times() -> None:
    forms = {
        "2025-12-01 00:47:16": "2025-12-01T00:47:16Z",
        "2025-12-01T00:47:16": "2025-12-01T00:47:16Z",
        "2025-12-01 00:47:16Z": "2025-12-01T00:47:16Z",
        "2025-12-01 00:47:16.540242": "2025-12-01T00:47:16.540242Z",
        "2025-12-01T01:47:16.5+01:00": "2025-12-01T00:47:16.500000Z",
        "2025-12-01 00:17:16-00:30": "2025-12-01T00:47:16Z",
    }
    for text, want in forms.items():
        event = mapped(legacy_line(record(8, timestamp=text)))
        assert event["event_time"] == want, text
        assert events.validate({**event, "schema_version": 1, "producer": _PRODUCER}) == [], text


_PRODUCER = {"producer_id": "p", "host": "h", "sent_at": "2025-12-01T00:47:16Z", "sequence": 0}


# -- the mapped event ---------------------------------------------------------------------------------------
def test_a_mapped_event_is_a_valid_event_of_the_target_model() -> None:
    """Every field of v1 but the producer block, in v1's order, each valid by v1's own rules."""
    v1_fields = [f for f in events.load_schema(1)["properties"] if f != "producer"]
    for seed in range(100):
        event = mapped(legacy_line(record(seed)))
        assert list(event) == v1_fields
        assert event["schema_version"] == events.LEGACY_VERSION
        errors: list[str] = []
        events.check_fields(legacy_v0.target_fields(), event, errors)
        assert errors == [], event
        assert legacy_v0.mapped_value(legacy_line(record(seed))) == orjson.dumps(event)


def test_v0_carries_every_watch_field_of_the_versioned_events() -> None:
    v0 = set(events.load_schema(events.LEGACY_VERSION)["properties"])
    versioned = {s.path for s in legacy_v0.target_fields()} - {"event_id", "event_time"}
    assert versioned <= v0
    assert legacy_v0.TIME_FIELD in v0 and not set(legacy_v0.VERSIONED_FIELDS) & v0


def test_event_id_is_the_same_for_a_resent_event_and_differs_for_another() -> None:
    rec = record(9, device_type=NAN)
    line = legacy_line(rec)
    first = mapped(line)["event_id"]
    assert uuid.UUID(first).version == 5 and first == first.lower()
    assert re.fullmatch(events.load_schema(1)["properties"]["event_id"]["pattern"], first)
    resent = [
        line,
        json.dumps(rec, separators=(",", ":")),  # another encoder's spacing
        json.dumps(dict(reversed(list(rec.items())))),  # another key order
        legacy_line({**rec, "device_type": None}),  # null instead of NaN: the same missing value
        legacy_line({**rec, "watch_date": "ignored"}),  # a field the mapping drops
        legacy_line({**rec, "timestamp": rec["timestamp"].replace(" ", "T") + "Z"}),  # the same instant
    ]
    assert {mapped(r)["event_id"] for r in resent} == {first}
    others = [
        legacy_line({**rec, "progress_percentage": 12.5}),
        legacy_line({**rec, "timestamp": "2025-12-01 00:47:17"}),
        legacy_line({**rec, "session_id": "session_999999"}),
    ]
    ids = {mapped(r)["event_id"] for r in others}
    assert len(ids) == len(others) and first not in ids


# -- what is v0, and the strict mode -------------------------------------------------------------------------
def test_versioned_events_are_never_read_as_v0() -> None:
    """Every schema test case keeps its verdict: any of schema_version, event_id or event_time makes an
    event versioned, and only v0 may carry NaN."""
    for name, raw, expected in INVALID:
        assert events.validate_message(raw) == expected, name
        assert legacy_v0.mapped_value(raw) is None, name
    for name, raw in VALID:
        assert events.validate_message(raw) == [] and legacy_v0.mapped_value(raw) is None, name
    legacy = record(10)
    for marker in legacy_v0.VERSIONED_FIELDS:
        assert not legacy_v0.is_legacy(json.loads(legacy_line({**legacy, marker: None}))), marker


def test_strict_mode_rejects_every_legacy_event_with_its_own_reason() -> None:
    lines = [legacy_line(record(11)), legacy_line(record(12, watch_duration_minutes=NAN, is_download=NAN))]
    for line in lines:
        assert events.validate_message(line, accept_v0=False) == [legacy_v0.V0_REJECTED]
    assert reason_code(legacy_v0.V0_REJECTED) == "legacy_v0_disabled"
    assert events.validate_message(b'{"session_id": NaN', accept_v0=False) == [events.INVALID_JSON]
    version_missing = json.loads(VALID[0][1])
    del version_missing["schema_version"]
    assert events.validate_message(json.dumps(version_missing), accept_v0=False) == [events.VERSION_MISSING]


def test_not_json_stays_invalid_json() -> None:
    for raw in (b"NaN", b'{"session_id": "s", "user_id": nan}', legacy_line(record(13))[:40].encode(),
                b'{"session_id": "a", "session_id": "b"}', b"\xff\xfe{}"):  # fmt: skip
        assert events.validate_message(raw) == [events.INVALID_JSON], raw
        assert legacy_v0.mapped_value(raw) is None
    assert math.isnan(json.loads("NaN"))  # Python itself writes and reads the token
