"""When the sensor declares a "started" streaming run lost (DefaultRunLauncher runs have no health check).

End to end, with a killed code server and Postgres: ``tests/test_dagster_postgres.py``. Here the decision
itself, against a real local instance: a run whose launching server is gone is lost unless a stream
process is alive; a run without server information, or not STARTED, is never declared lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from core.processes import free_port
from netflix_assets.defs.speed.jobs import JOB_NAME
from netflix_assets.defs.speed.run_health import lost_stream_run


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.local_temp() as local:
        yield local


def run(instance: DagsterInstance, status: DagsterRunStatus, **tags: str) -> DagsterRun:
    return instance.add_run(DagsterRun(job_name=JOB_NAME, run_id=f"{len(instance.get_runs()):036d}",
                                       status=status, tags=tags))  # fmt: skip


def test_a_run_whose_code_server_is_gone_is_lost_unless_a_stream_lives(instance: DagsterInstance) -> None:
    gone = json.dumps({"host": "127.0.0.1", "port": free_port(), "socket": None})  # nothing listens there
    started = run(instance, DagsterRunStatus.STARTED, **{GRPC_INFO_TAG: gone})
    reason = lost_stream_run(instance, started, owner=None)
    assert reason is not None and "code server that launched it is gone" in reason
    assert lost_stream_run(instance, started, owner={"pid": 1, "host": "elsewhere"}) is None

    assert lost_stream_run(instance, run(instance, DagsterRunStatus.STARTED), owner=None) is None  # no info
    canceling = run(instance, DagsterRunStatus.CANCELING, **{GRPC_INFO_TAG: gone})
    assert lost_stream_run(instance, canceling, owner=None) is None
