"""Restarting the query when Spark's Python worker was too slow to start: busy cores, not a broken stream.

The Kafka source is a Python data source. Spark starts its runner (``python_streaming_source_runner``)
as a fresh Python process and gives it a fixed 10 s to connect back (``PythonWorkerFactory``; no setting
changes it in Spark 4.3). On cores shared with a batch run's JVM and dbt, importing PySpark, pyarrow and
confluent-kafka can take longer, and the query fails with "Python worker failed to connect back" before it
reads a single message. Nothing is wrong with the data, the checkpoint or the broker, so the same Spark
session restarts the query from its checkpoint (the sinks make the replay of an unfinished batch a no-op),
and says so. Failing the run instead costs a new run, a new JVM (~30 s on busy cores) and a step towards
the sensor's crash-loop guard, for a failure that a few seconds' pause cures.

A worker that never starts (a missing interpreter, a broken venv) fails every time: after
``MAX_WORKER_RESTARTS`` restarts in a row without a committed batch the stream fails as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.contracts.speed import WORKER_RESTART_HEADLINE

WORKER_START_TIMEOUT = "Python worker failed to connect back"  # PythonWorkerFactory's message
MAX_WORKER_RESTARTS = 3  # in a row, without a committed micro-batch in between
RESTART_PAUSE_S = 5.0  # lets the load that slowed the worker pass before the next start


def is_worker_start_timeout(cause: str) -> bool:
    return WORKER_START_TIMEOUT in cause


@dataclass(frozen=True)
class WorkerRestart:
    """One restart of the query after a slow Python worker start, as logged and shown in Dagster."""

    number: int  # restarts in a row without progress, 1 for the first
    cause: str
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def message(self, query_name: str) -> str:
        return (
            f"streaming query {query_name}: {WORKER_RESTART_HEADLINE} (the machine's cores are busy); "
            f"restarting the query from its checkpoint in "
            f"{RESTART_PAUSE_S:g} s, restart {self.number} of at most {MAX_WORKER_RESTARTS} in a row. "
            "Nothing is lost or counted twice. If this repeats, give the stream more CPU (or run the batch "
            "layer elsewhere)"
        )
