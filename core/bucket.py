"""One abstraction over the bucket, whether it is a local folder or ``gs://bucket/prefix``.

Every layer addresses files by a key relative to the bucket root (``raw/users.csv``,
``silver/watch_history/``); only this module knows whether that is a path on disk or an object in GCS.
It is built on fsspec (gcsfs for GCS) so pandas, pyarrow and DuckDB can read through the same handles.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec

from core.settings import Settings


@dataclass
class Bucket:
    """A bucket root URL plus the fsspec filesystem that serves it."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if self.is_gcs:
            self.fs = fsspec.filesystem("gcs", **self.storage_options)
            self._root = self.url.removeprefix("gs://")
        else:
            self.fs = fsspec.filesystem("file")
            self._root = str(Path(self.url).expanduser().resolve())
            Path(self._root).mkdir(parents=True, exist_ok=True)

    @classmethod
    def at(cls, url: str, gcs_project: str | None = None, gcs_endpoint: str | None = None) -> Bucket:
        """The bucket at ``url``; for ``gs://`` the project and an endpoint override (an emulator)."""
        options: dict[str, Any] = {}
        if url.startswith("gs://"):
            if gcs_project:
                options["project"] = gcs_project
            if gcs_endpoint:
                # An emulator takes no credentials; real GCS uses Application Default Credentials.
                options.update(endpoint_url=gcs_endpoint, token="anon")
        return cls(url, options)

    @classmethod
    def from_settings(cls, settings: Settings) -> Bucket:
        return cls.at(settings.resolved_bucket_url, settings.gcs_project, settings.gcs_endpoint)

    @property
    def is_gcs(self) -> bool:
        return self.url.startswith("gs://")

    # -- addressing ---------------------------------------------------------------------------------
    def path(self, key: str) -> str:
        """Filesystem path of a key (no scheme), as fsspec calls expect it."""
        return posixpath.join(self._root, key.lstrip("/")) if key else self._root

    def uri(self, key: str) -> str:
        """Full URI of a key, for tools outside fsspec (Spark, DuckDB, logs)."""
        return f"gs://{self.path(key)}" if self.is_gcs else self.path(key)

    def local_path(self, key: str) -> Path:
        if self.is_gcs:
            raise ValueError(f"{self.uri(key)} is in GCS, not on local disk")
        return Path(self.path(key))

    # -- I/O ----------------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

    def list(self, prefix: str) -> list[str]:
        """Keys of the files directly under ``prefix`` (sorted), relative to the bucket root."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return []
        root = self._root.rstrip("/") + "/"
        return sorted(p.removeprefix(root) for p in self.fs.ls(base, detail=False) if self.fs.isfile(p))

    @contextmanager
    def open(self, key: str, mode: str = "rb", **kwargs: Any) -> Iterator[IO[Any]]:
        path = self.path(key)
        if "w" in mode and not self.is_gcs:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open(path, mode, **kwargs) as handle:
            yield handle

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self.path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.open(key, "wb") as handle:
            handle.write(data)

    def upload(self, local: Path, key: str) -> None:
        if not self.is_gcs:
            Path(self.path(key)).parent.mkdir(parents=True, exist_ok=True)
        self.fs.put_file(str(local), self.path(key))

    def download(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(self.path(key), str(local))

    def delete(self, key: str, recursive: bool = False) -> None:
        if self.fs.exists(self.path(key)):
            self.fs.rm(self.path(key), recursive=recursive)

    def sha256(self, key: str, chunk_size: int = 8 << 20) -> str:
        """Content hash, streamed so multi-GB raw files don't need to fit in memory."""
        digest = hashlib.sha256()
        with self.open(key, "rb") as handle:
            while chunk := handle.read(chunk_size):
                digest.update(chunk)
        return digest.hexdigest()
