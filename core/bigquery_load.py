"""Bucket Parquet into a BigQuery table: one load job that replaces the table, whatever the bucket.

Both layers publish to BigQuery this way (Silver's tables, the speed layer's event sinks): the caller's
``LoadJobConfig`` says ``WRITE_TRUNCATE`` and carries the table's schema, and the whole list of files is one
job, so readers see the old table or the new one, never half of each, and a rerun replaces rather than
appends. Load jobs are free and do not count against query slots.

* ``gs://`` bucket (production): BigQuery reads the files itself (``load_table_from_uri`` with the explicit
  file list; nothing passes through this process). Past BigQuery's 10,000 URIs per job (the stream writes
  a file per micro-batch and hour) the job names each folder instead, ``<folder>/*.parquet`` (the stream's
  ``.tmp`` files before their rename do not match). Columns a file holds beyond the schema are ignored
  (``ignore_unknown_values``, which for Parquet means "fields the table schema does not have").
* local bucket (tests, a laptop pointed at BigQuery), or no file at all: the files are streamed into one
  Parquet file **conformed to the schema** (its columns in order, a column a file lacks as nulls, narrower
  types widened), uploaded by one resumable ``load_table_from_file`` job. With no file this loads an empty
  table of the schema, so "nothing yet" replaces the table too.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from google.cloud import bigquery

from core.bigquery import JOB_TIMEOUT_S, RETRY
from core.bucket import Bucket

MAX_SOURCE_URIS = 10_000  # BigQuery's limit per load job
ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(), "INT64": pa.int64(), "INTEGER": pa.int64(), "FLOAT64": pa.float64(),
    "FLOAT": pa.float64(), "BOOL": pa.bool_(), "BOOLEAN": pa.bool_(), "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}  # fmt: skip


class ParquetLoadError(RuntimeError):
    """BigQuery refused a load, or the files cannot be loaded in one job; the message names both ends."""


@dataclass(frozen=True)
class LoadResult:
    """One table as BigQuery holds it after the load."""

    table: str
    table_id: str
    rows: int
    files: int
    job_id: str
    seconds: float


def parquet_keys(bucket: Bucket, key: str) -> list[str]:
    """Bucket keys of the Parquet files under ``key``, recursively (partition folders), sorted; hidden
    files (a writer's ``.tmp`` before its rename) are not Parquet files yet and are left out."""
    base = bucket.path(key).rstrip("/")
    root = bucket.path("").rstrip("/") + "/"
    found = (p.removeprefix(root) for p in bucket.fs.glob(f"{base}/**/*.parquet"))
    return sorted(p for p in found if not p.rsplit("/", 1)[-1].startswith("."))


def arrow_schema(fields: list[bigquery.SchemaField]) -> pa.Schema:
    """The Arrow schema whose Parquet BigQuery loads into ``fields`` without a conversion."""
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.field_type]) for f in fields])


def load_parquet(
    client: bigquery.Client,
    bucket: Bucket,
    folder: str,
    keys: list[str],
    destination: str,
    config: bigquery.LoadJobConfig,
) -> LoadResult:
    """Load the Parquet files ``keys`` (listed under the bucket key ``folder``) into ``destination`` in one
    job of ``config``, which carries the schema."""
    started = time.perf_counter()
    try:
        if bucket.is_gcs and keys:
            uris = source_uris(bucket, keys)
            job = client.load_table_from_uri(uris, destination, job_config=_by_uri(config), retry=RETRY)
        else:
            job = _upload_conformed(client, bucket, keys, destination, config)
        job.result(timeout=JOB_TIMEOUT_S)
    except Exception as exc:  # BadRequest, Forbidden, timeouts: name the table and the source
        raise ParquetLoadError(f"loading {bucket.uri(folder)} into {destination} failed: {exc}") from exc
    return LoadResult(
        table=destination.rsplit(".", 1)[-1],
        table_id=destination,
        rows=int(job.output_rows or 0),
        files=len(keys),
        job_id=job.job_id,
        seconds=time.perf_counter() - started,
    )


def source_uris(bucket: Bucket, keys: list[str]) -> list[str]:
    """The files' URIs or, when they are more than one job may list, one ``<folder>/*.parquet`` per folder
    holding them (the sinks' date/hour folders: 24 a day). Only leaf folders: whether BigQuery's ``*``
    spans ``/`` must not change what is loaded."""
    if len(keys) <= MAX_SOURCE_URIS:
        return [bucket.uri(key) for key in keys]
    folders = sorted({key.rsplit("/", 1)[0] for key in keys})
    ancestors = {parent for folder in folders for parent in _parents(folder)}
    nested = sorted(ancestors.intersection(folders))
    if len(folders) > MAX_SOURCE_URIS or nested:
        raise ParquetLoadError(
            f"{len(keys):,} files in {len(folders):,} folders are over BigQuery's {MAX_SOURCE_URIS:,} source "
            "URIs per load job, and "
            + (
                f"some folders are nested ({nested[0]} holds files and folders)"
                if nested
                else "so are the folders"
            )
            + ": expire old files or compact them"
        )
    return [f"{bucket.uri(folder)}/*.parquet" for folder in folders]


def _parents(folder: str) -> Iterator[str]:
    parts = folder.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _by_uri(config: bigquery.LoadJobConfig) -> bigquery.LoadJobConfig:
    """``config`` (left as it was) that skips the columns BigQuery finds in the files beyond the schema."""
    config = bigquery.LoadJobConfig.from_api_repr(config.to_api_repr())
    config.ignore_unknown_values = True
    return config


def _upload_conformed(
    client: bigquery.Client,
    bucket: Bucket,
    keys: list[str],
    destination: str,
    config: bigquery.LoadJobConfig,
) -> bigquery.LoadJob:
    """Stream the files into one Parquet file of the schema and upload it as one job (returned running)."""
    schema = arrow_schema(list(config.schema or []))
    with tempfile.TemporaryDirectory(prefix="bigquery-load-") as tmp:
        combined = Path(tmp) / "table.parquet"
        with pq.ParquetWriter(combined, schema, compression="snappy") as writer:
            if keys:  # a dataset with a schema: missing columns read as nulls, types cast to the schema's
                dataset = ds.dataset([bucket.path(key) for key in keys], schema=schema, format="parquet")
                for batch in dataset.scanner(columns=schema.names).to_batches():
                    writer.write_batch(batch)
            else:
                writer.write_table(schema.empty_table())
        with combined.open("rb") as handle:
            # No size: a resumable upload, one request per chunk whatever the file size.
            return client.load_table_from_file(handle, destination, job_config=config, rewind=True)
