"""The row rules (1-9) and value rules of docs/data-quality.md as Spark plans, in two steps.

``single_row_rules`` applies rules 1-7, which look at one row at a time; the job caches its result.
Rules 8-9 compare rows sharing a key, but only keys held by two or more rows that passed 1-7 can be
affected (a few percent of keys). ``repeated_keys`` finds them with a narrow aggregation and
``disputed_rows`` shuffles and sorts just their rows; every other row keeps its rule 1-7 verdict
without moving (shuffling and sorting every wide row by key was the largest cost of a first version).
``silver_rows`` and ``quarantine_rows`` assemble the two outputs from those pieces.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from core.contracts.silver import (
    ENUM_DOMAINS,
    QUARANTINE_FILE,
    QUARANTINE_LINE,
    QUARANTINE_RAW_LINE,
    QUARANTINE_VALUE,
    REASON,
    SOURCE_FILE,
    SOURCE_LINE,
    Kind,
    TableContract,
)
from silver.expressions import canonical, cleaned, is_malformed, parse
from silver.reader import LINE, PARSED, WRONG_TOKEN_COUNT

MALFORMED = "malformed_row"
DUPLICATE_ROW = "duplicate_row"
DUPLICATE_KEY = "duplicate_key"
WATCH_DURATION_OUT_OF_RANGE = "watch_duration_out_of_range"
PROGRESS_OUT_OF_RANGE = "progress_out_of_range"
WATCH_DURATION_RANGE = (0, 1440)
PROGRESS_RANGE = (0, 100)
AGE_RANGE = (5, 110)
SPEND_LIMIT = 1_000.0
RATING_RANGE = (1, 5)
RATING_COLUMNS = {"watch_history": "user_rating", "reviews": "rating"}

_PRE_REASON = "_pre_reason"  # reason from rules 1-7
_RANK = "_rank"  # what decides a key's survivor: bigger wins
_KEPT_LINE = "_raw_line"


def text_column(index: int) -> str:
    """Internal name of a raw column's cleaned text (positional, so no raw name needs quoting)."""
    return f"_t{index}"


def typed_column(index: int) -> str:
    return f"_v{index}"


KnownKeys = list[str] | DataFrame  # a dimension's Silver keys: a literal set, or a one-column frame


def single_row_rules(
    parsed_lines: DataFrame, contract: TableContract, references: Mapping[str, KnownKeys]
) -> DataFrame:
    """Every record with its cleaned text, typed values and ``_pre_reason`` (rules 1-7, or null).

    ``references`` maps a fact column (``user_id``) to the dimension's Silver keys: a list (a literal set
    in the plan, for small dimensions) or a one-column frame (broadcast and joined).
    """
    columns = contract.columns
    texts = [cleaned(F.col(PARSED)[name]).alias(text_column(i)) for i, name in enumerate(columns)]
    malformed = is_malformed(F.col(LINE), F.col(WRONG_TOKEN_COUNT), len(columns))
    rows = parsed_lines.select(LINE, SOURCE_LINE, malformed.alias("_malformed"), *texts)
    typed = [
        parse(contract.kind(name), F.col(text_column(i))).alias(typed_column(i))
        for i, name in enumerate(columns)
        if contract.kind(name) is not Kind.STRING
    ]
    rows = rows.select("*", *typed)
    for ref in contract.references:
        keys, known = references[ref.column], f"_known_{ref.column}"
        own = F.col(text_column(columns.index(ref.column)))
        if isinstance(keys, DataFrame):
            table = keys.select(F.col(ref.column).alias(f"_ref_{ref.column}"), F.lit(True).alias(known))
            rows = rows.join(F.broadcast(table), own == F.col(f"_ref_{ref.column}"), "left")
        else:
            member = is_one_of(text_column(columns.index(ref.column)), keys)
            rows = rows.withColumn(known, F.when(member, F.lit(True)))
    pre_reason = _single_row_reason(contract)
    return rows.select(
        SOURCE_LINE,
        *(text_column(i) for i in range(len(columns))),
        *(typed_column(i) for i, name in enumerate(columns) if contract.kind(name) is not Kind.STRING),
        pre_reason.alias(_PRE_REASON),
        # The raw line only matters for rows rules 1-7 reject (a malformed line's fields mislead);
        # duplicates parsed cleanly, so the others do not carry it.
        F.when(pre_reason.isNotNull(), F.col(LINE)).alias(_KEPT_LINE),
    )


def is_one_of(column: str, values: list[str]) -> Column:
    """``column IN (values)`` parsed by Spark from one SQL text.

    ``Column.isin`` makes one py4j round trip per value: 11,000 for the users and movies of a scale-1
    fact table, 5-6 s of driver time per table before Spark runs anything (profiled; half the scale-1
    Silver step). One text is one call; Spark's optimizer turns the long list into a hash set (InSet)
    either way.
    """
    if not values:
        return F.lit(False)
    literals = ", ".join(_sql_string(value) for value in values)
    return F.expr(f"`{column}` IN ({literals})")


def _sql_string(value: str) -> str:
    """A Spark SQL string literal: backslashes and quotes escaped (the default, non-raw literal syntax)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def repeated_keys(checked: DataFrame, contract: TableContract) -> DataFrame:
    """Keys held by two or more rows that passed rules 1-7: the only rows rules 8-9 can reject."""
    key = _key_column(contract)
    candidates = checked.where(F.col(_PRE_REASON).isNull())
    return candidates.groupBy(key).count().where(F.col("count") > 1).select(key)


def disputed_rows(
    checked: DataFrame, repeated: DataFrame, contract: TableContract, partitions: int, broadcast: bool = True
) -> DataFrame:
    """Candidates (passed rules 1-7) holding a repeated key, with ``reason`` from rules 8-9 or null.

    The only rows that are shuffled: a few percent of the table. ``repeated`` is ``repeated_keys``.
    """
    key = _key_column(contract)
    candidates = checked.where(F.col(_PRE_REASON).isNull())
    contested = candidates.join(F.broadcast(repeated) if broadcast else repeated, key, "left_semi")
    return _deduplicate(contested, contract, partitions)


def _key_column(contract: TableContract) -> str:
    return text_column(contract.columns.index(contract.key))


def _value(contract: TableContract, name: str) -> Column:
    index = contract.columns.index(name)
    kind = contract.kind(name)
    return F.col(text_column(index) if kind is Kind.STRING else typed_column(index))


def _outside(value: Column, bounds: tuple[float, float]) -> Column:
    return (value < bounds[0]) | (value > bounds[1])


def _single_row_reason(contract: TableContract) -> Column:
    """Rules 1-7, first match wins; null when the row may go on to the duplicate rules."""
    columns = contract.columns
    reason = F.when(F.col("_malformed"), F.lit(MALFORMED))
    for name in contract.required:
        reason = reason.when(F.col(text_column(columns.index(name))).isNull(), F.lit(f"missing_{name}"))
    for i, name in enumerate(columns):
        if contract.kind(name) is not Kind.STRING:
            invalid = F.col(text_column(i)).isNotNull() & F.col(typed_column(i)).isNull()
            reason = reason.when(invalid, F.lit(f"invalid_{name}"))
    if contract.name == "watch_history":
        duration = _value(contract, "watch_duration_minutes")
        progress = _value(contract, "progress_percentage")
        reason = reason.when(_outside(duration, WATCH_DURATION_RANGE), F.lit(WATCH_DURATION_OUT_OF_RANGE))
        reason = reason.when(_outside(progress, PROGRESS_RANGE), F.lit(PROGRESS_OUT_OF_RANGE))
    for ref in contract.references:
        reason = reason.when(F.col(f"_known_{ref.column}").isNull(), F.lit(ref.reason))
    return reason


def _deduplicate(rows: DataFrame, contract: TableContract, partitions: int) -> DataFrame:
    """Rules 8 and 9 among candidates (rows that passed 1-7) sharing a key with another candidate."""
    texts = [F.col(text_column(i)) for i in range(len(contract.columns))]
    key = F.col(_key_column(contract))
    # Windows lead with a 64-bit hash of the key: ids share long prefixes ("S0000012..."), which defeats
    # the sorter's 8-byte prefix comparison; a hash prefix almost never ties. The key itself follows, so
    # a hash collision cannot merge two keys.
    rows = rows.select("*", F.xxhash64(key).alias("_key_hash")).repartition(partitions, "_key_hash")
    by_key = [F.col("_key_hash"), key]
    # The one sort this window asks for (key, then every value, then line) also groups each key's rows.
    copies = Window.partitionBy(*by_key, *texts).orderBy(SOURCE_LINE)
    rows = rows.withColumn("_dup_row", F.row_number().over(copies) > 1)
    # Survivor: not an exact copy, then most non-null raw values, then lowest line. Lines are unique, so
    # the max of this struct over the key's rows is exactly one row.
    non_null = sum((t.isNotNull().cast("int") for t in texts), F.lit(0))
    rows = rows.withColumn(
        _RANK, F.struct((~F.col("_dup_row")).alias("unique"), non_null, -F.col(SOURCE_LINE))
    )
    best = F.max(F.col(_RANK)).over(Window.partitionBy(*by_key))
    reason = F.when(F.col("_dup_row"), F.lit(DUPLICATE_ROW)).when(F.col(_RANK) != best, F.lit(DUPLICATE_KEY))
    return rows.withColumn(REASON, reason)


def _silver_columns(contract: TableContract, source_key: str) -> dict[str, Column]:
    """Every Silver column by name, typed and value-ruled (``contract.silver_columns`` gives the order)."""
    out: dict[str, Column] = {}
    for name in contract.columns:
        value = _value(contract, name)
        if name in ENUM_DOMAINS:
            value = canonical(value, ENUM_DOMAINS[name])
        if contract.name == "users" and name == "age":
            value = F.when(~_age_flagged(contract), value)
        if RATING_COLUMNS.get(contract.name) == name:
            value = F.when(value.between(*RATING_RANGE), value)
        out[name] = value.cast(contract.kind(name).value)
    if contract.name == "users":
        spend = _value(contract, "monthly_spend")
        out["age_flagged"] = _age_flagged(contract)
        out["monthly_spend_flagged"] = F.coalesce((spend < 0) | (spend > SPEND_LIMIT), F.lit(False))
    if contract.name == "watch_history":
        out["watch_month"] = F.date_format(_value(contract, "watch_date"), "yyyy-MM")
    out[SOURCE_FILE] = F.lit(source_key)
    out[SOURCE_LINE] = F.col(SOURCE_LINE)
    return out


def _age_flagged(contract: TableContract) -> Column:
    """Outside 5-110 is flagged; a missing age is not."""
    return F.coalesce(_outside(_value(contract, "age"), AGE_RANGE), F.lit(False))


def silver_rows(
    checked: DataFrame,
    repeated: DataFrame | None,
    disputed: DataFrame | None,
    contract: TableContract,
    source_key: str,
    broadcast: bool = True,
) -> DataFrame:
    """Rows that passed rules 1-7 with a key no other candidate holds, plus each repeated key's survivor."""
    kept = checked.where(F.col(_PRE_REASON).isNull())
    if repeated is not None and disputed is not None:
        kept = kept.join(F.broadcast(repeated) if broadcast else repeated, _key_column(contract), "left_anti")
        kept = kept.unionByName(disputed.where(F.col(REASON).isNull()).select(*kept.columns))
    columns = _silver_columns(contract, source_key)
    return kept.select(*(columns[name].alias(name) for name in contract.silver_columns))


def quarantine_rows(
    checked: DataFrame, disputed: DataFrame | None, contract: TableContract, source_key: str
) -> DataFrame:
    """Raw values as cleaned text plus the reason, the text that made it fire and where the record was."""
    rejected = checked.where(F.col(_PRE_REASON).isNotNull()).withColumn(REASON, F.col(_PRE_REASON))
    if disputed is not None:
        rejected = rejected.unionByName(disputed.where(F.col(REASON).isNotNull()).select(*rejected.columns))
    texts = [F.col(text_column(i)).alias(name) for i, name in enumerate(contract.columns)]
    return rejected.select(
        *texts,
        F.col(REASON),
        _rejected_value(contract).alias(QUARANTINE_VALUE),
        F.lit(source_key).alias(QUARANTINE_FILE),
        F.col(SOURCE_LINE).alias(QUARANTINE_LINE),
        F.col(_KEPT_LINE).alias(QUARANTINE_RAW_LINE),
    )


def _rejected_value(contract: TableContract) -> Column:
    """The text a rule judged: the field of rules 3-5, the id of an orphan, the key of a duplicate.

    Null for rule 1 (the raw line says more) and rule 2 (the value is missing).
    """
    columns = contract.columns
    judged = {f"invalid_{name}": name for name in columns if contract.kind(name) is not Kind.STRING}
    if contract.name == "watch_history":
        judged[WATCH_DURATION_OUT_OF_RANGE] = "watch_duration_minutes"
        judged[PROGRESS_OUT_OF_RANGE] = "progress_percentage"
    judged |= {ref.reason: ref.column for ref in contract.references}
    judged |= {DUPLICATE_ROW: contract.key, DUPLICATE_KEY: contract.key}
    value: Column | None = None
    for reason, name in judged.items():
        match, text = F.col(REASON) == F.lit(reason), F.col(text_column(columns.index(name)))
        value = F.when(match, text) if value is None else value.when(match, text)
    assert value is not None, "every table has a key"
    return value
