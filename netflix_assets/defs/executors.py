"""How the jobs execute their steps, and why, on the 2-core machine the project runs on by default.

* **In-process, not a process per step.** Dagster's default (multiprocess) starts a Python per step that
  imports the whole code location (~3 s of CPU each here, Spark and dbt clients included) before the
  step runs. The batch job is a chain of eight steps, six of them one-second raw profiles, and the
  stream is one step that never ends: neither has steps that could use a second core Spark and dbt do
  not already use. So both jobs, and ad hoc materializations from the UI, run their steps in the run's
  own process.
* **The batch layer yields the CPU to the stream.** Its run process lowers its priority (Unix niceness,
  ``NETFLIX_BATCH_NICENESS``, 5 by default) before anything starts, so its Spark JVM and dbt inherit it.
  The stream's SLO is a minute, the marts' an hour: when both want the cores (``make run`` starts them
  together), Linux gives the stream about three times the batch run's share. Not more: at niceness 10
  (a tenth of the share) a batch run on a machine busy with other work was starved for many minutes
  (``tests/test_launcher.py`` on the shared development machine, load average 30–40).
"""

import os

from dagster import ExecutorDefinition, InitExecutorContext, in_process_executor


def lower_priority(niceness: int) -> None:
    """Raise this process's niceness to ``niceness`` (never lowers it: that needs privileges)."""
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)


def in_process_yielding_cpu(niceness: int) -> ExecutorDefinition:
    """The in-process executor, in a run process at ``niceness`` (0: normal priority)."""
    create = in_process_executor.executor_creation_fn
    assert create is not None

    def create_at_niceness(context: InitExecutorContext):  # type: ignore[no-untyped-def]
        lower_priority(niceness)  # before the executor runs anything: resources (Spark) start after this
        return create(context)

    return ExecutorDefinition(
        name="in_process_yielding_cpu",
        config_schema=in_process_executor.config_schema,
        executor_creation_fn=create_at_niceness,
        description=f"Steps in the run process, at niceness {niceness} (netflix_assets/defs/executors.py).",
    )
