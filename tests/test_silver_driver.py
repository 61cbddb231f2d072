"""The Silver step's driver JVM: a batch JVM with the throughput collector, C1-only on small inputs.

Under G1 the sorter of watch_history's partitioned write failed for want of contiguous regions at scale
100 (``silver.job.driver_jvm_options``). The options only count if the JVM Dagster's resource starts
really runs with them, so this starts it, in a child process: a driver JVM takes its options only when
it starts, and the test session's own Spark may be up already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.bucket import Bucket
from core.settings import Settings
from datagen.generator import generate

pytestmark = pytest.mark.slow

# Starts the Silver resource from the settings (NETFLIX_* environment); prints the collectors and the
# driver JVM's arguments.
START = """
from dagster import build_init_resource_context
from core.settings import get_settings
from netflix_assets.resources import build_resources
resource = build_resources(get_settings())["silver_spark"]
resource.setup_for_execution(build_init_resource_context())
factory = resource.spark_session.sparkContext._jvm.java.lang.management.ManagementFactory
print(",".join(sorted(str(b.getName()) for b in factory.getGarbageCollectorMXBeans())))
print(" ".join(str(a) for a in factory.getRuntimeMXBean().getInputArguments()))
resource.spark_session.stop()
"""


def test_silver_driver_runs_the_throughput_collector_and_c1_on_a_small_input(tmp_path: Path) -> None:
    generate(Bucket.from_settings(Settings(_env_file=None, data_dir=tmp_path)), scale=0.05)
    # Without the tests' own C1-only default (tests/conftest.py): the options must come from the resource.
    env = {**os.environ, "NETFLIX_DATA_DIR": str(tmp_path), "JDK_JAVA_OPTIONS": ""}
    done = subprocess.run([sys.executable, "-c", START], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    collectors, arguments = done.stdout.splitlines()[-2:]
    assert collectors == "PS MarkSweep,PS Scavenge"  # ParallelGC's two collectors, not G1's
    assert {"-XX:+UseParallelGC", "-XX:TieredStopAtLevel=1"} <= set(arguments.split())
