"""Inspection of a landed raw CSV: one streamed pass gives its size, rows, hash, header and preview.

Kept apart from the Dagster assets so the same inspection serves the asset, its checks and the CLI, and
so a 1 GB file at scale 100 is read once, in bounded memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field

from core.bucket import Bucket

PREVIEW_ROWS = 5
_CHUNK = 8 << 20


@dataclass
class RawFileProfile:
    key: str
    uri: str
    bytes: int
    sha256: str
    data_rows: int
    header: list[str] | None
    preview: list[list[str]] = field(default_factory=list)
    problem: str | None = None  # why the file is not a readable CSV, in words that name the file

    @property
    def data_version(self) -> str:
        return self.sha256[:16]


def _decode_head(head: bytes, uri: str) -> tuple[str | None, str | None]:
    if b"\x00" in head:
        return None, f"{uri} is not a CSV text file (it contains NUL bytes: binary content?)"
    try:
        return head.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        # The head may end inside a multi-byte character; only earlier bytes are conclusive.
        if exc.start >= len(head) - 3:
            return head[: exc.start].decode("utf-8"), None
        line = head[: exc.start].count(b"\n") + 1
        return None, f"{uri} is not valid UTF-8 (byte {exc.start}, line {line})"


def profile_raw_file(bucket: Bucket, key: str) -> RawFileProfile:
    """Stream the file once: hash, count lines, and parse the first lines as CSV."""
    uri = bucket.uri(key)
    digest = hashlib.sha256()
    newlines = 0
    total = 0
    head = b""
    last_byte = b""
    with bucket.open(key, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            total += len(chunk)
            if len(head) < 64 * 1024:
                head += chunk[: 64 * 1024]
            last_byte = chunk[-1:]
    lines = newlines + (1 if total and last_byte != b"\n" else 0)
    profile = RawFileProfile(
        key=key, uri=uri, bytes=total, sha256=digest.hexdigest(), data_rows=max(lines - 1, 0), header=None
    )
    if total == 0:
        profile.problem = f"{uri} is empty (0 bytes): expected a CSV with a header row"
        return profile
    text, problem = _decode_head(head, uri)
    if problem:
        profile.problem = problem
        return profile
    assert text is not None
    first_lines = text.splitlines()[: PREVIEW_ROWS + 1]
    try:
        rows = list(csv.reader(io.StringIO("\n".join(first_lines)), strict=True))
    except csv.Error as exc:
        profile.problem = f"{uri} is not parseable as CSV near the top of the file: {exc}"
        return profile
    profile.header = [name.strip().lstrip("\ufeff") for name in rows[0]] if rows else []
    profile.preview = rows[1:]
    return profile


def header_problems(actual: list[str], expected: tuple[str, ...]) -> list[str]:
    """Name every difference between a header and the contract: missing, extra, renamed, reordered."""
    if list(actual) == list(expected):
        return []
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    problems: list[str] = []
    renamed: list[tuple[str, str]] = []
    if len(actual) == len(expected):
        for want, got in zip(expected, actual, strict=True):
            if want != got and want in missing and got in extra:
                renamed.append((want, got))
    if renamed:
        problems.append("renamed columns: " + ", ".join(f"{want!r} -> {got!r}" for want, got in renamed))
        missing = [c for c in missing if c not in {w for w, _ in renamed}]
        extra = [c for c in extra if c not in {g for _, g in renamed}]
    if missing:
        problems.append("missing columns: " + ", ".join(repr(c) for c in missing))
    if extra:
        problems.append("extra columns: " + ", ".join(repr(c) for c in extra))
    duplicated = sorted({c for c in actual if actual.count(c) > 1})
    if duplicated:
        problems.append("duplicated columns: " + ", ".join(repr(c) for c in duplicated))
    if not problems:
        problems.append(f"columns out of order: expected {list(expected)}, found {list(actual)}")
    return problems
