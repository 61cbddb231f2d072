"""The bucket abstraction behaves the same on a local folder and on GCS (through the emulator)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.bucket import Bucket


@pytest.fixture
def bucket(any_bucket: Bucket) -> Bucket:
    return any_bucket


def test_write_read_list_delete(bucket: Bucket) -> None:
    bucket.write_bytes("raw/users.csv", b"user_id\nu1\n")
    bucket.write_bytes("raw/movies.csv", b"movie_id\nm1\n")
    bucket.write_bytes("silver/users/part-0.parquet", b"PAR1")
    assert bucket.exists("raw/users.csv")
    assert not bucket.exists("raw/reviews.csv")
    assert bucket.list("raw") == ["raw/movies.csv", "raw/users.csv"]
    assert bucket.read_bytes("raw/users.csv") == b"user_id\nu1\n"
    assert bucket.size("raw/movies.csv") == len(b"movie_id\nm1\n")
    bucket.delete("raw/users.csv")
    assert bucket.list("raw") == ["raw/movies.csv"]
    assert bucket.list("nothing-here") == []


def test_upload_download_and_streamed_hash(bucket: Bucket, tmp_path: Path) -> None:
    payload = b"session_id,user_id\n" + b"".join(b"s%d,u%d\n" % (i, i % 97) for i in range(200_000))
    source = tmp_path / "big.csv"
    source.write_bytes(payload)
    bucket.upload(source, "raw/watch_history.csv")
    assert bucket.sha256("raw/watch_history.csv", chunk_size=1 << 16) == hashlib.sha256(payload).hexdigest()
    target = tmp_path / "back" / "wh.csv"
    bucket.download("raw/watch_history.csv", target)
    assert target.read_bytes() == payload


def test_uri_names_the_scheme(bucket: Bucket) -> None:
    uri = bucket.uri("raw/users.csv")
    assert uri.endswith("/raw/users.csv")
    assert uri.startswith("gs://netflix-test/") if bucket.is_gcs else Path(uri).is_absolute()
