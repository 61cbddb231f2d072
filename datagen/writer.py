"""Streaming one CSV into the bucket: header once, then chunk after chunk, published only when complete.

On a local bucket the file is written under a hidden temporary key and renamed into place at the end,
so a reader (the raw asset, a sensor) never sees half a file and a crash leaves the previous file
intact. On GCS an object only becomes visible when its upload finishes, so the final key is written
directly.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from core.bucket import Bucket


@dataclass
class CsvSink:
    handle: IO[Any]
    bytes_written: int = 0
    rows_written: int = 0

    def write(self, data: bytes | memoryview, rows: int = 0) -> None:
        self.handle.write(data)
        self.bytes_written += len(data)
        self.rows_written += rows


def temporary_key(key: str) -> str:
    folder, name = posixpath.split(key)
    return posixpath.join(folder, f".{name}.{os.getpid()}.tmp")


@contextmanager
def open_csv(bucket: Bucket, key: str, header: bytes) -> Iterator[CsvSink]:
    """A sink for ``key`` that already holds the header; the file appears at ``key`` only on success."""
    target = key if bucket.is_gcs else temporary_key(key)
    try:
        with bucket.open(target, "wb") as handle:
            sink = CsvSink(handle)
            sink.write(header)
            yield sink
        if target != key:
            os.replace(bucket.local_path(target), bucket.local_path(key))
    except BaseException:
        if target != key:
            bucket.delete(target)
        raise
