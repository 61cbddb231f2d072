"""Turning numpy columns into CSV text with Arrow kernels, in the exact format of the Kaggle files.

pyarrow's ``write_csv`` quotes every string and writes ``true``/``false``; the Kaggle files (pandas
``to_csv``) quote only when needed and write ``True``/``False``. So each column is rendered to an Arrow
string array here (nulls stay null), the row is joined with ``binary_join_element_wise`` (null → empty
field) and the chunk's bytes are the data buffer of the resulting array: every step runs in C++, with
no Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Float → string casts switch to exponent notation from 1e11 on; keep decimals well below that.
_MAX_DECIMAL = 1e10
_MAX_DICTIONARY = 1 << 16
_POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)


def csv_field(value: str) -> str:
    """A value as a CSV field: quoted (quotes doubled) only when it holds a delimiter or a quote."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _mask(null: np.ndarray | None) -> np.ndarray | None:
    return None if null is None or not null.any() else null


def labels(codes: np.ndarray, domain: Sequence[str], null: np.ndarray | None = None) -> pa.Array:
    """Codes 0..k-1 rendered as the domain's labels."""
    dictionary = pa.array([csv_field(v) for v in domain], pa.string())
    return pc.take(dictionary, pa.array(codes, mask=_mask(null)))


def booleans(values: np.ndarray) -> pa.Array:
    return labels(values.astype(np.int8), ("False", "True"))


def integers(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pc.cast(pa.array(values.astype(np.int64), mask=_mask(null)), pa.string())


def integral_floats(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Whole numbers the way pandas writes a float column (one with missing values): ``43.0``."""
    return pc.binary_join_element_wise(integers(values, null), ".0", "")


def decimals(values: np.ndarray, digits: int, null: np.ndarray | None = None) -> pa.Array:
    """Plain decimal notation rounded to ``digits`` places, a whole number as ``105.0`` (as pandas writes a
    float column); never ``-0``, ``NaN`` or an exponent.

    Rounded values in a bounded range take few distinct values, so each is formatted once and the
    column is a ``take`` from that dictionary: 5× cheaper than casting every float (the hottest kernel
    of the generator). ``k / 10**digits`` is exactly the double ``np.round`` gives, so the text is the
    same as a direct cast's.
    """
    units = np.rint(values.astype(np.float64) * 10.0**digits)
    if units.size == 0:
        return pa.array([], pa.string())
    low, high = units.min(), units.max()
    if not (low / 10.0**digits > -_MAX_DECIMAL and high / 10.0**digits < _MAX_DECIMAL):
        raise ValueError(f"values beyond plain-decimal range (|x| < {_MAX_DECIMAL:g}, no NaN): {low}..{high}")
    if high - low > max(_MAX_DICTIONARY, units.size):
        return _with_point(pc.cast(pa.array(units / 10.0**digits + 0.0, mask=_mask(null)), pa.string()))
    dictionary = _with_point(pc.cast(pa.array(np.arange(low, high + 1) / 10.0**digits + 0.0), pa.string()))
    return pc.take(dictionary, pa.array((units - low).astype(np.int64), mask=_mask(null)))


def _with_point(numbers: pa.Array) -> pa.Array:
    """``105`` → ``105.0``: Arrow formats a whole float without its decimal point, pandas with it."""
    whole = pc.invert(pc.match_substring(numbers, "."))
    return pc.if_else(whole, pc.binary_join_element_wise(numbers, ".0", ""), numbers)


def dates(days: np.ndarray) -> pa.Array:
    """Days since 1970-01-01 as ``YYYY-MM-DD``."""
    return pc.cast(pa.array(days.astype(np.int32), pa.date32()), pa.string())


def timestamps(micros: np.ndarray) -> pa.Array:
    """Microseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.ffffff`` (Python's and pandas' notation)."""
    return pc.cast(pa.array(micros.astype(np.int64), pa.timestamp("us")), pa.string())


def identifiers(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + the number zero-padded to ``width`` digits (wider numbers keep all their digits).

    Adding 10**digits puts a leading 1 before the zero-padded digits; replacing that 1 by the prefix
    is one cast and one slice kernel instead of cast, pad and concatenate.
    """
    numbers = numbers.astype(np.int64)
    digits = np.maximum(np.searchsorted(_POWERS_OF_TEN, numbers, side="right"), width)
    padded = pc.cast(pa.array(numbers + _POWERS_OF_TEN[digits]), pa.string())
    return pc.binary_replace_slice(padded, 0, 1, prefix)


def join(*parts: pa.Array | str, separator: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, separator)


def rows(columns: Sequence[pa.Array]) -> pa.Array:
    """One string per row: the fields joined by commas (null → empty field), newline-terminated."""
    # The newline rides on the last field (a cheap pass over one column, not over whole rows).
    last = pc.binary_join_element_wise(columns[-1], "\n", "", null_handling="replace", null_replacement="")
    return pc.binary_join_element_wise(*columns[:-1], last, ",", null_handling="replace", null_replacement="")


def header(columns: Sequence[str]) -> bytes:
    return (",".join(csv_field(c) for c in columns) + "\n").encode()


def buffer_of(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string array without copying them (its data buffer, sliced)."""
    if len(lines) == 0:
        return memoryview(b"")
    if lines.null_count:
        raise ValueError("a CSV row rendered as null; every row must be a string")
    offsets_type = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=offsets_type)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
