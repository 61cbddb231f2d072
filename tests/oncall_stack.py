"""The real stack the on-call end-to-end test and benchmark run against: the embedded broker (with its state
file, as ``netflix-lambda broker`` writes it), ``netflix-lambda produce`` / ``stream`` / ``monitor``
subprocesses and a local alert receiver, all in one temp folder; plus an independent reading of what the
freshness page should say (from the topic and the stream's checkpoint, not through the monitor's code).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

from core.bucket import Bucket
from core.checkpoint import read_progress
from core.contracts.speed import checkpoint_key
from core.kafka.cluster import KafkaCluster
from core.kafka.offsets import end_offsets
from core.settings import Settings
from datagen import generate
from embedded_broker.process import EmbeddedBroker
from oncall.definitions import DEFAULT_SLO_FILE
from oncall.heartbeat import STATUS_FILE, read_heartbeat, read_json
from tests.alert_receiver import AlertReceiver, Received, receiver_env
from tests.test_streaming_exactly_once import write_silver_watch_history

EXE = [sys.executable, "-m", "cli.main"]
SOURCE = "netflix-lambda@test"
OBJECTIVE_S = 60.0


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    receiver: AlertReceiver
    broker: EmbeddedBroker
    logs: Path
    rate: float
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # -- processes ------------------------------------------------------------------------------------
    def start(self, name: str, *args: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [*EXE, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def start_stream(self) -> None:
        self.start("stream", "stream", "--trigger-seconds", "5")  # well inside the 60 s objective

    def start_producer(self, poison_rate: float = 0.001) -> None:
        self.start(
            "producer", "produce", "--rate", str(self.rate), "--poison-rate", str(poison_rate), "--quiet"
        )

    def start_monitor(self) -> None:
        self.start("monitor", "monitor")

    # -- observations -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return read_json(self.settings.oncall_dir / STATUS_FILE) or {}

    def slo(self, name: str) -> dict[str, Any]:
        return self.status().get("slos", {}).get(name, {})

    def monitor_samples(self) -> int:
        beat = read_heartbeat(self.settings.oncall_dir)
        return 0 if beat is None else beat.samples

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.tail(name)}"
            time.sleep(0.5)
        logs = "\n".join(f"{name}:\n{self.tail(name)}" for name in ("monitor", "stream", "producer"))
        raise AssertionError(f"{what}: not within {timeout_s:.0f} s\n{logs}")

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def pages(self, key: str, action: str = "trigger") -> list[Received]:
        return self.receiver.pagerduty(action, f"{SOURCE}/{key}")

    def first_unreflected_ms(self) -> dict[int, int]:
        """Timestamp of the first message after the stream's committed offset, per lagging partition."""
        progress = read_progress(Bucket.from_settings(self.settings), checkpoint_key())
        conf = {"bootstrap.servers": self.broker.bootstrap_servers}
        ends = end_offsets(conf, self.settings.kafka_topic)
        consumer = Consumer({**conf, "group.id": "oncall-e2e-check", "enable.auto.commit": False})
        found: dict[int, int] = {}
        try:
            for partition, end in ends.items():
                committed = progress.offsets.get(partition, 0)
                if committed >= end:
                    continue
                consumer.assign([TopicPartition(self.settings.kafka_topic, partition, committed)])
                deadline = time.monotonic() + 30
                while partition not in found and time.monotonic() < deadline:
                    message = consumer.poll(0.5)
                    if message is not None and message.error() is None:
                        assert message.offset() == committed
                        found[partition] = message.timestamp()[1]
        finally:
            consumer.close()
        return found


def slo_file(path: Path, changes: Callable[[dict[str, Any]], None]) -> Path:
    """The project's SLO file with ``changes`` applied, written to ``path``."""
    document = yaml.safe_load(DEFAULT_SLO_FILE.read_text())
    changes(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextmanager
def running_stack(
    root: Path, slos: Path, rate: float = 20, extra_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """Broker, data, producer and stream up, the stream's first commit done, then a monitor sampling a
    fresh speed layer; everything stopped by PID afterwards."""
    data_dir = root / "data"
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = Settings(_env_file=None, data_dir=data_dir)
    cluster = KafkaCluster.from_settings(base)
    broker = EmbeddedBroker(cluster.state_dir, supervisor_pid=os.getpid(), topics=cluster.topics()).start()
    bucket = Bucket.from_settings(base)
    generate(bucket, 0.02, seed=5)
    write_silver_watch_history(bucket)
    with AlertReceiver() as receiver:
        env = {k: v for k, v in base.subprocess_env().items() if not k.startswith("NETFLIX_")}
        env.update(
            NETFLIX_DATA_DIR=str(data_dir),
            NETFLIX_SPARK_MASTER="local[2]",
            NETFLIX_SPARK_SHUFFLE_PARTITIONS="2",
            NETFLIX_SPARK_DRIVER_MEMORY="1g",
            NETFLIX_SLO_FILE=str(slos),
            **receiver_env(receiver),
            **(extra_env or {}),
        )
        fields = {k.removeprefix("NETFLIX_").lower(): v for k, v in env.items() if k.startswith("NETFLIX_")}
        stack = Stack(Settings(_env_file=None, **fields), env, receiver, broker, logs, rate)
        try:
            stack.start_producer()
            stack.start_stream()
            stack.wait_for(
                "the stream's first commit",
                lambda: read_progress(bucket, checkpoint_key()).committed_batch,
                600,  # Spark's first micro-batch takes minutes on a loaded 2-core machine
            )
            stack.start_monitor()
            stack.wait_for(
                "a fresh speed layer", lambda: stack.slo("speed_freshness").get("good") is True, 300
            )
            yield stack
        finally:
            for name in list(stack.procs):
                stack.stop(name, signal.SIGKILL if name == "stream" else signal.SIGTERM)
            broker.stop()
