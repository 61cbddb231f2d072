"""Is a "started" streaming run still alive? The sensor's answer for runs the DefaultRunLauncher started.

Dagster's run monitoring cannot check the health of runs the ``DefaultRunLauncher`` started (it has no
``check_run_worker_health``), and the code server that started them only reports a run worker that died
while the server itself lives. When the server dies with its runs (a restarted code-location container),
the run stays STARTED in storage forever and the sensor would never relaunch the stream. So the sensor
asks, when no stream process holds the realtime warehouse on this host: does the server that launched the
run still execute it? A "no", or a server that is gone, means the run is lost: it is marked failed (with
the reason) and a new stream is launched, which resumes from the checkpoint exactly once.
Other launchers (K8s, Docker) have run monitoring for this and are left alone.
"""

from typing import Any

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.launcher import DefaultRunLauncher
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster._serdes import deserialize_value

GRPC_TIMEOUT_S = 10


def lost_stream_run(instance: DagsterInstance, run: DagsterRun, owner: dict[str, Any] | None) -> str | None:
    """Why ``run`` (a STARTED streaming run) is known to be dead, or None when it may be alive.

    ``owner`` is the live stream process recorded next to the realtime warehouse, if any
    (:func:`streaming.realtime_store.running_owner`).
    """
    launcher = instance.run_launcher
    if owner is not None or run.status != DagsterRunStatus.STARTED:
        return None  # a live stream process: never declared lost, whatever its run's server says
    if not isinstance(launcher, DefaultRunLauncher):
        return None
    client = launcher._get_grpc_client_for_termination(run.run_id)  # the server that launched the run
    if client is None:
        return None
    try:
        answer = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id), GRPC_TIMEOUT_S)
        running = deserialize_value(answer, CanCancelExecutionResult).can_cancel
    except Exception as exc:  # the server that launched it is gone
        return (
            f"the code server that launched it is gone ({type(exc).__name__}) and no stream process is alive"
        )
    return None if running else "the code server that launched it no longer executes it"
