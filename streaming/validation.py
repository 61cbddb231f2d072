"""Validating raw Kafka messages inside Spark: parse once, keep every message, name why one is rejected.

The rules are not restated here: they come from the JSON Schema files through :mod:`producer.events`,
whose :func:`~producer.events.spark_errors_sql` evaluates the same ordered rule list as the producer's
Python validator, so a message is rejected for the same reason on both sides. This module adds only what
is specific to the stream:

* a short **reason code** per message (``invalid_json``, ``missing_<field>``, ``invalid_<field>``,
  ``unsupported_schema_version`` …), taken from the first error, next to the full error list;
* one rule the schema cannot express: an ``event_time`` more than an hour after the message's Kafka
  timestamp is rejected (``event_time_in_future``), because a single far-future event would otherwise
  drag the watermark forward and turn every following event into a late one;
* a **fast path**: the exact rule expression is large (one CASE per field and rule) and costs about
  10 µs per message in Spark; a cheap check that only ever accepts messages the exact rules accept lets
  the exact expression run for the few messages that fail it (see :func:`fast_valid_sql`).
"""

from __future__ import annotations

import re
from functools import cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from producer import events

FUTURE_TOLERANCE_S = 3600
FIELDS_COLUMN = "_fields"
SCHEMA_VALID = "schema_valid"
EVENT_IN_FUTURE = "event_time: more than 1 hour after the message's Kafka timestamp"
EVENT_COLUMNS: tuple[str, ...] = tuple(
    expr.rsplit(" AS ", 1)[1] for expr in events.spark_columns_sql("v")
)  # union of all schema versions' fields, in schema order


@cache
def reason_codes() -> dict[str, str]:
    """Error message → reason code, for every message the validators can emit."""
    codes = {
        events.INVALID_JSON: "invalid_json",
        events.NOT_AN_OBJECT: "invalid_json",
        events.VERSION_MISSING: "missing_schema_version",
        events.VERSION_UNSUPPORTED: "unsupported_schema_version",
        EVENT_IN_FUTURE: "event_time_in_future",
    }
    for version in events.SUPPORTED_VERSIONS:
        for rule in events.rules(version):
            name = rule.field.replace(".", "_")
            missing = rule.kind in (events.REQUIRED, events.NOT_NULL)
            codes.setdefault(rule.message, f"{'missing' if missing else 'invalid'}_{name}")
    return codes


def reason_code(message: str) -> str:
    """The code of one error message (Python side, for tests and tools)."""
    return reason_codes().get(message, "invalid_event")


def _code_of(first_error: Column) -> Column:
    mapping = F.create_map(*[F.lit(item) for pair in reason_codes().items() for item in pair])
    return F.when(first_error.isNotNull(), F.coalesce(mapping[first_error], F.lit("invalid_event")))


def parse_messages(raw: DataFrame) -> DataFrame:
    """Raw Kafka rows → the same rows plus the typed event fields and ``valid`` (boolean).

    ``valid`` is TRUE exactly when the message is a schema-valid event not dated in the future; the reason
    of an invalid one is computed by :func:`with_errors`, only for those rows. Splitting it that way keeps
    this projection small enough for Spark's code generator: with the exact error expression inlined,
    compiling the stage fails and Spark falls back to interpreting every row (3x slower).
    """
    parsed = (
        raw.withColumn("v", _message()).withColumn(FIELDS_COLUMN, F.expr(fields_struct_sql("v"))).drop("v")
    )
    typed = parsed.select("*", *[F.expr(e) for e in _typed_columns_sql()])
    schema_valid = F.expr(fast_valid_on_typed_sql())
    return (
        typed.withColumn(SCHEMA_VALID, schema_valid)
        .withColumn("valid", F.col(SCHEMA_VALID) & ~F.coalesce(_in_future(), F.lit(False)))
        .drop(FIELDS_COLUMN)
    )


@cache
def _typed_columns_sql() -> tuple[str, ...]:
    """``<expression> AS <field>`` per event field, reading the pre-extracted top-level fields."""
    return tuple(_rewrite_paths(e, "v") for e in events.spark_columns_sql("v"))


@cache
def fast_valid_on_typed_sql() -> str:
    """:func:`fast_valid_sql` reading the typed columns where a rule extracts exactly what they hold.

    Many rules cast a field exactly as its typed column does (``try_variant_get(f, '$', 'string')``,
    the timestamp ``try_cast`` …); the same cast evaluated again inside the rule's CASE cost ~1.7 µs per
    event, 13 % of parsing and validation. The result is the same boolean (tests compare both forms).
    """
    sql = fast_valid_sql("v")
    extractions = [expr.rsplit(" AS ", 1) for expr in _typed_columns_sql()]
    for expression, name in sorted(extractions, key=lambda pair: -len(pair[0])):
        if not expression.startswith("named_struct"):
            sql = sql.replace(expression, f"`{name}`")
    return sql


def _message() -> Column:
    """The message as VARIANT; NULL unless UTF-8 text holding strict JSON (no NaN, no duplicate keys)."""
    return F.when(
        F.expr("is_valid_utf8(CAST(value AS STRING))"), F.expr("try_parse_json(CAST(value AS STRING))")
    )


def _in_future() -> Column:
    return F.col("event_time") > F.col("timestamp") + F.expr(f"INTERVAL {FUTURE_TOLERANCE_S} SECONDS")


def python_errors(value: bytes | None, schema_valid: bool) -> list[str]:
    """The errors of one rejected message, by the producer's own Python validator (same rules, same
    texts as the Spark expression; tests keep them equal). ``schema_valid`` rows were rejected by the
    stream's future-time rule."""
    errors = events.validate_message(value or b"")
    if errors:
        return errors
    if schema_valid:
        return [EVENT_IN_FUTURE]
    return ["event: rejected by the Spark rules but accepted by the Python validator (report this)"]


def with_errors(parsed: DataFrame) -> DataFrame:
    """Adds ``errors`` (array, exact messages of the shared validator) and ``reason`` (code of the first).

    Meant for the invalid rows only (dead letters): the exact expression parses the message again and is
    too large for code generation, which is fine for the few rows that need it.
    """
    exact = F.expr(events.spark_errors_sql("__message"))
    errors = (
        F.when(~F.col(SCHEMA_VALID), exact)
        .when(F.coalesce(_in_future(), F.lit(False)), F.array(F.lit(EVENT_IN_FUTURE)))
        .otherwise(F.array().cast("array<string>"))
    )
    with_message = parsed.withColumn("__message", _message())
    return (
        with_message.withColumn("errors", errors)
        .withColumn("reason", _code_of(F.get(F.col("errors"), 0)))
        .drop("__message")
    )


def fields_struct_sql(variant_col: str = "v") -> str:
    """The event's top-level fields, each still a VARIANT, cut out of the message in one pass.

    Casting to a struct succeeds exactly for JSON objects and looks each field up once; the rules then
    read a small per-field value instead of searching the whole message again for every rule.
    """
    names = sorted(
        {spec.path for version in events.SUPPORTED_VERSIONS for spec in events.field_specs(version)}
    )
    names = [events.VERSION_FIELD, *names]
    return f"try_variant_get({variant_col}, '$', 'struct<{', '.join(f'{n}: variant' for n in names)}>')"


def _rewrite_paths(sql: str, v: str) -> str:
    """Rewrite ``variant_get(v, '$.<top>[.rest]' …)`` calls to read the pre-extracted top-level field."""
    rewritten = re.sub(
        rf"\({re.escape(v)}, '\$\.([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+)*)'",
        lambda m: f"({FIELDS_COLUMN}.{m.group(1)}, '${m.group(2)}'",
        sql,
    )
    if f"({v}, " in rewritten:
        raise AssertionError(f"SQL reads the message in a way the fast path cannot rewrite: {sql}")
    # ``variant_get(f, '$')`` without a type is ``f`` itself, but Spark evaluates it by copying the value,
    # several times per rule; reading the pre-extracted field directly is the same value for free.
    return re.sub(rf"(?<!try_)variant_get\(({FIELDS_COLUMN}\.[A-Za-z0-9_]+), '\$'\)", r"\1", rewritten)


def _violation_sql(rule: events.Rule, v: str) -> str:
    """The rule's own violation SQL (``producer.events``) on the pre-extracted field, except one cheaper
    equivalent: "is an object" is tested by casting to a struct (which succeeds exactly for objects)
    instead of computing ``schema_of_variant`` of the whole value (~20 µs per nested object)."""
    if rule.kind == events.TYPE and tuple(rule.params["types"]) == ("object",):
        sql = f"try_variant_get({v}, '$.{rule.field}', 'struct<__is_object: variant>') IS NULL"
    else:
        sql = events._spark_violation(rule, v)
    return _rewrite_paths(sql, v)


def _field_bad_sql(spec: events.FieldSpec, v: str) -> str:
    """TRUE when the field fails any of its rules, mirroring ``events._spark_field_errors``."""
    raw = _rewrite_paths(f"variant_get({v}, '$.{spec.path}')", v)
    skip = f"{raw} IS NULL" + (f" OR is_variant_null({raw})" if spec.nullable else "")
    branches: list[str] = []
    for rule in spec.rules:
        if rule.kind != events.REQUIRED and not branches:
            branches.append(f"WHEN {skip} THEN false")
        branches.append(f"WHEN {_violation_sql(rule, v)} THEN true")
    bad = f"CASE {' '.join(branches)} ELSE false END"
    if spec.children:
        children = " OR ".join(_field_bad_sql(child, v) for child in spec.children)
        bad = f"({bad} OR ({raw} IS NOT NULL AND NOT is_variant_null({raw}) AND ({children})))"
    return bad


@cache
def fast_valid_sql(variant_col: str = "v") -> str:
    """TRUE exactly when :func:`producer.events.spark_errors_sql` would return no error.

    Needs the column :data:`FIELDS_COLUMN` = :func:`fields_struct_sql`. The same rules as the exact
    expression (built from the same rule list and the same per-rule SQL), but as one boolean over
    pre-extracted fields: the exact form searches the whole message for each of ~60 rules and computes
    ``schema_of_variant`` of the whole message, about 10x slower, so it only runs for the few messages
    this one rejects, to name their reason. ``tests/test_streaming_validation.py`` checks the two agree.
    """
    v = variant_col
    version = f"{FIELDS_COLUMN}.{events.VERSION_FIELD}"
    number = f"try_variant_get({version}, '$', 'bigint')"
    integer = f"schema_of_variant({version}) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT')"
    supported = ", ".join(map(str, events.SUPPORTED_VERSIONS))
    return (
        f"coalesce({FIELDS_COLUMN} IS NOT NULL AND {version} IS NOT NULL AND {integer} "
        f"AND {number} IN ({supported}) AND NOT ({' OR '.join(_bad_in_any_version(v, number))}), false)"
    )


def _bad_in_any_version(v: str, version_number: str) -> list[str]:
    """One condition per field of any version. A field whose rules are the same in every version that has
    it is checked once (guarded by those versions) instead of once per version: v1 and v2 share all but
    one field, so this halves the expression, and the JVM only compiles methods below a size limit."""
    by_path: dict[str, list[tuple[int, events.FieldSpec]]] = {}
    for n in events.SUPPORTED_VERSIONS:
        for spec in events.field_specs(n):
            by_path.setdefault(spec.path, []).append((n, spec))
    conditions = []
    for entries in by_path.values():
        versions = [n for n, _ in entries]
        if all(spec == entries[0][1] for _, spec in entries):
            bad = _field_bad_sql(entries[0][1], v)
            if len(versions) == len(events.SUPPORTED_VERSIONS):
                conditions.append(bad)
            else:
                conditions.append(f"({version_number} IN ({', '.join(map(str, versions))}) AND {bad})")
        else:
            branches = " ".join(f"WHEN {n} THEN {_field_bad_sql(spec, v)}" for n, spec in entries)
            conditions.append(f"CASE {version_number} {branches} ELSE false END")
    return conditions
