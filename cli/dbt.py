"""``netflix-lambda dbt <dbt arguments>``: run dbt by hand, pointed at this deployment's bucket and warehouse.

dbt reads no environment variable of ours (``core/dbt.py``); this passes the same ``--vars``, target,
project and profiles folders that Dagster passes, e.g. ``netflix-lambda dbt build --select marts``.
On DuckDB it writes the build file (``batch_build.duckdb``), never the published warehouse.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

from core.bucket import Bucket
from core.dbt import DBT_PROJECT_DIR, dbt_vars, vars_args
from core.settings import Settings
from core.warehouse import Warehouse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dbt_args", nargs=argparse.REMAINDER, help="arguments for dbt, e.g. build --select marts"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    env = settings.subprocess_env()
    executable = shutil.which("dbt", path=env["PATH"]) or "dbt"
    values = dbt_vars(Bucket.from_settings(settings), Warehouse.from_settings(settings))
    command = [
        executable,
        *(args.dbt_args or ["--help"]),
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target", settings.warehouse.value,
        *vars_args(values),
    ]  # fmt: skip
    if len(command) > 1 and command[1] in ("--help", "-h", "--version"):
        command = command[:2]
    return subprocess.run(command, env=env, cwd=DBT_PROJECT_DIR, check=False).returncode
