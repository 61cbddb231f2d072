"""The watch-event contract: the JSON Schema files, and the one validator the producer and the stream share.

``producer/schemas/watch_event.v<N>.json`` is the single source of truth. This module derives from it an
ordered list of :class:`Rule` per version and evaluates that same list twice: in Python (:func:`validate`,
used by the producer, tests and tools) and as a Spark SQL expression over a ``VARIANT`` column
(:func:`spark_errors_sql`, used by the stream), so a message is rejected for the same reason, with the
same text, on both sides. ``tests/test_event_schema.py`` checks the two agree with each other and with a
stock JSON Schema validator on every case it builds.

Deliberate choices, all mirrored on both sides:

* strict JSON: the tokens ``NaN``/``Infinity`` (which real exports contain) and duplicate keys are invalid;
* ``integer`` means a JSON integer in the int64 range: ``5.0`` is a number, not an integer;
* every field gets at most one error, the first rule it fails, in the order required, not null, type,
  then value rules (enum, range, pattern/timestamp, length);
* unknown top-level fields are ignored (a v1 reader can read v2 events); an unknown ``schema_version`` is
  invalid, because we cannot know what its fields mean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_SCHEMA_FILE = re.compile(r"^watch_event\.v(\d+)\.json$")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Kinds of rule, in evaluation order within a field.
REQUIRED, NOT_NULL, TYPE, ENUM, RANGE, TIMESTAMP, PATTERN, MIN_LENGTH = (
    "required", "not_null", "type", "enum", "range", "timestamp", "pattern", "min_length",
)  # fmt: skip
_SUPPORTED_KEYWORDS = {
    "type", "required", "properties", "enum", "const", "minimum", "maximum", "pattern", "format",
    "minLength", "description", "$schema", "$id", "title",
}  # fmt: skip


def _discover_versions() -> tuple[int, ...]:
    return tuple(sorted(int(m.group(1)) for p in SCHEMA_DIR.iterdir() if (m := _SCHEMA_FILE.match(p.name))))


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
    """The JSON Schema document of one event version."""
    if version not in SUPPORTED_VERSIONS:
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
        if prop.get("format") == "date-time":
            rules.append(
                Rule(path, TIMESTAMP, {"regex": prop["pattern"]}, f"{path}: not an ISO-8601 UTC timestamp")
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


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


def parse(raw: bytes | str) -> tuple[Any, list[str]]:
    """Strictly parse a message value: ``(event, [])`` or ``(None, [error])``; NaN and duplicate keys fail."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates), []
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
    if kind == TIMESTAMP:
        return _is_utc_timestamp(value, params["regex"])
    if kind == PATTERN:
        return re.search(params["regex"], value) is not None
    if kind == MIN_LENGTH:
        return len(value) >= params["value"]
    raise ValueError(f"unknown rule kind {kind!r}")


def _check(specs: tuple[FieldSpec, ...], obj: Mapping[str, Any], errors: list[str]) -> None:
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
            _check(spec.children, value, errors)


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
    _check(field_specs(version), event, errors)
    return errors


def validate_message(raw: bytes | str) -> list[str]:
    """Errors of a raw message value (parse + validate), exactly as the stream computes them."""
    event, errors = parse(raw)
    return errors or validate(event)


# -- Spark side ------------------------------------------------------------------------------------------
#: from_json options that match the Python parser (Spark accepts NaN by default).
SPARK_JSON_OPTIONS: dict[str, str] = {"allowNonNumericNumbers": "false", "mode": "PERMISSIVE"}

_SPARK_INTEGER_TYPES = "('TINYINT', 'SMALLINT', 'INT', 'BIGINT')"
_SPARK_TYPE_TESTS: dict[str, Callable[[str], str]] = {
    "string": lambda t: f"{t} = 'STRING'",
    "integer": lambda t: f"{t} IN {_SPARK_INTEGER_TYPES}",
    "number": lambda t: (
        f"({t} IN {_SPARK_INTEGER_TYPES} OR {t} IN ('FLOAT', 'DOUBLE') OR {t} LIKE 'DECIMAL(%')"
    ),
    "boolean": lambda t: f"{t} = 'BOOLEAN'",
    "object": lambda t: f"{t} LIKE 'OBJECT<%'",
}


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _spark_violation(rule: Rule, v: str) -> str:
    """SQL condition that is TRUE when ``rule`` fails (rules before it in the field are known to pass)."""
    path = _sql_literal(f"$.{rule.field}")
    raw = f"variant_get({v}, {path})"
    as_string = f"try_variant_get({v}, {path}, 'string')"
    params = rule.params
    if rule.kind == REQUIRED:
        return f"{raw} IS NULL"
    if rule.kind == NOT_NULL:
        return f"is_variant_null({raw})"
    if rule.kind == TYPE:
        kind = f"schema_of_variant({raw})"
        return "NOT (" + " OR ".join(_SPARK_TYPE_TESTS[t](kind) for t in params["types"]) + ")"
    if rule.kind == ENUM:
        return f"{as_string} NOT IN ({', '.join(_sql_literal(x) for x in params['values'])})"
    if rule.kind == RANGE:
        number = f"try_variant_get({v}, {path}, 'double')"
        parts = []
        if params["minimum"] is not None:
            parts.append(f"{number} < {params['minimum']}")
        if params["maximum"] is not None:
            parts.append(f"{number} > {params['maximum']}")
        return " OR ".join(parts)
    if rule.kind == TIMESTAMP:
        regex = _sql_literal(params["regex"])
        return f"(NOT ({as_string} RLIKE {regex}) OR try_cast({as_string} AS TIMESTAMP) IS NULL)"
    if rule.kind == PATTERN:
        return f"NOT ({as_string} RLIKE {_sql_literal(params['regex'])})"
    if rule.kind == MIN_LENGTH:
        return f"char_length({as_string}) < {params['value']}"
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def _spark_field_errors(specs: tuple[FieldSpec, ...], v: str) -> list[str]:
    """One SQL expression per field: the first failing rule's message, else NULL (nested: arrays)."""
    expressions: list[str] = []
    for spec in specs:
        raw = f"variant_get({v}, {_sql_literal('$.' + spec.path)})"
        skip = f"{raw} IS NULL" + (f" OR is_variant_null({raw})" if spec.nullable else "")
        branches: list[str] = []
        for rule in spec.rules:
            if rule.kind != REQUIRED and not branches:
                # After the required check (if any): optional fields that are absent/null pass.
                branches.append(f"WHEN {skip} THEN NULL")
            branches.append(f"WHEN {_spark_violation(rule, v)} THEN {_sql_literal(rule.message)}")
        expressions.append(f"array(CASE {' '.join(branches)} END)")
        if spec.children:
            is_object = _SPARK_TYPE_TESTS["object"](f"schema_of_variant({raw})")
            nested = _spark_field_errors(spec.children, v)
            expressions.append(
                f"CASE WHEN {raw} IS NOT NULL AND {is_object} THEN concat({', '.join(nested)}) "
                "ELSE CAST(array() AS array<string>) END"
            )
    return expressions


def spark_errors_sql(variant_col: str = "v") -> str:
    """Spark SQL giving ``array<string>`` of the same errors :func:`validate_message` returns (empty = valid).

    ``variant_col`` must hold ``try_parse_json(CAST(value AS STRING))`` of the Kafka message value (NULL
    when it is not valid JSON; ``try_parse_json`` also rejects NaN and duplicate keys).
    """
    v = variant_col
    version = f"variant_get({v}, '$.{VERSION_FIELD}')"
    is_object = _SPARK_TYPE_TESTS["object"](f"schema_of_variant({v})")
    per_version = " ".join(
        f"WHEN schema_of_variant({version}) IN {_SPARK_INTEGER_TYPES} AND try_variant_get({v}, "
        f"'$.{VERSION_FIELD}', 'bigint') = {n} "
        f"THEN filter(concat({', '.join(_spark_field_errors(field_specs(n), v))}), e -> e IS NOT NULL)"
        for n in SUPPORTED_VERSIONS
    )
    return (
        f"CASE WHEN {v} IS NULL THEN array({_sql_literal(INVALID_JSON)}) "
        f"WHEN NOT ({is_object}) THEN array({_sql_literal(NOT_AN_OBJECT)}) "
        f"WHEN {version} IS NULL THEN array({_sql_literal(VERSION_MISSING)}) "
        f"{per_version} ELSE array({_sql_literal(VERSION_UNSUPPORTED)}) END"
    )


def _union_specs() -> list[FieldSpec]:
    """Fields of every supported version (later versions only add fields), in first-seen order."""
    seen: dict[str, FieldSpec] = {}
    for version in SUPPORTED_VERSIONS:
        for spec in _field_specs(load_schema(version)):
            seen.setdefault(spec.path, spec)
    return list(seen.values())


def _spark_type_name(spec: FieldSpec) -> str:
    json_type = spec.types[0]
    if any(r.kind == TIMESTAMP for r in spec.rules):
        return "timestamp"
    if json_type == "object":
        return (
            "struct<"
            + ", ".join(f"{c.path.rsplit('.', 1)[-1]}: {_spark_type_name(c)}" for c in spec.children)
            + ">"
        )
    return {"string": "string", "integer": "bigint", "number": "double", "boolean": "boolean"}[json_type]


def spark_ddl() -> str:
    """DDL of the union of all versions' fields (v2's ``bitrate_kbps`` is NULL for v1 events)."""
    return ", ".join(f"{spec.path} {_spark_type_name(spec)}" for spec in _union_specs())


def spark_schema() -> Any:
    """The union schema as a pyspark ``StructType`` (for ``from_json``); pyspark is imported lazily."""
    from pyspark.sql.types import StructType

    return StructType.fromDDL(spark_ddl())


def _spark_extract(spec: FieldSpec, variant_col: str) -> str:
    path = _sql_literal(f"$.{spec.path}")
    spark_type = _spark_type_name(spec)
    if spark_type == "timestamp":
        return f"try_cast(try_variant_get({variant_col}, {path}, 'string') AS TIMESTAMP)"
    if spec.children:
        fields = ", ".join(
            f"{_sql_literal(c.path.rsplit('.', 1)[-1])}, {_spark_extract(c, variant_col)}"
            for c in spec.children
        )
        return f"named_struct({fields})"
    return f"try_variant_get({variant_col}, {path}, '{spark_type}')"


def spark_columns_sql(variant_col: str = "v") -> list[str]:
    """``SELECT`` expressions extracting each union field, typed, from a VARIANT column (NULL if invalid)."""
    return [f"{_spark_extract(spec, variant_col)} AS {spec.path}" for spec in _union_specs()]
