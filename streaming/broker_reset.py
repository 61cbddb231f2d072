"""Recovering the stream when the embedded broker came back empty, and keeping batch ids unique across it.

Tansu keeps every message in memory, so its supervisor (``netflix-lambda broker``) restarts it **empty**
above an RSS cap or after a crash. The checkpointed offsets then point at data that no longer exists and
the Kafka source stops with ``BrokerDataLossError``. With the embedded broker (and only there: a real
cluster never loses a topic by design, so there a human decides) the stream recovers by itself, loudly:

1. it confirms the loss against the broker (new cluster id, missing topic, or offsets behind the
   checkpoint), so a broker that was merely slow to answer never costs the checkpoint;
2. moves ``speed/_checkpoints/<query>`` to ``speed/_checkpoints/_archived/<query>-<UTC time>``;
3. records the **batch-id base** beside the new checkpoint (``<checkpoint>.batch_base.json``) before the new
   query starts: Spark numbers a fresh checkpoint's batches from 0 again, but the warehouse ledger
   (``stream_batches``) and the Parquet sinks (``batch-<id>-…`` files, which a replay of an id deletes)
   key on the batch id, so the new checkpoint's batches are numbered from ``max committed id + 1``;
4. logs at ERROR what was lost and where the old checkpoint went, and the caller restarts the query from
   the new topic's earliest offsets.

The base rule is also applied to any fresh checkpoint (:func:`prepare_batch_base`), e.g. one an operator
deleted by hand, so a new checkpoint can never have its batches skipped as "already committed".
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException

from core.bucket import Bucket
from core.contracts.speed import ARCHIVED_CHECKPOINTS_KEY, BROKER_LOSS_HEADLINE
from core.kafka.admin import cluster_id, ensure_topics
from core.kafka.cluster import KafkaCluster
from core.kafka.offsets import end_offsets
from streaming.checkpoint import read_offsets, read_progress
from streaming.realtime_store import RealtimeStore

log = logging.getLogger("streaming")

BROKER_ANSWER_TIMEOUT_S = 60.0
LOSS_MARKER = "BrokerDataLossError"


class ResetRefused(RuntimeError):
    """The stream failed with a data-loss error, but resetting its checkpoint would not be right."""


@dataclass
class BrokerReset:
    """One automatic reset, as logged and reported (``StreamSummary.resets``, Dagster metadata)."""

    number: int
    cause: str
    previous_cluster: str | None
    last_committed_batch: int | None  # ledger (warehouse) batch id
    committed_offsets: dict[int, int]
    unfinished_batch: int | None  # planned in the old checkpoint, never committed (ledger id)
    unfinished_offsets: dict[int, int]
    cluster: str
    end_offsets: dict[int, int]
    archived_to: str
    batch_id_base: int
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def known_lost(self) -> int:
        """Events the old checkpoint had planned but never committed: lost for sure (there may be more)."""
        return sum(
            max(end - self.committed_offsets.get(p, 0), 0) for p, end in self.unfinished_offsets.items()
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "known_lost": self.known_lost}

    def message(self, query_name: str, topic: str) -> str:
        committed = (
            f"batch {self.last_committed_batch}, offsets {_offsets(self.committed_offsets)}"
            if self.last_committed_batch is not None
            else "no committed batch"
        )
        unfinished = (
            f"; batch {self.unfinished_batch} (up to offsets {_offsets(self.unfinished_offsets)}, "
            f"{self.known_lost:,} events) was planned but never committed"
            if self.unfinished_batch is not None
            else ""
        )
        return (
            f"{BROKER_LOSS_HEADLINE}: stream {query_name} reset its checkpoint and restarts from the "
            f"beginning of topic {topic!r} (automatic reset #{self.number} of this run). "
            f"Cause: {self.cause}. The old checkpoint (cluster {self.previous_cluster}) had committed up to "
            f"{committed}{unfinished}. The broker now is cluster {self.cluster} with end offsets "
            f"{_offsets(self.end_offsets)} ({sum(self.end_offsets.values()):,} messages, read from the "
            f"start). Old checkpoint moved to {self.archived_to}. Events published after the last committed "
            f"batch and before the broker restart are LOST from the speed layer (at least "
            f"{self.known_lost:,}; the rest cannot be counted, the broker kept them in memory only); the "
            "batch layer is unaffected (it reads raw/ files, not Kafka). Warehouse batch ids continue at "
            f"{self.batch_id_base}. To stop instead of resetting, set NETFLIX_STREAM_RESET_ON_BROKER_LOSS="
            "false; to avoid restarts, raise NETFLIX_EMBEDDED_BROKER_MAX_RSS_MB or use a real Kafka cluster."
        )


def _offsets(offsets: dict[int, int]) -> str:
    return ", ".join(f"p{p}={o:,}" for p, o in sorted(offsets.items())) or "none"


# -- policy -------------------------------------------------------------------------------------------------
def is_broker_data_loss(cause: str) -> bool:
    return LOSS_MARKER in cause


def reset_allowed(kafka: KafkaCluster, reset_on_broker_loss: bool) -> bool:
    """Only the embedded broker is ever reset automatically, whatever the setting says."""
    return kafka.embedded and reset_on_broker_loss


def refusal_hint(kafka: KafkaCluster) -> str:
    """Why a data-loss failure was not reset, for the error an operator reads."""
    if not kafka.embedded:
        return (
            " The stream is on a real Kafka cluster (NETFLIX_KAFKA_BOOTSTRAP_SERVERS), where it never resets "
            "itself: restore the topic, or move speed/_checkpoints/<query> aside deliberately to start over."
        )
    return (
        " Automatic reset is off (NETFLIX_STREAM_RESET_ON_BROKER_LOSS=false): move "
        "speed/_checkpoints/<query> aside to start over from the new topic."
    )


# -- batch-id base ------------------------------------------------------------------------------------------
def batch_base_key(checkpoint: str) -> str:
    return f"{checkpoint}.batch_base.json"


def read_batch_base(bucket: Bucket, checkpoint: str) -> int:
    """The offset added to Spark's batch ids for this checkpoint (0 when no file: the original one)."""
    key = batch_base_key(checkpoint)
    if not bucket.exists(key):
        return 0
    try:
        return int(json.loads(bucket.read_bytes(key))["batch_id_base"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{bucket.uri(key)} is unreadable ({exc}): it tells the stream how to number the batches of "
            'its checkpoint; fix it by hand (JSON {"batch_id_base": <max batch_id in stream_batches + 1>})'
        ) from exc


def write_batch_base(bucket: Bucket, checkpoint: str, base: int, reason: str) -> None:
    payload = {"batch_id_base": base, "written_at": datetime.now(UTC).isoformat(), "reason": reason}
    bucket.write_bytes(batch_base_key(checkpoint), json.dumps(payload, indent=2).encode())


def prepare_batch_base(bucket: Bucket, checkpoint: str, store: RealtimeStore) -> int:
    """The batch-id base for the query about to start, (re)written first if the checkpoint is fresh.

    A checkpoint with offsets keeps its base (its replays must get the same ids). A fresh one whose base
    would reuse ids already in the ledger gets ``max committed id + 1``, written before Spark plans
    batch 0, so a crash in between just recomputes the same value.
    """
    base = read_batch_base(bucket, checkpoint)
    if read_progress(bucket, checkpoint).planned_batch is not None:
        return base
    following = store.next_batch_id()
    if following > base:
        base, last = following, following - 1
        write_batch_base(bucket, checkpoint, base, f"fresh checkpoint; ledger holds batches up to {last}")
        log.warning(
            "checkpoint %s is new but the warehouse ledger already holds batches up to %d: numbering this "
            "checkpoint's batches from %d (%s) so none is mistaken for an already committed one",
            bucket.uri(checkpoint),
            last,
            base,
            bucket.uri(batch_base_key(checkpoint)),
        )
    return base


# -- the reset ----------------------------------------------------------------------------------------------
def _broker_view(conf: dict[str, str], topic: str, timeout_s: float) -> tuple[str, dict[int, int] | None]:
    """The broker's cluster id and the topic's end offsets (None if the topic does not exist)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cluster = cluster_id(conf, timeout_s=5.0)
            break
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise ResetRefused(
                    f"the broker at {conf.get('bootstrap.servers')} did not answer for {timeout_s:.0f} s "
                    f"({exc}), so the loss cannot be confirmed; the checkpoint was kept"
                ) from exc
            time.sleep(1.0)
    try:
        return cluster, end_offsets(conf, topic)
    except KafkaException:
        return cluster, None


def archive_checkpoint(bucket: Bucket, checkpoint: str, stamp: str) -> str:
    """Move every file of ``checkpoint`` under ``_archived/<name>-<stamp>``; returns the new key.

    File by file, because a directory move means different things to the local filesystem and to
    gcsfs (where it is a copy and a delete per object anyway).
    """
    target = f"{ARCHIVED_CHECKPOINTS_KEY}/{posixpath.basename(checkpoint)}-{stamp}"
    suffix = 1
    while bucket.exists(target):  # two resets within a second must not merge their archives
        suffix += 1
        target = f"{ARCHIVED_CHECKPOINTS_KEY}/{posixpath.basename(checkpoint)}-{stamp}-{suffix}"
    fs, source_root = bucket.fs, bucket.path(checkpoint).rstrip("/")
    for path in sorted(fs.find(source_root)):
        relative = path[len(source_root) :].lstrip("/")
        destination = bucket.path(f"{target}/{relative}")
        if not bucket.is_gcs:
            fs.makedirs(posixpath.dirname(destination), exist_ok=True)
        fs.mv(path, destination)
    bucket.delete(checkpoint, recursive=True)
    return target


def reset_after_broker_loss(
    kafka: KafkaCluster,
    bucket: Bucket,
    store: RealtimeStore,
    checkpoint: str,
    cause: str,
    number: int,
) -> BrokerReset:
    """Confirm the loss, archive the checkpoint, write the next batch-id base; the caller restarts.

    Raises :class:`ResetRefused` when the broker does not answer or agrees with the checkpoint (a
    transient failure must not throw away a valid checkpoint).
    """
    topic, conf = kafka.topic, kafka.client_config()  # resolved now: a new supervisor may listen elsewhere
    old_base = read_batch_base(bucket, checkpoint)
    progress = read_progress(bucket, checkpoint)
    if progress.planned_batch is None:
        raise ResetRefused("the checkpoint holds no offsets yet, so there is nothing to reset")
    unfinished = (
        progress.planned_batch
        if progress.committed_batch is None or progress.planned_batch > progress.committed_batch
        else None
    )
    unfinished_cluster, unfinished_offsets = (
        read_offsets(bucket, checkpoint, unfinished) if unfinished is not None else (None, {})
    )
    previous_cluster = progress.cluster_id or unfinished_cluster
    cluster, ends = _broker_view(conf, topic, BROKER_ANSWER_TIMEOUT_S)
    lost = (
        bool(previous_cluster and previous_cluster != cluster)
        or ends is None
        or any(ends.get(p, -1) < o for p, o in progress.offsets.items())
    )
    if not lost:
        raise ResetRefused(
            f"the broker (cluster {cluster}) still holds every offset the checkpoint committed, so the "
            "failure looks transient; the checkpoint was kept"
        )
    ensure_topics(conf, kafka.topics())  # what the supervisor does at every (re)start
    if ends is None:
        ends = _broker_view(conf, topic, BROKER_ANSWER_TIMEOUT_S)[1] or {}
    archived = archive_checkpoint(bucket, checkpoint, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    base = store.next_batch_id()
    write_batch_base(bucket, checkpoint, base, f"broker data loss; old checkpoint in {archived}")
    committed = progress.committed_batch
    reset = BrokerReset(
        number=number,
        cause=cause,
        previous_cluster=previous_cluster,
        last_committed_batch=None if committed is None else committed + old_base,
        committed_offsets=progress.offsets,
        unfinished_batch=None if unfinished is None else unfinished + old_base,
        unfinished_offsets=unfinished_offsets,
        cluster=cluster,
        end_offsets=ends,
        archived_to=bucket.uri(archived),
        batch_id_base=base,
    )
    log.error(reset.message(posixpath.basename(checkpoint), topic))
    return reset
