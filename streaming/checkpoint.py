"""The stream's progress in its Spark checkpoint: the reader lives in ``core.checkpoint`` (the SLO monitor
needs it too and engines do not import each other); this name stays for the stream and its callers."""

from core.checkpoint import CheckpointProgress, read_offsets, read_progress

__all__ = ["CheckpointProgress", "read_offsets", "read_progress"]
