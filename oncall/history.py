"""``slo_samples``: every SLI sample, in the warehouse folder's ``oncall.duckdb``, owned by the monitor alone.

DuckDB allows one writer per file and no reader beside it (docs/architecture.md), so the monitor holds this
file the way the stream holds ``realtime.duckdb``, and publishes what readers need by write-then-rename:
``oncall/slo_status.parquet`` after every sample and ``oncall/slo_samples/<YYYYMMDDHH>.parquet`` (one file
per hour, the current hour rewritten every ``publish_every_s``). ``core.warehouse.connect_serving`` shows
them as ``oncall.slo_status`` and ``oncall.slo_samples``. Error budgets and burn rates are computed here,
from the history, so a restarted monitor picks up where it was.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.warehouse import WarehouseFileBusy, WarehouseLayout, open_single_writer
from oncall.sample import Sample, utc_naive

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS slo_samples (
    slo VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, good BOOLEAN, details VARCHAR
)
"""
HOUR_FORMAT = "%Y%m%d%H"
SLOW_WINDOW_S = 6 * 3600.0
APPEND_CHUNK = 200
SLOW_WINDOWS_EVERY_S = 60.0
PRUNE_EVERY_S = 3600.0


class HistoryBusy(RuntimeError):
    """Another monitor already holds ``oncall.duckdb``."""


class SampleHistory:
    """Appends samples, counts good/bad per SLO over windows, publishes Parquet snapshots."""

    def __init__(self, layout: WarehouseLayout, retention_s: float, publish_every_s: float = 30.0) -> None:
        self.layout = layout
        self.retention_s = retention_s
        self.publish_every_s = publish_every_s
        try:
            owner = "SLO monitor may run per warehouse (is `netflix-lambda monitor` already running?)"
            self.con = open_single_writer(layout.oncall_db, owner, threads=1)
        except WarehouseFileBusy as exc:
            raise HistoryBusy(str(exc)) from exc
        self.con.execute(SCHEMA_SQL)
        self._published_at = 0.0
        self._published_hour: str | None = None
        self._pruned_at = 0.0
        self._slow_counts: dict[str, dict[float, tuple[int, int]]] = {}
        self._slow_windows: tuple[float, ...] = ()
        self._slow_at = 0.0

    def close(self) -> None:
        if self._published_hour is not None:
            self._publish_hour(self._published_hour)  # the samples since the last publication
        self.con.close()

    def append(self, samples: list[Sample]) -> None:
        """Multi-row INSERTs of up to ``APPEND_CHUNK`` rows (per statement, not per row: ``executemany``
        costs 3x and an Arrow round trip 5x as much CPU for one sample's few rows)."""
        for first in range(0, len(samples), APPEND_CHUNK):
            chunk = samples[first : first + APPEND_CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
            params = [
                field
                for s in chunk
                for field in (s.slo, s.at, s.value, s.good, json.dumps(s.details, default=str))
            ]
            self.con.execute(f"INSERT INTO slo_samples VALUES {values}", params)

    def counts(self, now: float, windows: list[float]) -> dict[str, dict[float, tuple[int, int]]]:
        """``{slo: {window_s: (samples with a verdict, bad samples)}}`` over each window ending at ``now``.

        Windows up to 6 hours are counted at every sample. Longer ones (the 3-day ticket window, the 30-day
        budget: millions of rows) are recounted at most every ``SLOW_WINDOWS_EVERY_S``: a minute's lag on
        a 3-day burn rate changes nothing, and it keeps a sample's cost flat as the history fills.
        """
        fast = [w for w in windows if w <= SLOW_WINDOW_S]
        slow = tuple(w for w in windows if w > SLOW_WINDOW_S)
        if slow and (slow != self._slow_windows or now - self._slow_at >= SLOW_WINDOWS_EVERY_S):
            self._slow_counts, self._slow_windows, self._slow_at = self._count(now, list(slow)), slow, now
        counted = self._count(now, fast)
        for slo, by_window in self._slow_counts.items():
            counted.setdefault(slo, {}).update(by_window)
        return counted

    def _count(self, now: float, windows: list[float]) -> dict[str, dict[float, tuple[int, int]]]:
        if not windows:
            return {}
        starts = [utc_naive(now - w) for w in windows]
        columns = ", ".join(
            f"count(good) FILTER (WHERE ts > ${i + 1}), count(*) FILTER (WHERE ts > ${i + 1} AND NOT good)"
            for i in range(len(windows))
        )
        oldest = f"${len(windows) + 1}"
        rows = self.con.execute(
            f"SELECT slo, {columns} FROM slo_samples WHERE ts > {oldest} GROUP BY slo",
            [*starts, min(starts)],
        ).fetchall()
        return {
            row[0]: {w: (int(row[1 + 2 * i]), int(row[2 + 2 * i])) for i, w in enumerate(windows)}
            for row in rows
        }

    def recent(self, slo: str, limit: int) -> list[tuple[Any, ...]]:
        """Newest samples of one SLO (ts, value, good), newest first."""
        return self.con.execute(
            "SELECT ts, value, good FROM slo_samples WHERE slo = ? ORDER BY ts DESC LIMIT ?", [slo, limit]
        ).fetchall()

    # -- publication --------------------------------------------------------------------------------
    def publish(self, now: float, status_rows: list[dict[str, Any]]) -> None:
        """The status after every sample; the current hour of samples every ``publish_every_s``."""
        folder = self.layout.oncall_snapshots
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(pa.Table.from_pylist(status_rows), folder / "slo_status.parquet")
        hour = utc_naive(now).strftime(HOUR_FORMAT)
        if hour != self._published_hour or now - self._published_at >= self.publish_every_s:
            # Close the previous hour with its last samples (also after a restart, which may have cut
            # short the previous monitor's last publication).
            previous = self._published_hour or utc_naive(now - 3600).strftime(HOUR_FORMAT)
            if previous != hour:
                self._publish_hour(previous)
            self._publish_hour(hour)
            self._published_hour, self._published_at = hour, now
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self.prune(now)
            self._pruned_at = now

    def _publish_hour(self, hour: str) -> None:
        start = datetime.strptime(hour, HOUR_FORMAT)  # naive UTC, like the hour it was formatted from
        end = start + timedelta(hours=1)
        target = self.layout.oncall_snapshots / "slo_samples" / f"{hour}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        self.con.execute(
            f"COPY (SELECT * FROM slo_samples WHERE ts >= TIMESTAMP '{start}' AND ts < TIMESTAMP '{end}' "
            f"ORDER BY ts, slo) TO '{tmp}' (FORMAT parquet)"
        )
        os.replace(tmp, target)

    def prune(self, now: float) -> None:
        """Drop samples (and published hours) older than the retention."""
        horizon = utc_naive(now - self.retention_s)
        self.con.execute("DELETE FROM slo_samples WHERE ts < ?", [horizon])
        oldest_hour = horizon.strftime(HOUR_FORMAT)
        for part in (self.layout.oncall_snapshots / "slo_samples").glob("*.parquet"):
            if part.stem < oldest_hour:
                part.unlink(missing_ok=True)


def _write_atomically(table: pa.Table, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, target)
