"""The warehouse layout: who writes which DuckDB file, and how readers see both layers at once.

DuckDB allows one read-write process per file and refuses readers while it is open for writing, so no
file here is shared by two writers and no reader ever opens a file that is being written
(``docs/architecture.md`` has the whole argument):

* ``batch.duckdb`` is *published*, never written in place. dbt builds into ``batch_build.duckdb`` (a copy
  of the last published file, so incremental models keep their state) and, when the build succeeds,
  the build file atomically replaces the published one (``os.replace``). Readers holding the old file
  keep reading the old inode; the next reader sees the new build. A failed build publishes nothing.
* ``realtime.duckdb`` belongs to the streaming sink alone (upserts keyed by window and segment, plus a
  ledger of committed micro-batch ids). After each micro-batch the sink publishes each realtime table as
  a Parquet snapshot under ``realtime/`` by write-then-rename, so readers never see a half-written file.
* ``oncall.duckdb`` belongs to the SLO monitor alone (``slo_samples``, one row per SLI sample); it publishes
  ``oncall/slo_status.parquet`` and ``oncall/slo_samples/<hour>.parquet`` the same way.
* Readers (dashboards, analysts, tests) call :func:`connect_serving`: an in-memory DuckDB that attaches
  ``batch.duckdb`` read-only as ``batch`` and exposes the realtime snapshots as views in schema
  ``realtime``. Nothing a reader does can block or break a writer.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.settings import Settings, WarehouseKind


@dataclass(frozen=True)
class WarehouseLayout:
    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> WarehouseLayout:
        return cls(Path(settings.warehouse_dir).expanduser().resolve())

    @property
    def batch_published(self) -> Path:
        return self.root / "batch.duckdb"

    @property
    def batch_build(self) -> Path:
        return self.root / "batch_build.duckdb"

    @property
    def realtime_db(self) -> Path:
        return self.root / "realtime.duckdb"

    @property
    def realtime_snapshots(self) -> Path:
        return self.root / "realtime"

    def realtime_snapshot(self, table: str) -> Path:
        return self.realtime_snapshots / f"{table}.parquet"

    @property
    def oncall_db(self) -> Path:
        return self.root / "oncall.duckdb"

    @property
    def oncall_snapshots(self) -> Path:
        return self.root / "oncall"

    # -- batch publication --------------------------------------------------------------------------
    def prepare_batch_build(self) -> Path:
        """Seed the build file from the last published warehouse so incremental state carries over."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.batch_published.exists():
            shutil.copyfile(self.batch_published, self.batch_build)
        else:
            self.batch_build.unlink(missing_ok=True)
        return self.batch_build

    def publish_batch_build(self) -> Path:
        """Atomically make the finished build the warehouse readers see."""
        if not self.batch_build.exists():
            raise FileNotFoundError(f"no batch build to publish at {self.batch_build}")
        os.replace(self.batch_build, self.batch_published)
        return self.batch_published

    # -- realtime publication -----------------------------------------------------------------------
    def publish_realtime_snapshot(self, con: duckdb.DuckDBPyConnection, table: str) -> Path:
        """Export one realtime table from the sink's own connection by write-then-rename."""
        target = self.realtime_snapshot(table)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        con.execute(f"COPY {table} TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, target)
        return target


class WarehouseFileBusy(RuntimeError):
    """Another process holds a DuckDB file that has one writer by design."""


def open_single_writer(path: Path, owner: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """The read-write connection of ``path``'s one writer; if another process holds it, say who should.

    ``owner`` completes "only one … may …", e.g. "streaming query may own the realtime warehouse".
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"threads": threads} if threads else {}
    try:
        return duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        raise WarehouseFileBusy(f"{path} is held by another process: only one {owner}: {exc}") from exc


@dataclass(frozen=True)
class BigQueryTarget:
    """The BigQuery datasets of the production warehouse (credentials come from ADC or the keyfile)."""

    project: str | None
    dataset: str = "netflix"
    silver_dataset: str = "silver"
    location: str = "US"
    method: str = "oauth"
    keyfile: str | None = None
    realtime_dataset: str = "realtime"
    api_endpoint: str | None = None  # an emulator (tests, benchmarks); anonymous credentials
    speed_dataset: str = "speed"  # the stream's event sinks as the batch layer's sources (dbt `speed`)

    @classmethod
    def from_settings(cls, settings: Settings) -> BigQueryTarget:
        return cls(
            project=settings.bigquery_project,
            dataset=settings.bigquery_dataset,
            silver_dataset=settings.bigquery_silver_dataset,
            location=settings.bigquery_location,
            method=settings.bigquery_method,
            keyfile=settings.bigquery_keyfile,
            realtime_dataset=settings.bigquery_realtime_dataset,
            api_endpoint=settings.bigquery_api_endpoint,
        )


@dataclass(frozen=True)
class Warehouse:
    """Which engine serves the warehouse, and where: the DuckDB files or the BigQuery datasets."""

    kind: WarehouseKind
    layout: WarehouseLayout
    bigquery: BigQueryTarget

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        bigquery = BigQueryTarget.from_settings(settings)
        return cls(WarehouseKind(settings.warehouse), WarehouseLayout.from_settings(settings), bigquery)

    @property
    def on_bigquery(self) -> bool:
        return self.kind is WarehouseKind.BIGQUERY


def connect_serving(settings: Settings | WarehouseLayout) -> duckdb.DuckDBPyConnection:
    """A read-only view of both layers, ``batch.<model>`` and ``realtime.<table>``, and of the SLO monitor's
    ``oncall.slo_status`` and ``oncall.slo_samples``."""
    layout = settings if isinstance(settings, WarehouseLayout) else WarehouseLayout.from_settings(settings)
    con = duckdb.connect(":memory:")
    if layout.batch_published.exists():
        con.execute(f"ATTACH '{layout.batch_published}' AS batch (READ_ONLY)")
    con.execute("CREATE SCHEMA IF NOT EXISTS realtime")
    if layout.realtime_snapshots.exists():
        for snapshot in sorted(layout.realtime_snapshots.glob("*.parquet")):
            con.execute(
                f"CREATE OR REPLACE VIEW realtime.{snapshot.stem} AS SELECT * FROM read_parquet('{snapshot}')"
            )
    _attach_oncall(con, layout)
    return con


def _attach_oncall(con: duckdb.DuckDBPyConnection, layout: WarehouseLayout) -> None:
    """Views over what the SLO monitor published (nothing when it never ran)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS oncall")
    status = layout.oncall_snapshots / "slo_status.parquet"
    if status.exists():
        con.execute(f"CREATE OR REPLACE VIEW oncall.slo_status AS SELECT * FROM read_parquet('{status}')")
    if any((layout.oncall_snapshots / "slo_samples").glob("*.parquet")):
        pattern = layout.oncall_snapshots / "slo_samples" / "*.parquet"
        con.execute(f"CREATE OR REPLACE VIEW oncall.slo_samples AS SELECT * FROM read_parquet('{pattern}')")
