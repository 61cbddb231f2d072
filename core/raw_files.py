"""Finding and inspecting a landed raw CSV: which file a table is, and one streamed pass for its size, rows
(records, as docs/data-quality.md counts them), hash, header and preview.

Kept apart from the Dagster assets so the same inspection serves the asset, its checks, Silver and the
CLI, and so a 1 GB file at scale 100 is read once, in bounded memory. A table's file is
``raw/<table>.csv`` or, gzip-compressed, ``raw/<table>.csv.gz``; everything here reads either.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from core.bucket import Bucket
from core.contracts.raw import raw_keys
from core.raw_records import CHUNK_BYTES, RecordLayout, scan_records

PREVIEW_ROWS = 5
_HEAD_BYTES = 64 * 1024


class RawFileError(ValueError):
    """A table's raw file is missing or ambiguous; the message names the keys and what to do."""


def is_compressed(key: str) -> bool:
    return key.endswith(".gz")


def raw_key_in(bucket: Bucket, table: str) -> str | None:
    """The key of ``table``'s raw file in ``bucket`` (``.csv`` or ``.csv.gz``), None when there is none.

    Both at once is an error: nothing could tell which one is current.
    """
    present = [key for key in raw_keys(table) if bucket.exists(key)]
    if len(present) > 1:
        raise RawFileError(
            f"{' and '.join(bucket.uri(k) for k in present)} both exist: keep one file per table "
            f"(the plain or the gzip-compressed {table} export)"
        )
    return present[0] if present else None


def find_raw_key(bucket: Bucket, table: str) -> str:
    """Like :func:`raw_key_in`, but a missing file is an error naming the keys looked for."""
    key = raw_key_in(bucket, table)
    if key is None:
        wanted = " or ".join(bucket.uri(k) for k in raw_keys(table))
        raise RawFileError(f"{wanted} does not exist: materialize ['raw', '{table}'] first")
    return key


@contextmanager
def open_text(bucket: Bucket, key: str) -> Iterator[IO[bytes]]:
    """The file's bytes as text bytes: gunzipped on the fly for ``.gz``."""
    with bucket.open(key, "rb") as handle:
        if is_compressed(key):
            with gzip.GzipFile(fileobj=handle, mode="rb") as text:
                yield text
        else:
            yield handle


def _text_chunks(stored: Iterator[bytes], compressed: bool) -> Iterator[bytes]:
    """Decompress a stream of stored chunks (multi-member gzip included) as it goes."""
    if not compressed:
        yield from stored
        return
    inflater = zlib.decompressobj(wbits=31)
    for chunk in stored:
        while chunk:
            yield inflater.decompress(chunk)
            chunk = inflater.unused_data  # a next gzip member starts here
            if chunk:
                inflater = zlib.decompressobj(wbits=31)
    if not inflater.eof:
        raise EOFError("the gzip stream ends before its end marker (truncated file?)")


def _stored_chunks(bucket: Bucket, key: str) -> Iterator[bytes]:
    """The file's bytes as stored, in chunks."""
    with bucket.open(key, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def record_layout(bucket: Bucket, key: str, fields: int | None = None, split_bytes: int = 0) -> RecordLayout:
    """Records of a raw file (one streamed pass, decompressing ``.gz``), for a header of ``fields``
    (None: the file's own)."""
    return scan_records(_text_chunks(_stored_chunks(bucket, key), is_compressed(key)), fields, split_bytes)


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
    """Stream the file once: hash the stored bytes, count records, and parse the first lines as CSV.

    Records are counted for the file's own header width: a header that breaks the contract fails its
    own check, and the count stays meaningful for whoever reads it.
    """
    uri = bucket.uri(key)
    digest = hashlib.sha256()
    total = 0
    head = b""

    def stored() -> Iterator[bytes]:
        nonlocal total
        for chunk in _stored_chunks(bucket, key):
            digest.update(chunk)
            total += len(chunk)
            yield chunk

    def text() -> Iterator[bytes]:
        nonlocal head
        for chunk in _text_chunks(stored(), is_compressed(key)):
            if len(head) < _HEAD_BYTES:
                head += chunk[:_HEAD_BYTES]
            yield chunk

    try:
        layout = scan_records(text())
    except (OSError, EOFError, zlib.error) as exc:
        return RawFileProfile(key=key, uri=uri, bytes=total, sha256=digest.hexdigest(), data_rows=0,
                              header=None, problem=f"{uri} is not a readable gzip file: {exc}")  # fmt: skip
    profile = RawFileProfile(
        key=key, uri=uri, bytes=total, sha256=digest.hexdigest(), data_rows=layout.data_records, header=None
    )
    if total == 0 or not head:
        size = "0 bytes" if total == 0 else "no text once decompressed"
        profile.problem = f"{uri} is empty ({size}): expected a CSV with a header row"
        return profile
    text_head, problem = _decode_head(head, uri)
    if problem:
        profile.problem = problem
        return profile
    assert text_head is not None
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text_head.lstrip("\ufeff"), newline=""), strict=True):
            rows.append(row)
            if len(rows) > PREVIEW_ROWS:
                break
    except csv.Error as exc:
        if not rows:
            profile.problem = f"{uri} is not parseable as CSV near the top of the file: {exc}"
            return profile
    profile.header = [column.strip() for column in rows[0]] if rows else []
    profile.preview = [row for row in rows[1:] if row]
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
