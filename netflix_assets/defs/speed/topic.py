"""What the topic looks like from outside the stream: end offsets, the stream's committed offsets, the lag.

Read from the broker and from the stream's Spark checkpoint (plain files), never from ``realtime.duckdb``,
which the running stream holds open for writing.
"""

from typing import Any

from dagster import DataVersion, MetadataValue

from core.contracts.speed import checkpoint_key
from netflix_assets.resources import BucketResource, KafkaResource
from streaming.checkpoint import read_progress


def observe_topic(kafka: KafkaResource, bucket: BucketResource) -> dict[str, Any]:
    """``ObserveResult`` arguments: a data version that changes with the topic, and the lag as metadata."""
    ends = kafka.end_offsets()
    progress = read_progress(bucket.get(), checkpoint_key())
    cluster = kafka.cluster_id()
    # A checkpoint from another cluster (the embedded broker restarted empty) has consumed nothing here.
    lag = sum(ends.values()) if progress.cluster_id not in (None, cluster) else progress.lag(ends)
    committed_batch = progress.committed_batch if progress.committed_batch is not None else -1
    return {
        "data_version": DataVersion(f"{cluster}:{sum(ends.values())}"),
        "metadata": {
            "end_offsets": MetadataValue.json({str(p): o for p, o in sorted(ends.items())}),
            "messages": sum(ends.values()),
            "stream_committed_offsets": MetadataValue.json(
                {str(p): o for p, o in sorted(progress.offsets.items())}
            ),
            "stream_committed_batch": committed_batch,
            "lag": lag,
        },
    }
