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
* A reader's views read its own hard links to the snapshots as they were when it connected
  (:class:`PinnedSnapshots`), not the published names. DuckDB opens a Parquet file more than once per
  query (the footer when planning, the row groups when scanning), so a snapshot renamed over in between
  had it read one file's row groups at the other's offsets ("TProtocolException: Invalid data").
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.settings import Settings, WarehouseKind

# The DuckDB variable through which the views inside ``batch.duckdb`` that read the realtime snapshots
# (the serving views, the ledger's staging view) find them: a reader that pins its snapshots sets it to its
# pin folder; one that does not reads the published folder, compiled in as the fallback
# (``dbt_project/models/staging/_speed__sources.yml``; dbt gets the name with its --vars, core/dbt.py).
REALTIME_ROOT_VARIABLE = "netflix_realtime_root"


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
    def reader_pins(self) -> Path:
        return self.root / ".readers"

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


_HOST = socket.gethostname()


class PinnedSnapshots:
    """One reader's hard links to published snapshots, so no rename can change a file under its queries.

    Each reader gets its own folder under ``.readers/``, named for its process and host: a later reader on
    the same host removes it once that process is gone (readers in other containers sharing the folder are
    left alone). A link costs no copy and keeps the linked version alive after the writer
    replaces it; where the folder cannot be made or a link cannot (a read-only warehouse, a file system
    without hard links) the snapshot is copied, or at worst read under its published name as before.
    """

    def __init__(self, layout: WarehouseLayout) -> None:
        self.folder: Path | None = None
        try:
            layout.reader_pins.mkdir(parents=True, exist_ok=True)
            _remove_orphans(layout.reader_pins)
            self.folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}@{_HOST}.", dir=layout.reader_pins))
        except OSError:
            pass

    def pin(self, files: Iterable[Path]) -> list[Path]:
        """The files as they are now (a file gone since it was listed is left out)."""
        return [pinned for f in files if (pinned := self._pin(f)) is not None]

    def folder_of(self, published: Path) -> Path | None:
        """Where the pins of ``published``'s files are, under their own names (None: nothing is pinned)."""
        return None if self.folder is None else self.folder / published.name

    def _pin(self, snapshot: Path) -> Path | None:
        folder = self.folder_of(snapshot.parent)
        if folder is None:
            return snapshot if snapshot.exists() else None
        target = folder / snapshot.name
        folder.mkdir(exist_ok=True)
        try:
            os.link(snapshot, target)
        except FileNotFoundError:
            return None
        except OSError:
            shutil.copyfile(snapshot, target)  # one open: the whole of one version
        return target

    def release(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _remove_orphans(pins: Path) -> None:
    """This host's pin folders whose reader process is gone (it crashed, or its connection was never
    collected)."""
    for folder in pins.iterdir():
        pid, _, rest = folder.name.partition("@")
        if rest.rpartition(".")[0] == _HOST and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def connect_serving(settings: Settings | WarehouseLayout) -> duckdb.DuckDBPyConnection:
    """A read-only view of both layers, ``batch.<model>`` and ``realtime.<table>``, and of the SLO monitor's
    ``oncall.slo_status`` and ``oncall.slo_samples``.

    The connection sees the snapshots published when it was opened (a consistent set across its queries);
    open a new one to see newer ones. Its pins are removed when it is garbage-collected.
    """
    layout = settings if isinstance(settings, WarehouseLayout) else WarehouseLayout.from_settings(settings)
    con = duckdb.connect(":memory:")
    pins = PinnedSnapshots(layout)
    weakref.finalize(con, pins.release)
    if layout.batch_published.exists():
        con.execute(f"ATTACH '{layout.batch_published}' AS batch (READ_ONLY)")
    con.execute("CREATE SCHEMA IF NOT EXISTS realtime")
    for snapshot in sorted(layout.realtime_snapshots.glob("*.parquet")):
        _view(con, f"realtime.{snapshot.stem}", pins.pin([snapshot]))
    pinned = pins.folder_of(layout.realtime_snapshots)
    if pinned is not None:  # the views inside batch.duckdb read the same pins
        con.execute(f"SET VARIABLE {REALTIME_ROOT_VARIABLE} = {sql_literal(pinned)}")
    _attach_oncall(con, layout, pins)
    return con


def sql_literal(text: str | Path) -> str:
    """A DuckDB string literal (quotes doubled), for paths and globs spliced into SQL."""
    return "'" + str(text).replace("'", "''") + "'"


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[Path]) -> None:
    if files:
        listed = ", ".join(sql_literal(f) for f in files)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")


def _attach_oncall(con: duckdb.DuckDBPyConnection, layout: WarehouseLayout, pins: PinnedSnapshots) -> None:
    """Views over what the SLO monitor published (nothing when it never ran)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS oncall")
    _view(con, "oncall.slo_status", pins.pin([layout.oncall_snapshots / "slo_status.parquet"]))
    _view(
        con,
        "oncall.slo_samples",
        pins.pin(sorted((layout.oncall_snapshots / "slo_samples").glob("*.parquet"))),
    )
