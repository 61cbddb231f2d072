"""The watch-event contract: valid v1/v2, every kind of invalid event, evolution, unknown versions.

Each case is judged two ways that must agree: ``core.contracts.events`` (Python, used by the producer and the
stream) and a stock JSON Schema validator over the same schema files, so the derived rules cannot drift
from the files. ``tests/test_streaming_validation.py`` holds the stream's Spark side to the same verdicts.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker, validators

from core.contracts import events
from producer.publish import POISON_KINDS, EventFactory

VALID_V1: dict[str, Any] = {
    "event_id": "0b5e1c9e-4a8f-4d2e-9a53-6a1f2c3d4e5f",
    "schema_version": 1,
    "event_time": "2025-03-04T10:11:12.345Z",
    "session_id": "session_000000001",
    "user_id": "user_00044",
    "movie_id": "movie_00010",
    "device_type": "Smart TV",
    "watch_duration_minutes": 83.2,
    "progress_percentage": 98,
    "action": "completed",
    "quality": "4K",
    "location_country": "Canada",
    "is_download": False,
    "user_rating": 4,
    "producer": {"producer_id": "p-1", "host": "h", "sent_at": "2025-03-04T10:11:13Z", "sequence": 7},
}
VALID_V2 = {**VALID_V1, "schema_version": 2, "bitrate_kbps": 15_800}
REQUIRED = (
    "event_id",
    "event_time",
    "session_id",
    "user_id",
    "movie_id",
    "action",
    "quality",
    "is_download",
    "producer",
)


def _with(base: dict[str, Any], path: str, value: Any = ...) -> dict[str, Any]:
    """A deep copy of ``base`` with ``path`` (dotted) set to ``value``, or removed when value is omitted."""
    event = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    target = event
    for name in parents:
        target = target[name]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return event


# -- the stock validator: same files, strict integers, an independent date-time check ----------------------
def _strict_integer(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool) and -(2**63) <= instance < 2**63


_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    time.strptime(value.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
    return True


StrictValidator = validators.extend(
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer)
)


def stock_valid(event: Any) -> bool:
    version = event.get("schema_version") if isinstance(event, dict) else None
    if type(version) is not int or version not in events.SUPPORTED_VERSIONS:
        return False
    return StrictValidator(events.load_schema(version), format_checker=_formats).is_valid(event)


# -- cases ------------------------------------------------------------------------------------------------
def _invalid_cases() -> list[tuple[str, bytes, list[str]]]:
    """(name, raw message, exact expected errors) for every kind of invalid event we know."""
    cases: list[tuple[str, Any, list[str]]] = []
    for base_name, base in (("v1", VALID_V1), ("v2", VALID_V2)):
        for name in REQUIRED:
            cases.append(
                (f"{base_name}-missing-{name}", _with(base, name), [f"{name}: missing required field"])
            )
            cases.append((f"{base_name}-null-{name}", _with(base, name, None), [f"{name}: must not be null"]))
    typed = [
        ("event_id", 42, "expected string"), ("event_time", 1735689600, "expected string"),
        ("user_id", 12345, "expected string"), ("device_type", 3, "expected string"),
        ("watch_duration_minutes", "45 min", "expected number"),
        ("watch_duration_minutes", True, "expected number"),
        ("progress_percentage", "50%", "expected number"), ("is_download", "yes", "expected boolean"),
        ("is_download", 1, "expected boolean"), ("user_rating", 4.5, "expected integer"),
        ("user_rating", 4.0, "expected integer"), ("user_rating", "4", "expected integer"),
        ("producer", "p-1", "expected object"), ("producer.sequence", "7", "expected integer"),
        ("producer.host", None, "must not be null"), ("location_country", ["USA"], "expected string"),
    ]  # fmt: skip
    cases += [(f"type-{f}-{v!r}", _with(VALID_V1, f, v), [f"{f}: {why}"]) for f, v, why in typed]
    values = [
        ("action", "rewound", "not one of started|completed|stopped|paused"),
        ("action", "Completed", "not one of started|completed|stopped|paused"),
        ("quality", "8K", "not one of SD|HD|4K|Ultra HD"),
        ("watch_duration_minutes", -0.5, "out of range [0, 1440]"),
        ("watch_duration_minutes", 1440.1, "out of range [0, 1440]"),
        ("progress_percentage", 100.5, "out of range [0, 100]"),
        ("user_rating", 0, "out of range [1, 5]"), ("user_rating", 6, "out of range [1, 5]"),
        ("producer.sequence", -1, "out of range >= 0"),
        ("event_id", "0B5E1C9E-4A8F-4D2E-9A53-6A1F2C3D4E5F", f"does not match {VALID_PATTERN}"),
        ("event_id", "not-a-uuid", f"does not match {VALID_PATTERN}"),
        ("event_time", "2025-03-04 10:11:12", "not an ISO-8601 UTC timestamp"),
        ("event_time", "2025-03-04T10:11:12+02:00", "not an ISO-8601 UTC timestamp"),
        ("event_time", "2025-02-30T10:11:12Z", "not an ISO-8601 UTC timestamp"),
        ("producer.sent_at", "yesterday", "not an ISO-8601 UTC timestamp"),
        ("session_id", "", "shorter than 1"), ("producer.producer_id", "", "shorter than 1"),
    ]  # fmt: skip
    cases += [(f"value-{f}-{v!r}", _with(VALID_V1, f, v), [f"{f}: {why}"]) for f, v, why in values]
    cases.append(
        ("v2-negative-bitrate", _with(VALID_V2, "bitrate_kbps", -1), ["bitrate_kbps: out of range >= 0"])
    )
    cases.append(
        ("v2-string-bitrate", _with(VALID_V2, "bitrate_kbps", "high"), ["bitrate_kbps: expected integer"])
    )
    cases.append(
        ("several-errors", _with(_with(VALID_V1, "user_id"), "quality", "8K"),
         ["user_id: missing required field", "quality: not one of SD|HD|4K|Ultra HD"])
    )  # fmt: skip
    for version in (0, 3, 99, -1, "1", 1.0, True, None, [1]):
        cases.append(
            (f"version-{version!r}", _with(VALID_V1, "schema_version", version), [events.VERSION_UNSUPPORTED])
        )
    cases.append(("version-missing", _with(VALID_V1, "schema_version"), [events.VERSION_MISSING]))
    raw_cases: list[tuple[str, bytes, list[str]]] = [
        (n, json.dumps(e).encode(), errs) for n, e, errs in cases
    ]
    text = json.dumps(VALID_V1)
    raw_cases += [
        ("nan-token", text.replace(": 83.2", ": NaN").encode(), [events.INVALID_JSON]),
        ("infinity-token", text.replace("83.2", "Infinity").encode(), [events.INVALID_JSON]),
        ("truncated", text[:57].encode(), [events.INVALID_JSON]),
        ("duplicate-key", text.replace('"quality": "4K"', '"quality": "4K", "quality": "HD"').encode(),
         [events.INVALID_JSON]),
        ("empty", b"", [events.INVALID_JSON]),
        ("array", b"[1, 2]", [events.NOT_AN_OBJECT]),
        ("string", b'"event"', [events.NOT_AN_OBJECT]),
    ]  # fmt: skip
    return raw_cases


VALID_PATTERN = events.load_schema(1)["properties"]["event_id"]["pattern"]


def _valid_cases() -> list[tuple[str, bytes]]:
    nullable = [_with(VALID_V1, f, None) for f in ("device_type", "watch_duration_minutes", "user_rating")]
    absent = [
        _with(VALID_V1, f) for f in ("device_type", "progress_percentage", "location_country", "user_rating")
    ]
    evolved = [
        _with(VALID_V2, "bitrate_kbps"),  # v2's new field is optional
        _with(VALID_V2, "bitrate_kbps", None),
        {**VALID_V1, "bitrate_kbps": "ignored by a v1 reader"},  # unknown fields are ignored
        {**VALID_V2, "some_v3_field": {"nested": True}},
    ]
    edges = [
        _with(VALID_V1, "watch_duration_minutes", 0), _with(VALID_V1, "watch_duration_minutes", 1440),
        _with(VALID_V1, "progress_percentage", 100.0), _with(VALID_V1, "user_rating", 1),
        _with(VALID_V1, "event_time", "2024-02-29T23:59:59Z"),
        _with(VALID_V1, "event_time", "2025-01-01T00:00:00.123456Z"),
        _with(VALID_V2, "bitrate_kbps", 0),
    ]  # fmt: skip
    all_valid = [VALID_V1, VALID_V2, *nullable, *absent, *evolved, *edges]
    return [(f"valid-{i}", json.dumps(e).encode()) for i, e in enumerate(all_valid)]


INVALID = _invalid_cases()
VALID = _valid_cases()


# -- tests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "raw"), VALID, ids=[n for n, _ in VALID])
def test_valid_events_pass_both_validators(name: str, raw: bytes) -> None:
    assert events.validate_message(raw) == []
    assert stock_valid(json.loads(raw))


@pytest.mark.parametrize(("name", "raw", "expected"), INVALID, ids=[n for n, _, _ in INVALID])
def test_invalid_events_are_rejected_naming_the_field(name: str, raw: bytes, expected: list[str]) -> None:
    assert events.validate_message(raw) == expected
    try:
        parsed = json.loads(raw, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
    except ValueError:
        return  # not JSON at all: nothing for the stock validator to judge
    if "duplicate" not in name:
        assert not stock_valid(parsed), f"the stock JSON Schema validator accepts {name}"


def test_supported_versions_come_from_the_schema_files() -> None:
    assert events.SUPPORTED_VERSIONS == (1, 2)
    for version in events.SUPPORTED_VERSIONS:
        assert events.load_schema(version)["properties"]["schema_version"]["const"] == version
    with pytest.raises(ValueError, match="unknown watch-event schema version 3"):
        events.load_schema(3)


def test_v2_is_a_backward_compatible_evolution_of_v1() -> None:
    """v2 keeps every v1 field with the same definition and the same required set; new fields are optional."""
    v1, v2 = events.load_schema(1), events.load_schema(2)
    assert v1["required"] == v2["required"]
    for name, definition in v1["properties"].items():
        if name != "schema_version":
            assert v2["properties"][name] == definition, name
    added = set(v2["properties"]) - set(v1["properties"])
    assert added == {"bitrate_kbps"}
    assert not added & set(v2["required"])
    assert "null" in v2["properties"]["bitrate_kbps"]["type"]


def test_union_spark_schema_holds_every_field_of_every_version() -> None:
    ddl = events.spark_ddl()
    for version in events.SUPPORTED_VERSIONS:
        for name in events.load_schema(version)["properties"]:
            assert f"{name} " in ddl
    assert "bitrate_kbps bigint" in ddl and "event_time timestamp" in ddl


@pytest.mark.parametrize("schema_version", ["1", "2", "mixed"])
def test_factory_poison_is_invalid_and_everything_else_valid(schema_version: str) -> None:
    factory = EventFactory(schema_version=None if schema_version == "mixed" else int(schema_version),
                           poison_rate=0.3, late_rate=0.2, seed=7)  # fmt: skip
    record = {
        k: v for k, v in VALID_V1.items() if k not in ("event_id", "schema_version", "event_time", "producer")
    }
    seen: dict[str | None, int] = {}
    for _ in range(2_000):
        message = factory.build(dict(record))
        errors = events.validate_message(message.value)
        poisoned = message.fault in POISON_KINDS
        assert bool(errors) == poisoned, (message.fault, errors, message.value)
        seen[message.fault] = seen.get(message.fault, 0) + 1
    assert set(seen) == {None, "late", *POISON_KINDS}
