"""Spark SQL expressions for the value-level rules of docs/data-quality.md.

Everything here is a plain Column expression (regex, try_cast, CASE), never a Python UDF: the JVM
evaluates it in whole-stage codegen, with no row ever crossing into Python. ``try_cast`` alone is too
lenient for the contract (it accepts ``1e5``, ``NaN``, ``2024-1-5``), so each type is guarded by a
regex that states the accepted notation first. Null tokens (``NaN``, ``NULL``, ``None`` …) never reach a
parser: :func:`cleaned` makes them null first.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from core.contracts.silver import Kind
from core.contracts.tokens import DECIMAL_NOTATION, FALSE_TOKENS, INT_NOTATION, NULL_TOKENS, TRUE_TOKENS

# Patterns end in \z, not $: Java's $ also matches before a final line break, which a value from a quoted
# field spanning lines may end with.
INT_PATTERN = rf"^{INT_NOTATION}\z"
DECIMAL_PATTERN = rf"^{DECIMAL_NOTATION}\z"
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# ISO 8601 as exports write it: T or a space, optional fraction up to microseconds, optional zone.
_TIME = r"[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
DATE_PATTERN = rf"^{_DAY}({_TIME})?\z"
TIMESTAMP_PATTERN = rf"^{_DAY}{_TIME}\z"
REPLACEMENT_CHARACTER = "\ufffd"  # what the reader's make_valid_utf8 puts in place of invalid bytes
# Spellings the CASEs below match without lower(): nearly every value, at a set lookup's cost.
_TRUE_SPELLINGS = tuple({t for token in TRUE_TOKENS for t in (token, token.upper(), token.capitalize())})
_FALSE_SPELLINGS = tuple({t for token in FALSE_TOKENS for t in (token, token.upper(), token.capitalize())})


def cleaned(value: Column) -> Column:
    """Trimmed text, with an empty string or a null token (``NaN``, ``NULL`` …) as null."""
    trimmed = F.trim(value)
    return F.when(~trimmed.isin("", *NULL_TOKENS), trimmed)


def parse(kind: Kind, text: Column) -> Column:
    """The typed value of cleaned text, or null when it does not parse (rule 3 compares the two)."""
    if kind is Kind.STRING:
        return text
    if kind is Kind.INT:
        digits = F.regexp_replace(text, r"\.0*\z", "")
        return F.when(text.rlike(INT_PATTERN), digits.try_cast("int"))
    if kind is Kind.DOUBLE:
        return F.when(text.rlike(DECIMAL_PATTERN), text.try_cast("double"))
    if kind is Kind.BOOLEAN:
        lowered = F.lower(text)
        return (
            F.when(text.isin(*_TRUE_SPELLINGS), F.lit(True))
            .when(text.isin(*_FALSE_SPELLINGS), F.lit(False))
            .when(lowered.isin(*TRUE_TOKENS), F.lit(True))
            .when(lowered.isin(*FALSE_TOKENS), F.lit(False))
        )
    if kind is Kind.DATE:
        # The calendar date as written; a time part, if any, must be a valid time (try_cast checks both,
        # 2024-02-30 and 25:00:00 are null). The regex states the notation.
        valid_time = (F.length(text) == F.lit(10)) | text.try_cast("timestamp").isNotNull()
        return F.when(text.rlike(DATE_PATTERN) & valid_time, F.substring(text, 1, 10).try_cast("date"))
    if kind is Kind.TIMESTAMP:
        # try_cast to TIMESTAMP applies a zone or offset and reads a zone-less value in the session's
        # time zone (UTC, set by the job); Silver keeps the UTC wall time (the cast to timestamp_ntz).
        return F.when(text.rlike(TIMESTAMP_PATTERN), text.try_cast("timestamp").cast("timestamp_ntz"))
    raise ValueError(f"no parser for {kind}")


def canonical(text: Column, domain: tuple[str, ...]) -> Column:
    """The domain's spelling of a case-insensitive match; anything else stays as it is (trimmed)."""
    lowered = F.lower(text)
    respelled: Column | None = None
    for value in domain:
        match, spelling = lowered == F.lit(value.lower()), F.lit(value)
        respelled = F.when(match, spelling) if respelled is None else respelled.when(match, spelling)
    assert respelled is not None, "an enumeration needs a domain"
    # Nearly every value is already canonical: one set lookup spares the lower() and the CASE.
    return F.when(text.isin(*domain), text).otherwise(respelled.otherwise(text))


def unquoted(line: Column) -> Column:
    """The line with every closed double-quoted section removed; a quote left over is an unclosed one."""
    return F.regexp_replace(line, r'"[^"]*"', "")


def is_malformed(line: Column, wrong_token_count: Column, expected_fields: int) -> Column:
    """Rule 1: wrong number of fields, an unclosed quote, or bytes that were not valid UTF-8.

    Counting commas costs as much as parsing the line, so for the usual line without quotes the count
    comes free from ``from_csv`` (``wrong_token_count``: its corrupt-record column, set when the line
    has more or fewer fields than the schema; a blank line is the one case it lets through). A line
    with quotes is counted by the contract's own definition instead: 1 + commas outside quoted sections.
    """
    rest = unquoted(line)
    quoted_count_wrong = (
        F.length(rest) - F.length(F.replace(rest, F.lit(","), F.lit(""))) + 1 != F.lit(expected_fields)
    ) | rest.contains('"')
    count_wrong = F.when(line.contains('"'), quoted_count_wrong).otherwise(
        wrong_token_count | (line == F.lit(""))
    )
    return count_wrong | line.contains(REPLACEMENT_CHARACTER)
