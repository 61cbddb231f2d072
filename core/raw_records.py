"""How a raw CSV divides into records: the line and record model of docs/data-quality.md ("Reading").

Lines end at ``\\n`` (a ``\\r`` before it is dropped). A record is one line, unless the line holds an odd
number of double quotes: then it opens a quoted field that holds line breaks, and the record runs to the
next line with an odd number of quotes, provided that line is fewer than :data:`MAX_RECORD_LINES` lines
further and the joined lines have the header's number of fields (1 + the commas outside double-quoted
sections). Otherwise the odd line is a record by itself, which rule 1 then rejects for its unclosed quote,
and reading resumes on the next line: a stray quote costs one row, never the rows after it. A record's
source line is its first line. Blank lines (nothing but spaces, tabs or ``\\r``) after the last non-blank
line are not records; a blank line before it is (rule 1 rejects it).

:func:`scan_records` learns all of that in one streamed pass over the file's (decompressed) bytes, in
bounded memory, so Spark never needs a job of its own to number lines: lines without quotes (nearly all)
are only counted, and the few with an odd number of quotes are resolved here. It also counts the newlines
before every ``split_bytes`` boundary, from which the Silver reader numbers the lines of each file split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

MAX_RECORD_LINES = 100
CHUNK_BYTES = 8 << 20
_BLANK = b" \t\r\n"
_QUOTED_SECTION = re.compile(rb'"[^"]*"')


@dataclass
class RecordLayout:
    """Where a file's records are: enough to number Spark's lines and to count rows without Spark."""

    header: bytes  # the first line, without its line end (empty for an empty file)
    physical_lines: int  # header included; a last line without a newline counts
    trailing_blank_lines: int
    spans: list[tuple[int, int]] = field(default_factory=list)  # (first, last) line of multi-line records
    split_bytes: int = 0
    newlines_before_split: list[int] = field(default_factory=list)  # before byte k * split_bytes
    text_bytes: int = 0  # decompressed size

    @property
    def last_line(self) -> int:
        """The last line that can hold a record (trailing blank lines excluded)."""
        return self.physical_lines - self.trailing_blank_lines

    @property
    def continuation_lines(self) -> int:
        """Lines that belong to a record started on an earlier line."""
        return sum(last - first for first, last in self.spans)

    @property
    def data_records(self) -> int:
        """Rows of the file: records after the header."""
        return max(self.last_line - 1, 0) - self.continuation_lines

    def first_line_of_split(self) -> dict[int, int]:
        """Byte offset of each split → number of the first line a Hadoop line reader emits for it.

        A reader of the split starting at byte S > 0 skips through the first newline at or after S (that
        line belongs to the previous split), so its first line is newlines-before-S + 2; at S = 0 it is 1.
        """
        return {
            k * self.split_bytes: (before + 2 if k else 1)
            for k, before in enumerate(self.newlines_before_split)
            if k * self.split_bytes < max(self.text_bytes, 1)
        }


def field_count(record: bytes) -> int | None:
    """1 + the commas outside double-quoted sections; None when a quote is left unclosed."""
    rest = _QUOTED_SECTION.sub(b"", record)
    return None if b'"' in rest else rest.count(b",") + 1


class _RecordScanner:
    """The state of one pass: counts per byte chunk, multi-line records per buffer of complete lines."""

    def __init__(self, fields: int | None, split_bytes: int, max_lines: int) -> None:
        self.fields, self.split_bytes, self.max_lines = fields, split_bytes, max_lines
        self.position = self.newlines = self.trailing_blank = 0
        self.newlines_before_split = [0]
        self.header: bytes | None = None
        self.carry = b""  # an incomplete last line
        self.pending = b""  # complete lines from an odd line whose partner may follow
        self.pending_first = 0
        self.next_line = 1  # number of the first line of the next buffer of complete lines
        self.spans: list[tuple[int, int]] = []

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        end = self.position + len(chunk)
        boundary = len(self.newlines_before_split) * self.split_bytes
        while self.split_bytes and boundary <= end:
            self.newlines_before_split.append(self.newlines + chunk.count(b"\n", 0, boundary - self.position))
            boundary += self.split_bytes
        self.newlines += chunk.count(b"\n")
        self.position = end
        data = self.carry + chunk
        cut = data.rfind(b"\n") + 1
        self.carry = data[cut:]
        if cut:
            self._lines(data[:cut], final=False)

    def finish(self) -> RecordLayout:
        last = self.carry
        if last:
            self._lines(last + b"\n", final=True)
        else:
            self._resolve(b"", final=True)
        physical = self.newlines + (1 if last else 0)
        return RecordLayout(
            header=(self.header or b"").rstrip(b"\r"),
            physical_lines=physical,
            trailing_blank_lines=min(self.trailing_blank, max(physical - 1, 0)),
            spans=self.spans,
            split_bytes=self.split_bytes,
            newlines_before_split=self.newlines_before_split,
            text_bytes=self.position,
        )

    def _lines(self, complete: bytes, final: bool) -> None:
        """Complete lines (each ending in a newline), in file order."""
        count = complete.count(b"\n")
        kept = complete.rstrip(_BLANK)
        self.trailing_blank = (
            self.trailing_blank + count if not kept else complete.count(b"\n", len(kept)) - 1
        )
        first = self.next_line
        self.next_line += count
        if self.header is None:
            cut = complete.index(b"\n") + 1
            self.header, complete, first = complete[: cut - 1], complete[cut:], first + 1
            if self.fields is None:
                self.fields = field_count(self.header.removesuffix(b"\r"))
        self._resolve(complete, final, first)

    def _resolve(self, lines: bytes, final: bool, first: int = 0) -> None:
        """Find the multi-line records among ``lines`` (plus lines kept back from the previous buffer)."""
        if self.pending:
            lines, first, self.pending = self.pending + lines, self.pending_first, b""
        if b'"' not in lines:
            return
        data = np.frombuffer(lines, np.uint8)
        ends = np.flatnonzero(data == 10)
        starts = np.concatenate(([0], ends[:-1] + 1))
        quotes = np.flatnonzero(data == 34)
        per_line = np.searchsorted(quotes, ends) - np.searchsorted(quotes, starts)
        odd = np.flatnonzero(per_line % 2 == 1).tolist()
        j = 0
        while j < len(odd):
            a = odd[j]
            b = odd[j + 1] if j + 1 < len(odd) else None
            if b is None and not final and len(ends) - a < self.max_lines:
                self.pending, self.pending_first = lines[starts[a] :], first + a  # partner may follow
                return
            if b is not None and b - a < self.max_lines:
                record = b"\n".join(lines[starts[i] : ends[i]].removesuffix(b"\r") for i in range(a, b + 1))
                if field_count(record) == self.fields:
                    self.spans.append((first + a, first + b))
                    j += 2
                    continue
            j += 1  # a record by itself, with an unclosed quote


def scan_records(
    chunks: Iterable[bytes],
    fields: int | None = None,
    split_bytes: int = 0,
    max_lines: int = MAX_RECORD_LINES,
) -> RecordLayout:
    """The record layout of a file given as byte chunks (decompressed), for a header of ``fields`` columns
    (None: as many as the file's own header has)."""
    scanner = _RecordScanner(fields, split_bytes, max_lines)
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner.finish()
