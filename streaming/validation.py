"""Validating raw Kafka messages: parse once in Spark, keep every message, name why one is rejected.

The rules are not restated here: they come from the JSON Schema files through :mod:`core.contracts.events`,
the one validator the producer and the stream share. Validation has two paths, because evaluating every rule
of the schema over a parsed VARIANT cost ~10 µs per message in Spark, the largest share of the stream's CPU
(``docs/benchmarks.md``, speed layer):

1. the **canonical path**, in Spark, for nearly every message (:func:`canonical_valid_sql`):
   ``from_json`` reads the message into the schema's types, ``to_json`` writes it back, and a message
   that comes back byte for byte is the canonical encoding of a typed event: every field of its version
   present with its declared JSON type, no other field, no duplicate key, no stray token. Only the value
   rules (enum, range, pattern, timestamp, length) remain, checked on the typed columns. Our producer
   writes exactly this encoding (``orjson``, schema order, nulls kept);
2. every other message (poison, an encoding of another producer) is judged in the driver by the shared
   **Python** validator, :func:`core.contracts.events.validate_message`, which also names the reasons of every
   rejected message. At the usual few per cent this costs far less than a second Spark pass; a producer
   that never writes the canonical encoding would make every message take this path (~30 µs each), so
   each batch reports how many did.

Legacy v0 events (the original pipeline's producer, :mod:`core.contracts.legacy_v0`) are mapped by the Kafka
source, which hands over each valid one in our encoding as ``legacy_event``: Spark parses that instead of the
raw bytes and counts it as proven (the mapping validated it), so a v0 stream costs the source's Python
mapping (about twice the Python validator's time per message, spread over the executors' cores) and
nothing in the driver. A v0 message the mapping
rejects arrives without ``legacy_event`` and is judged, and its reasons named, like any other.

The canonical path never accepts a message the Python validator rejects: ``tests/test_streaming_validation
.py`` checks it on every schema test case in both encodings and on every fault kind. One rule is the
stream's own: an ``event_time`` more than an hour after the message's Kafka timestamp is rejected
(``event_time_in_future``), because a single far-future event would otherwise drag the watermark forward
and turn every following event into a late one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.contracts import events, legacy_v0
from streaming.kafka_source import LEGACY_COLUMN

FUTURE_TOLERANCE_S = 3600
JSON_COLUMN = "_json"
CANONICAL = "canonical"
EVENT_IN_FUTURE = "event_time: more than 1 hour after the message's Kafka timestamp"
EVENT_COLUMNS: tuple[str, ...] = tuple(
    expr.rsplit(" AS ", 1)[1] for expr in events.spark_columns_from_struct_sql(JSON_COLUMN)
)  # union of all schema versions' fields, in schema order


@cache
def reason_codes() -> dict[str, str]:
    """Error message → reason code, for every message the validators can emit."""
    codes = {
        events.INVALID_JSON: "invalid_json",
        events.NOT_AN_OBJECT: "invalid_json",
        events.VERSION_MISSING: "missing_schema_version",
        events.VERSION_UNSUPPORTED: "unsupported_schema_version",
        legacy_v0.V0_REJECTED: "legacy_v0_disabled",
        EVENT_IN_FUTURE: "event_time_in_future",
    }
    for version in (*events.SUPPORTED_VERSIONS, events.LEGACY_VERSION):
        for rule in events.rules(version):
            name = rule.field.replace(".", "_")
            missing = rule.kind in (events.REQUIRED, events.NOT_NULL)
            codes.setdefault(rule.message, f"{'missing' if missing else 'invalid'}_{name}")
    for spec in events.field_specs(events.LEGACY_VERSION):  # a bare NaN where v0 requires a value
        for token in legacy_v0.NON_FINITE_TOKENS:
            codes.setdefault(legacy_v0.non_finite_error(spec.path, token), f"missing_{spec.path}")
    return codes


def reason_code(message: str) -> str:
    """The short code of one error message (``missing_user_id``, ``invalid_json`` …)."""
    return reason_codes().get(message, "invalid_event")


# -- Spark: parse and the canonical path ----------------------------------------------------------------
def parse_messages(raw: DataFrame) -> DataFrame:
    """Raw Kafka rows (``streaming.kafka_source.SCHEMA``) → the same rows without ``legacy_event``, plus
    the typed event fields and :data:`CANONICAL` (boolean).

    ``canonical`` TRUE means the message is proven schema-valid (:func:`canonical_valid_sql`, or a legacy
    v0 event the source mapped); FALSE means unproven, to be judged by :func:`judge` in the driver. The
    typed fields come from ``from_json`` of the message (of its mapped event for v0), which reads a valid
    event exactly as a strict parser would; for invalid messages they are meaningless (dead letters keep
    the raw bytes). The JSON struct is its own projection so Spark parses each message once: the optimizer
    does not inline an expensive column used more than once.
    """
    if LEGACY_COLUMN not in raw.columns:
        raise ValueError(
            f"the raw frame has no {LEGACY_COLUMN!r} column: a source must give the Kafka source's columns "
            "(streaming.kafka_source.SCHEMA; null where no message is a legacy v0 event)"
        )
    legacy = F.col(LEGACY_COLUMN)
    text = F.coalesce(legacy, F.col("value")).cast("string")
    parsed = raw.withColumn(JSON_COLUMN, F.from_json(text, events.spark_ddl(timestamps=False)))
    return parsed.select(
        *[c for c in raw.columns if c != LEGACY_COLUMN],
        *[F.expr(e) for e in events.spark_columns_from_struct_sql(JSON_COLUMN)],
        (legacy.isNotNull() | F.expr(canonical_valid_sql())).alias(CANONICAL),
    )


@cache
def canonical_valid_sql(json_col: str = JSON_COLUMN, value_rules: bool = True) -> str:
    """TRUE when the message is the canonical encoding of a schema-valid event, else FALSE (never NULL).

    Needs ``json_col`` = ``from_json(CAST(value AS STRING), spark_ddl(timestamps=False))``. Per
    version, the fields are written back in that version's schema order with nulls kept. Coming back
    byte for byte proves every field of the version is present with its declared JSON type (a number
    where a string belongs would come back quoted, an absent field as ``null``, ``5`` for a number as
    ``5.0``) and that nothing else is there; what is left are the null and value rules
    (``value_rules=False`` leaves them out: the round trip alone, for tests).
    """
    text = "CAST(value AS STRING)"
    branches = []
    for n in events.SUPPORTED_VERSIONS:
        written = (
            f"to_json({_named_struct_sql(events.load_schema(n), json_col)}, map('ignoreNullFields', 'false'))"
        )
        rules = (
            " AND ".join(_field_ok_sql(spec, json_col) for spec in events.field_specs(n))
            if value_rules
            else "true"
        )
        branches.append(f"WHEN {n} THEN {written} = {text} AND {rules}")
    return f"coalesce(CASE {json_col}.{events.VERSION_FIELD} {' '.join(branches)} END, false)"


def _named_struct_sql(schema: dict[str, Any], prefix: str) -> str:
    """The struct at ``prefix`` rebuilt with the schema's properties, in the schema's order."""
    fields = []
    for name, prop in schema["properties"].items():
        ref = f"{prefix}.{name}"
        fields.append(f"'{name}', {_named_struct_sql(prop, ref) if 'properties' in prop else ref}")
    return f"named_struct({', '.join(fields)})"


def _field_ok_sql(spec: events.FieldSpec, json_col: str) -> str:
    """The field's null and value rules on its typed value (the round trip proved presence and type)."""
    col = f"{json_col}.{spec.path}"
    violations = [
        events.spark_value_violation(rule, f"CAST({col} AS DOUBLE)" if rule.kind == events.RANGE else col)
        for rule in spec.rules
        if rule.kind in events.VALUE_RULE_KINDS
    ]
    ok = [f"NOT ({' OR '.join(violations)})"] if violations else []
    ok += [_field_ok_sql(child, json_col) for child in spec.children]
    value_ok = " AND ".join(ok) or "true"
    return f"({col} IS NULL OR ({value_ok}))" if spec.nullable else f"({col} IS NOT NULL AND {value_ok})"


# -- driver: the verdict on every message -------------------------------------------------------------
@dataclass(frozen=True)
class Verdicts:
    """The verdict on every message of a batch (in the batch's row order)."""

    valid: pa.Array  # bool, never null
    errors: dict[int, list[str]]  # row index → errors, for every invalid row
    non_canonical: int  # messages the Python validator had to judge
    legacy_v0: pa.Array  # bool, never null: a valid legacy v0 event (its schema_version reads 0)

    def errors_of(self, rows: pa.Array) -> list[list[str]]:
        """The errors of the given (invalid) row indices, in that order."""
        return [self.errors[i] for i in rows.to_pylist()]


def judge(rows: pa.Table, accept_v0: bool = True) -> Verdicts:
    """Final validity of each message of ``rows`` (``value``, ``timestamp``, ``event_time``,
    ``schema_version``, ``canonical``).

    Canonical messages are schema-valid; the others go through the shared Python validator, with the v0
    mapping on or off as the source had it (a valid v0 event never gets here: the source mapped it, so
    here the mapping only names why a v0 message is rejected). Then the stream's future rule applies to
    every schema-valid message.
    """
    schema_valid = np.array(pc.fill_null(rows.column(CANONICAL), False).to_numpy(zero_copy_only=False), bool)
    errors: dict[int, list[str]] = {}
    unproven = np.flatnonzero(~schema_valid)
    values = rows.column("value").take(pa.array(unproven)).to_pylist()
    for index, value in zip(unproven.tolist(), values, strict=True):
        found = events.validate_message(value or b"", accept_v0)
        if found:
            errors[index] = found
        else:
            schema_valid[index] = True
    limit = pc.add(rows.column("timestamp"), pa.scalar(FUTURE_TOLERANCE_S * 1_000_000, pa.duration("us")))
    ahead = pc.fill_null(pc.greater(rows.column("event_time"), limit), False).to_numpy(zero_copy_only=False)
    for index in np.flatnonzero(schema_valid & ahead).tolist():
        errors[index] = [EVENT_IN_FUTURE]
    valid = schema_valid & ~ahead
    version = pc.fill_null(pc.equal(rows.column(events.VERSION_FIELD), events.LEGACY_VERSION), False)
    legacy = valid & np.asarray(version.to_numpy(zero_copy_only=False), bool)
    return Verdicts(
        valid=pa.array(valid, pa.bool_()),
        errors=errors,
        non_canonical=len(unproven),
        legacy_v0=pa.array(legacy, pa.bool_()),
    )
