"""Reading the stream's progress from its Spark checkpoint, without touching the running query.

In ``core`` because readers on several layers need it: the stream itself (``streaming.broker_reset``), the
Dagster sensor and the SLO monitor (``oncall``, which imports core only). They run in other processes than
the stream and must not open ``realtime.duckdb`` (the sink holds it read-write). The checkpoint is
plain files: ``offsets/<batch>`` (written when a batch is planned: a version line, a metadata line, then
one JSON line per source) and ``commits/<batch>`` (written when it finished). The offsets of the newest
committed batch are the positions the stream has fully processed.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from core.bucket import Bucket


@dataclass(frozen=True)
class CheckpointProgress:
    """Where the stream stands: last committed batch and its end offsets (``{partition: next offset}``)."""

    committed_batch: int | None
    planned_batch: int | None
    cluster_id: str | None
    offsets: dict[int, int]

    def lag(self, end_offsets: dict[int, int]) -> int:
        """Messages in the topic the stream has not committed yet."""
        return sum(max(end - self.offsets.get(p, 0), 0) for p, end in end_offsets.items())


def _batch_ids(bucket: Bucket, key: str) -> list[int]:
    base = bucket.path(key)
    if not bucket.fs.exists(base):
        return []
    names = (posixpath.basename(p) for p in bucket.fs.ls(base, detail=False))
    return sorted(int(n) for n in names if n.isdigit())


def read_progress(bucket: Bucket, checkpoint: str) -> CheckpointProgress:
    """Progress recorded under ``checkpoint`` (a bucket key); empty if the stream never ran."""
    commits = _batch_ids(bucket, f"{checkpoint}/commits")
    planned = _batch_ids(bucket, f"{checkpoint}/offsets")
    if not commits:
        return CheckpointProgress(None, planned[-1] if planned else None, None, {})
    committed = commits[-1]
    cluster, offsets = read_offsets(bucket, checkpoint, committed)
    return CheckpointProgress(committed, planned[-1] if planned else None, cluster, offsets)


def read_offsets(bucket: Bucket, checkpoint: str, batch: int) -> tuple[str | None, dict[int, int]]:
    """Cluster id and end offsets (``{partition: next offset}``) Spark planned for ``batch``."""
    lines = bucket.read_bytes(f"{checkpoint}/offsets/{batch}").decode().splitlines()
    source = json.loads(lines[2]) if len(lines) > 2 else {}
    return source.get("cluster"), {int(p): int(o) for p, o in source.get("offsets", {}).items()}
