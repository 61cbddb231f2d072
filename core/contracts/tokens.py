"""How raw text spells a boolean, a number and a missing value: one statement for Silver's rules, the raw-CSV
fallback of the stream and docs/data-quality.md (the reference re-transcribes them from the doc)."""

from __future__ import annotations

TRUE_TOKENS: tuple[str, ...] = ("true", "t", "yes", "y", "1")
FALSE_TOKENS: tuple[str, ...] = ("false", "f", "no", "n", "0")
# Spellings of "no value" that exports write instead of an empty field: pandas (NaN for a missing number),
# Python's str(None), SQL and JSON dumps. Matched exactly, after trimming; any column, any type.
NULL_TOKENS: tuple[str, ...] = ("NaN", "nan", "NULL", "null", "None")
# Number notations (regular expressions matched against the whole trimmed text): plain decimal, and an
# integer optionally followed by a fraction of zeros (``43.0``, as pandas writes a whole-number float).
DECIMAL_NOTATION = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
INT_NOTATION = r"[+-]?[0-9]+(\.0*)?"
