"""The compatibility mapping of legacy watch events (schema version 0): the original pipeline's producer.

The pipeline this project replaces published ``json.dumps`` of each watch_history record with kafka-python:
the watch_history columns plus ``timestamp`` (``"2025-12-01 00:47:16"``), no ``schema_version``, no
``event_id``, and Python's bare ``NaN`` for every missing number, which is not JSON. A team migrating from it
keeps that producer running for a while, so the stream reads its messages as **version 0** through this
one mapping, the only place that knows what v0 means (``core/contracts/schemas/watch_event.v0.json`` is its
schema; ``docs/speed-layer.md``, "Legacy events", its documentation):

* a message is v0 when it is a JSON object with none of ``schema_version``, ``event_id``, ``event_time``
  (any of them makes it a versioned event, judged by :mod:`core.contracts.events` as before);
* the tokens ``NaN``, ``Infinity`` and ``-Infinity`` are read as missing values: null in a nullable field,
  an error naming the field in a required one (the message goes to the dead-letter sink);
* the rest is validated against the v0 schema, with the same value rules as v1 (a whole-number
  ``user_rating`` may be written ``4.0``, as pandas does);
* a valid v0 message becomes a v1-shaped event with ``schema_version`` 0 and no ``producer``:
  ``event_time`` = ``timestamp`` in UTC (a time without an offset is UTC), ``watch_date`` and unknown
  fields dropped, and ``event_id`` a name-based UUID (version 5) of the mapped content, so a re-sent event
  (the same record exported twice, NaN or null, any key order or spacing) is the same event.

:func:`map_event` is that mapping. The stream applies it where the messages are read (the Kafka source
hands Spark the mapped event beside the raw bytes, ``streaming.kafka_source``) and, for the messages it
rejects, where reasons are named (:func:`core.contracts.events.validate_message`, which the producer's
tests use too).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from core.contracts import events

#: Fields only a versioned event has: a message with any of them is never read as v0.
VERSIONED_FIELDS: tuple[str, ...] = (events.VERSION_FIELD, "event_id", "event_time")
#: The event model v0 is mapped onto (its fields, without the producer block the original producer lacks).
TARGET_VERSION = 1
#: Fixed forever: changing it would give every re-sent v0 event a new id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2f0e-8d1a-5b7e-9c43-2a6e0b1d7c55")
TIME_FIELD = "timestamp"
V0_REJECTED = f"{events.VERSION_FIELD}: missing; a legacy v0 event, and the v0 mapping is turned off"


NON_FINITE_TOKENS: tuple[str, ...] = ("NaN", "Infinity", "-Infinity")


def non_finite_error(field: str, token: str) -> str:
    """The error of a bare ``NaN``/``Infinity`` where v0 requires a value."""
    return f"{field}: {token} where a value is required"


@dataclass(frozen=True)
class NonFinite:
    """A bare ``NaN``/``Infinity``/``-Infinity`` token, kept apart from numbers until the mapping decides."""

    token: str


def parse(raw: bytes | str) -> Any:
    """JSON as Python's ``json.dumps`` writes it (non-finite tokens as :class:`NonFinite`), or None."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text, parse_constant=NonFinite, object_pairs_hook=events.reject_duplicate_keys)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def is_legacy(event: Any) -> bool:
    """A JSON object without any field of a versioned event."""
    return isinstance(event, dict) and not any(name in event for name in VERSIONED_FIELDS)


@cache
def _specs() -> tuple[events.FieldSpec, ...]:
    return events.field_specs(events.LEGACY_VERSION)


@cache
def target_fields() -> tuple[events.FieldSpec, ...]:
    """The mapped event's fields but ``schema_version``, in :data:`TARGET_VERSION`'s order."""
    return tuple(s for s in events.field_specs(TARGET_VERSION) if s.path != "producer")


def map_event(event: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The mapped event of a parsed v0 message and ``[]``, or ``None`` and its errors (``"<field>: …"``)."""
    tokens = {k: v.token for k, v in event.items() if isinstance(v, NonFinite)}
    cleaned = {**event, **dict.fromkeys(tokens)} if tokens else event  # a missing value is null
    errors: list[str] = []
    events.check_fields(_specs(), cleaned, errors)
    if errors:  # null where a value is required: say it was the token
        return None, [_token_error(e, tokens) for e in errors]
    try:
        event_time = _utc_iso(cleaned[TIME_FIELD])
    except OverflowError:  # a valid local time whose UTC instant falls outside years 1-9999
        return None, [f"{TIME_FIELD}: not an ISO-8601 timestamp"]
    mapped: dict[str, Any] = {"event_id": "", events.VERSION_FIELD: events.LEGACY_VERSION}
    for spec in target_fields():
        mapped[spec.path] = event_time if spec.path == "event_time" else _as(spec, cleaned.get(spec.path))
    mapped["event_id"] = content_id(mapped)
    return mapped, []


def _token_error(error: str, tokens: dict[str, str]) -> str:
    name = error.split(":", 1)[0]
    if name in tokens and error == f"{name}: must not be null":
        return non_finite_error(name, tokens[name])
    return error


def _as(spec: events.FieldSpec, value: Any) -> Any:
    """A v0 value in the target field's JSON type (``4.0`` → 4 for an integer, ``45`` → 45.0 for a number)."""
    if value is None or spec.types[0] not in ("integer", "number"):
        return value
    return int(value) if spec.types[0] == "integer" else float(value)


def _utc_iso(text: str) -> str:
    """``2025-12-01 00:47:16`` (UTC) or any offset → ``2025-12-01T00:47:16Z`` (microseconds kept)."""
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def content_id(mapped: dict[str, Any]) -> str:
    """The event id of a mapped event: UUID v5 of its content (every field but the id, keys sorted)."""
    content = {k: v for k, v in mapped.items() if k != "event_id"}
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()))


def mapped_value(raw: bytes | str) -> bytes | None:
    """The mapped event of a valid v0 message in the producer's canonical encoding; None for any other."""
    event = parse(raw)
    if not is_legacy(event):
        return None
    mapped, _errors = map_event(event)
    return None if mapped is None else orjson.dumps(mapped)
