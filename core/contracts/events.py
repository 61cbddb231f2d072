"""The watch-event contract: the JSON Schema files, and the one validator the producer and the stream share.

``core/contracts/schemas/watch_event.v<N>.json`` is the single source of truth. This module derives from it an
ordered list of :class:`Rule` per version and evaluates it in Python (:func:`validate`, used by the
producer, the stream and tools), so a message is rejected for the same reason, with the same text,
wherever it is judged. For Spark it also gives the union schema ``from_json`` reads events into and the
value rules as SQL (:func:`spark_value_violation`), which the stream's canonical path evaluates
(``streaming.validation``). ``tests/test_event_schema.py`` checks :func:`validate` against a stock JSON
Schema validator on every case it builds.

Deliberate choices:

* strict JSON: the tokens ``NaN``/``Infinity`` (which real exports contain) and duplicate keys are invalid;
  only a legacy v0 event (no version at all, :mod:`core.contracts.legacy_v0`) may carry those tokens, read
  as missing values by its compatibility mapping;
* ``integer`` means a JSON integer in the int64 range: ``5.0`` is a number, not an integer;
* every field gets at most one error, the first rule it fails, in the order required, not null, type,
  then value rules (enum, range, pattern/timestamp, length);
* unknown top-level fields are ignored (a v1 reader can read v2 events); an unknown ``schema_version`` is
  invalid, because we cannot know what its fields mean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_SCHEMA_FILE = re.compile(r"^watch_event\.v(\d+)\.json$")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Kinds of rule, in evaluation order within a field.
REQUIRED, NOT_NULL, TYPE, ENUM, RANGE, MULTIPLE_OF, TIMESTAMP, PATTERN, MIN_LENGTH = (
    "required", "not_null", "type", "enum", "range", "multiple_of", "timestamp", "pattern", "min_length",
)  # fmt: skip
_SUPPORTED_KEYWORDS = {
    "type", "required", "properties", "enum", "const", "minimum", "maximum", "multipleOf", "pattern",
    "format", "minLength", "description", "$schema", "$id", "title",
}  # fmt: skip


#: The original pipeline's events, which carry no version at all (``core/contracts/legacy_v0.py``): never a
#: valid ``schema_version`` value, so a message that writes ``"schema_version": 0`` is unsupported.
LEGACY_VERSION = 0


def _discover_versions() -> tuple[int, ...]:
    found = (int(m.group(1)) for p in SCHEMA_DIR.iterdir() if (m := _SCHEMA_FILE.match(p.name)))
    return tuple(sorted(v for v in found if v != LEGACY_VERSION))


SUPPORTED_VERSIONS: tuple[int, ...] = _discover_versions()
LATEST_VERSION: int = SUPPORTED_VERSIONS[-1]
VERSION_FIELD = "schema_version"
INVALID_JSON = "event: not valid JSON"
NOT_AN_OBJECT = "event: not a JSON object"
VERSION_MISSING = f"{VERSION_FIELD}: missing required field"
VERSION_UNSUPPORTED = (
    f"{VERSION_FIELD}: unsupported version (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
)


@cache
def load_schema(version: int) -> dict[str, Any]:
    """The JSON Schema document of one event version (:data:`LEGACY_VERSION` included)."""
    if version not in SUPPORTED_VERSIONS and version != LEGACY_VERSION:
        raise ValueError(f"unknown watch-event schema version {version!r}; supported: {SUPPORTED_VERSIONS}")
    return json.loads((SCHEMA_DIR / f"watch_event.v{version}.json").read_text())


# -- rules derived from the schema -----------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One check on one field. ``message`` is the exact error text both validators emit."""

    field: str  # dotted path, e.g. "producer.sent_at"
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class FieldSpec:
    """A field of the event and its rules, in evaluation order; ``children`` for nested objects."""

    path: str
    types: tuple[str, ...]  # JSON types other than null
    nullable: bool
    required: bool
    rules: tuple[Rule, ...]
    children: tuple[FieldSpec, ...] = ()


def _field_specs(schema: Mapping[str, Any], prefix: str = "") -> tuple[FieldSpec, ...]:
    required = set(schema.get("required", ()))
    specs: list[FieldSpec] = []
    for name, prop in schema.get("properties", {}).items():
        unknown = set(prop) - _SUPPORTED_KEYWORDS
        if unknown:
            raise ValueError(
                f"schema keyword(s) {sorted(unknown)} on {prefix}{name} are not supported by events.py"
            )
        path = f"{prefix}{name}"
        declared = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        types = tuple(t for t in declared if t != "null")
        nullable = "null" in declared
        rules: list[Rule] = []
        if name in required:
            rules.append(Rule(path, REQUIRED, {}, f"{path}: missing required field"))
        if not nullable:
            rules.append(Rule(path, NOT_NULL, {}, f"{path}: must not be null"))
        rules.append(Rule(path, TYPE, {"types": types}, f"{path}: expected {' or '.join(types)}"))
        if "enum" in prop:
            values = tuple(prop["enum"])
            rules.append(
                Rule(path, ENUM, {"values": values}, f"{path}: not one of {'|'.join(map(str, values))}")
            )
        if "minimum" in prop or "maximum" in prop:
            low, high = prop.get("minimum"), prop.get("maximum")
            bounds = f"[{low}, {high}]" if low is not None and high is not None else (
                f">= {low}" if low is not None else f"<= {high}"
            )  # fmt: skip
            rules.append(
                Rule(path, RANGE, {"minimum": low, "maximum": high}, f"{path}: out of range {bounds}")
            )
        if "multipleOf" in prop:
            step = prop["multipleOf"]
            what = "a whole number" if step == 1 else f"a multiple of {step}"
            rules.append(Rule(path, MULTIPLE_OF, {"value": step}, f"{path}: not {what}"))
        if prop.get("format") == "date-time":
            zone = " UTC" if prop["pattern"].endswith("Z$") else ""  # v1+: UTC only; v0: any offset
            rules.append(
                Rule(path, TIMESTAMP, {"regex": prop["pattern"]}, f"{path}: not an ISO-8601{zone} timestamp")
            )
        elif "pattern" in prop:
            rules.append(
                Rule(path, PATTERN, {"regex": prop["pattern"]}, f"{path}: does not match {prop['pattern']}")
            )
        if "minLength" in prop:
            rules.append(
                Rule(
                    path,
                    MIN_LENGTH,
                    {"value": prop["minLength"]},
                    f"{path}: shorter than {prop['minLength']}",
                )
            )
        children = _field_specs(prop, prefix=f"{path}.") if "object" in types else ()
        specs.append(FieldSpec(path, types, nullable, name in required, tuple(rules), children))
    return tuple(specs)


@cache
def field_specs(version: int) -> tuple[FieldSpec, ...]:
    """The fields of one version, each with its rules (the version field itself is checked separately)."""
    return tuple(s for s in _field_specs(load_schema(version)) if s.path != VERSION_FIELD)


def rules(version: int) -> list[Rule]:
    """Every rule of one version, flattened in evaluation order (nested fields after their parent)."""

    def walk(specs: tuple[FieldSpec, ...]) -> list[Rule]:
        out: list[Rule] = []
        for spec in specs:
            out.extend(spec.rules)
            out.extend(walk(spec.children))
        return out

    return walk(field_specs(version))


# -- Python validator ------------------------------------------------------------------------------------
def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token}")


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: a key written twice is an error, not the last one wins."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


def parse(raw: bytes | str) -> tuple[Any, list[str]]:
    """Strictly parse a message value: ``(event, [])`` or ``(None, [error])``; NaN and duplicate keys fail."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=reject_duplicate_keys), []
    except (ValueError, UnicodeDecodeError):
        return None, [INVALID_JSON]


def _is_type(value: Any, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, dict)
    raise ValueError(f"unsupported JSON type {json_type!r}")


def _is_utc_timestamp(value: str, regex: str) -> bool:
    if not re.search(regex, value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _value_ok(rule: Rule, value: Any) -> bool:
    kind, params = rule.kind, rule.params
    if kind == TYPE:
        return any(_is_type(value, t) for t in params["types"])
    if kind == ENUM:
        return value in params["values"]
    if kind == RANGE:
        low, high = params["minimum"], params["maximum"]
        return (low is None or value >= low) and (high is None or value <= high)
    if kind == MULTIPLE_OF:
        return value % params["value"] == 0
    if kind == TIMESTAMP:
        return _is_utc_timestamp(value, params["regex"])
    if kind == PATTERN:
        return re.search(params["regex"], value) is not None
    if kind == MIN_LENGTH:
        return len(value) >= params["value"]
    raise ValueError(f"unknown rule kind {kind!r}")


def check_fields(specs: tuple[FieldSpec, ...], obj: Mapping[str, Any], errors: list[str]) -> None:
    """Append the first failed rule's message of each field of ``specs`` in ``obj`` to ``errors``."""
    for spec in specs:
        name = spec.path.rsplit(".", 1)[-1]
        present = name in obj
        value = obj.get(name)
        failed = None
        for rule in spec.rules:
            if rule.kind == REQUIRED:
                if not present:
                    failed = rule
                    break
            elif not present or (value is None and spec.nullable):
                break  # an optional field that is absent or null: nothing more to check
            elif rule.kind == NOT_NULL:
                if value is None:
                    failed = rule
                    break
            elif not _value_ok(rule, value):
                failed = rule
                break
        if failed is not None:
            errors.append(failed.message)
        elif spec.children and isinstance(value, dict):
            check_fields(spec.children, value, errors)


def validate(event: Any) -> list[str]:
    """Errors of a parsed event, each ``"<field>: <reason>"``; an empty list means valid."""
    if not isinstance(event, dict):
        return [NOT_AN_OBJECT]
    if VERSION_FIELD not in event:
        return [VERSION_MISSING]
    version = event[VERSION_FIELD]
    if not _is_type(version, "integer") or version not in SUPPORTED_VERSIONS:
        return [VERSION_UNSUPPORTED]
    errors: list[str] = []
    check_fields(field_specs(version), event, errors)
    return errors


def validate_message(raw: bytes | str, accept_v0: bool = True) -> list[str]:
    """Errors of a raw message value (parse + validate), exactly as the stream computes them.

    A message without ``schema_version``, ``event_id`` and ``event_time`` is a legacy v0 event: judged by
    the v0 compatibility mapping (:func:`core.contracts.legacy_v0.map_event`), or rejected as such when
    ``accept_v0`` is off (``NETFLIX_STREAM_ACCEPT_V0``).
    """
    from core.contracts import legacy_v0  # it builds on this module's rules

    event, errors = parse(raw)
    legacy = legacy_v0.parse(raw) if errors else event
    if legacy_v0.is_legacy(legacy):
        return legacy_v0.map_event(legacy)[1] if accept_v0 else [legacy_v0.V0_REJECTED]
    return errors or validate(event)


# -- Spark side ------------------------------------------------------------------------------------------
# The stream parses messages with ``from_json`` into the union schema below and checks the value rules
# with SQL built from the same rule list (``streaming.validation``); everything else about a message is
# judged by :func:`validate_message`.


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


#: Rules on a field's value (the others say whether it is present, null, and of the right JSON type).
VALUE_RULE_KINDS = frozenset({ENUM, RANGE, MULTIPLE_OF, TIMESTAMP, PATTERN, MIN_LENGTH})


def spark_value_violation(rule: Rule, value: str) -> str:
    """SQL TRUE when a value rule fails on ``value``: the field as a string, or as a double for ranges."""
    params = rule.params
    if rule.kind == ENUM:
        return f"{value} NOT IN ({', '.join(_sql_literal(x) for x in params['values'])})"
    if rule.kind == RANGE:
        parts = []
        if params["minimum"] is not None:
            parts.append(f"{value} < {params['minimum']}")
        if params["maximum"] is not None:
            parts.append(f"{value} > {params['maximum']}")
        return " OR ".join(parts)
    if rule.kind == TIMESTAMP:
        regex = _sql_literal(params["regex"])
        return f"(NOT ({value} RLIKE {regex}) OR try_cast({value} AS TIMESTAMP) IS NULL)"
    if rule.kind == PATTERN:
        return f"NOT ({value} RLIKE {_sql_literal(params['regex'])})"
    if rule.kind == MIN_LENGTH:
        return f"char_length({value}) < {params['value']}"
    if rule.kind == MULTIPLE_OF:
        return f"{value} % {params['value']} <> 0"
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def _union_specs() -> list[FieldSpec]:
    """Fields of every supported version (later versions only add fields), in first-seen order."""
    seen: dict[str, FieldSpec] = {}
    for version in SUPPORTED_VERSIONS:
        for spec in _field_specs(load_schema(version)):
            seen.setdefault(spec.path, spec)
    return list(seen.values())


def _spark_type_name(spec: FieldSpec, timestamps: bool = True) -> str:
    json_type = spec.types[0]
    if timestamps and any(r.kind == TIMESTAMP for r in spec.rules):
        return "timestamp"
    if json_type == "object":
        return (
            "struct<"
            + ", ".join(
                f"{c.path.rsplit('.', 1)[-1]}: {_spark_type_name(c, timestamps)}" for c in spec.children
            )
            + ">"
        )
    return {"string": "string", "integer": "bigint", "number": "double", "boolean": "boolean"}[json_type]


def spark_ddl(timestamps: bool = True) -> str:
    """DDL of the union of all versions' fields (v2's ``bitrate_kbps`` is NULL for v1 events).

    ``timestamps=False`` keeps date-time fields as the strings the JSON holds (for ``from_json``, whose
    own timestamp parsing is more lenient than the schema's pattern).
    """
    return ", ".join(f"{spec.path} {_spark_type_name(spec, timestamps)}" for spec in _union_specs())


def _spark_extract(spec: FieldSpec, struct_col: str) -> str:
    ref = f"{struct_col}.{spec.path}"
    spark_type = _spark_type_name(spec)
    if spark_type == "timestamp":
        return f"try_cast({ref} AS TIMESTAMP)"
    if spec.children:
        fields = ", ".join(f"{_sql_literal(c.path.rsplit('.', 1)[-1])}, {_spark_extract(c, struct_col)}"
                           for c in spec.children)  # fmt: skip
        return f"named_struct({fields})"
    return ref


def spark_columns_from_struct_sql(struct_col: str) -> list[str]:
    """``SELECT`` expressions giving each union field, typed, from ``from_json(value,
    spark_ddl(timestamps=False))`` (date-times parsed by the same ``try_cast`` as everywhere).

    For a valid event these are its values; for an invalid one ``from_json`` is lenient (a number where a
    string belongs comes back as its text), so only valid events may be read this way.
    """
    return [f"{_spark_extract(spec, struct_col)} AS {spec.path}" for spec in _union_specs()]
