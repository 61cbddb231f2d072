"""Turn watch records into events and publish them: envelope, deliberate faults, pacing, delivery accounting.

:func:`produce` is the one entry point (the CLI, the tests and the stream's exactly-once test call it). It
returns a :class:`ProduceReport` whose counts are exact: every message handed to librdkafka is either
acked, failed (with the error) or still unflushed when the flush timed out, and every poison message and
late event is counted by kind. Faults are chosen by a seeded RNG, so the same seed gives the same faults,
and each faulty message carries a ``netflix-fault: <kind>`` header so a consumer can count them too.

Delivery reports are requested for failures only (``delivery.report.only.error``): a Python callback
per success would cost more than the produce call itself. Once ``flush()`` returns with nothing left in
the queue, every message without a failure report was acknowledged by the broker (acks=all).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, TextIO

import orjson
from confluent_kafka import KafkaError, KafkaException

from core.contracts import events
from core.kafka.admin import ensure_topics
from core.kafka.cluster import KafkaCluster
from producer.client import RenewingProducer

log = logging.getLogger(__name__)

FAULT_HEADER = "netflix-fault"
LATE = "late"
DUPLICATE = "duplicate"  # a re-send of the previous event, byte for byte (a retry without idempotence)
POISON_KINDS: tuple[str, ...] = (
    "invalid_json",
    "nan_token",
    "missing_field",
    "wrong_type",
    "unknown_version",
)
LATE_MIN_S, LATE_MAX_S = 31 * 60, 120 * 60  # "older than the watermark": 30+ minutes behind the send time
UNKNOWN_VERSION = 99
_BITRATE_KBPS = {"SD": 1_500, "HD": 5_000, "4K": 16_000, "Ultra HD": 25_000}
_REQUIRED_FIELDS = tuple(sorted(events.load_schema(events.LATEST_VERSION)["required"]))
_WRONG_TYPES: tuple[tuple[str, Any], ...] = (
    ("watch_duration_minutes", "45 min"),
    ("progress_percentage", "50%"),
    ("is_download", "yes"),
    ("user_rating", 4.5),
    ("user_id", 12345),
    ("event_time", 1_735_689_600),
)


class Outgoing(NamedTuple):
    """One message ready for Kafka, with what it is (``fault`` is None, ``"late"`` or a poison kind)."""

    key: bytes | None
    value: bytes
    fault: str | None
    version: int


def utc_iso(ts: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (the event schema's UTC timestamp form)."""
    millis = int(ts * 1000)
    return f"{_second_prefix(millis // 1000)}.{millis % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _second_prefix(second: int) -> str:
    # strftime dominates the cost of building an event; a live stream stamps the same second many times.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _uuid4(bits: int) -> str:
    """A random (version 4) UUID string from 128 random bits: 3x cheaper than ``str(uuid.uuid4())``."""
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_schema_version(text: str | int) -> int | None:
    """``"1"``/``"2"``/``"mixed"`` → 1, 2 or None (None = choose per event)."""
    if str(text) == "mixed":
        return None
    version = int(text)
    if version not in events.SUPPORTED_VERSIONS:
        raise ValueError(f"schema version {version} is not one of {events.SUPPORTED_VERSIONS} or 'mixed'")
    return version


class EventFactory:
    """Wraps watch records into events of the chosen version and injects the requested faults."""

    def __init__(
        self,
        *,
        schema_version: int | None = events.LATEST_VERSION,
        poison_rate: float = 0.0,
        late_rate: float = 0.0,
        seed: int | None = None,
        producer_id: str | None = None,
        clock: Any = time.time,
        duplicate_rate: float = 0.0,
    ) -> None:
        if not 0 <= poison_rate <= 1 or not 0 <= late_rate <= 1 or poison_rate + late_rate > 1:
            raise ValueError(
                f"poison_rate ({poison_rate}) and late_rate ({late_rate}) must be in [0, 1], sum <= 1"
            )
        if not 0 <= duplicate_rate <= 1:
            raise ValueError(f"duplicate_rate ({duplicate_rate}) must be in [0, 1]")
        self.schema_version = schema_version
        self.poison_rate = poison_rate
        self.late_rate = late_rate
        self.duplicate_rate = duplicate_rate
        self.rng = random.Random(seed)
        # Event ids must differ between runs even with the same seed (the stream deduplicates on them).
        self._id_bits = random.Random(os.urandom(16)).getrandbits
        self.host = socket.gethostname() or "localhost"
        self.producer_id = producer_id or f"{self.host}-{os.getpid()}"
        self.clock = clock
        self.sequence = 0

    def build(self, record: dict[str, Any], now: float | None = None) -> Outgoing:
        now = self.clock() if now is None else now
        rng = self.rng
        version = self.schema_version or rng.choice(events.SUPPORTED_VERSIONS)
        roll = rng.random()
        fault: str | None = None
        if roll < self.poison_rate:
            fault = POISON_KINDS[rng.randrange(len(POISON_KINDS))]
        elif roll < self.poison_rate + self.late_rate:
            fault = LATE
        sent_at = utc_iso(now)
        # A record's own event_time (replay --keep-time) replaces the send time; its key keeps its place.
        event: dict[str, Any] = {
            "event_id": _uuid4(self._id_bits(128)),
            "schema_version": version,
            "event_time": sent_at,
        }
        event.update(record)
        if fault == LATE:
            event["event_time"] = utc_iso(now - rng.uniform(LATE_MIN_S, LATE_MAX_S))
        if version >= 2:
            base = _BITRATE_KBPS.get(record.get("quality"))  # type: ignore[arg-type]
            event["bitrate_kbps"] = int(base * rng.uniform(0.6, 1.2)) if base else None
        event["producer"] = {
            "producer_id": self.producer_id,
            "host": self.host,
            "sent_at": sent_at,
            "sequence": self.sequence,
        }
        self.sequence += 1
        user_id = record.get("user_id")
        key = (
            user_id.encode()
            if isinstance(user_id, str)
            else None
            if user_id is None
            else str(user_id).encode()
        )
        if fault is None or fault == LATE:
            return Outgoing(key, orjson.dumps(event), fault, version)
        return Outgoing(key, self._poison(fault, event), fault, version)

    def _poison(self, kind: str, event: dict[str, Any]) -> bytes:
        """A malformed message of ``kind`` (every one fails :func:`events.validate_message`)."""
        rng = self.rng
        if kind == "invalid_json":
            whole = orjson.dumps(event)
            return whole[: rng.randrange(1, len(whole) - 1)]
        if kind == "nan_token":
            # What real exports contain for a missing number: a bare NaN, which is not JSON.
            event["watch_duration_minutes"] = None
            return orjson.dumps(event).replace(
                b'"watch_duration_minutes":null', b'"watch_duration_minutes":NaN'
            )
        if kind == "missing_field":
            del event[rng.choice(_REQUIRED_FIELDS)]
        elif kind == "wrong_type":
            name, value = rng.choice(_WRONG_TYPES)
            event[name] = value
        elif kind == "unknown_version":
            event["schema_version"] = UNKNOWN_VERSION
        return orjson.dumps(event)

    def messages(self, source: Iterable[dict[str, Any]]) -> Iterator[Outgoing]:
        """One message per record; with ``duplicate_rate``, a valid on-time message is sometimes sent twice
        (the copy, same key and bytes, marked ``duplicate``), as a producer retrying without idempotence
        does. The RNG is only drawn for it when the rate is set, so other seeds keep their faults."""
        for record in source:
            message = self.build(record)
            yield message
            if self.duplicate_rate and message.fault is None and self.rng.random() < self.duplicate_rate:
                yield message._replace(fault=DUPLICATE)


# -- the report ----------------------------------------------------------------------------------------
@dataclass
class ProduceReport:
    """What one :func:`produce` call did. ``sent == acked + failed + unflushed`` always holds."""

    topic: str
    sent: int = 0
    acked: int = 0
    failed: int = 0
    unflushed: int = 0
    poison: dict[str, int] = field(default_factory=lambda: dict.fromkeys(POISON_KINDS, 0))
    late: int = 0
    duplicates: int = 0  # re-sent copies (each also counted in ``sent`` and ``valid``)
    by_version: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    stopped_by: str = ""
    first_error: str | None = None
    renewals: int = 0  # new producers after a fatal error or a new cluster (producer/client.py)

    @property
    def poison_total(self) -> int:
        return sum(self.poison.values())

    @property
    def valid(self) -> int:
        """Messages that pass validation (late events are valid, just late)."""
        return self.sent - self.poison_total

    @property
    def events_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "poison_total": self.poison_total,
            "valid": self.valid,
            "events_per_s": round(self.events_per_s, 1),
        }

    def summary(self) -> str:
        poison = ", ".join(f"{k} {v}" for k, v in self.poison.items() if v) or "none"
        text = (
            f"{self.topic}: sent {self.sent:,}, acked {self.acked:,}, failed {self.failed:,}, "
            f"unflushed {self.unflushed:,} in {self.elapsed_s:.1f} s ({self.events_per_s:,.0f} ev/s; "
            f"stopped by {self.stopped_by}); valid {self.valid:,} (late {self.late:,}, "
            f"re-sent duplicates {self.duplicates:,}); "
            f"poison {self.poison_total:,} ({poison})"
        )
        if self.first_error:
            text += f"; first delivery error: {self.first_error}"
        if self.renewals:
            text += f"; producer renewed {self.renewals} time(s) (see the errors above)"
        return text


# -- Kafka ---------------------------------------------------------------------------------------------
#: linger.ms when paced: a live stream of a few events/s would otherwise send one record per batch, and
#: Tansu holds ~1.4 KB per batch in memory on top of the records (docs/speed-layer.md).
PACED_LINGER_MS = 1000
FAST_LINGER_MS = 20
DEFAULT_COMPRESSION = "zstd"


def producer_config(
    client_conf: dict[str, str],
    *,
    compression: str = DEFAULT_COMPRESSION,
    linger_ms: int = FAST_LINGER_MS,
    client_id: str = "netflix-producer",
) -> dict[str, Any]:
    """Durable, ordered per key, batched: acks=all + idempotence (no duplicates or reordering on retry).

    No topic is created by asking for it (librdkafka's producer default does): after the embedded broker
    restarted empty, the old instance's metadata requests created the event topic with the broker's default
    partition count (4) before the declared 3 could be. A missing topic is created as declared instead
    (``producer.client``).
    """
    return {
        **client_conf,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "allow.auto.create.topics": False,
        "compression.type": compression,
        "linger.ms": linger_ms,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "delivery.report.only.error": True,
    }


class _Progress:
    """One stderr line per second: sent / acked / in flight and the current rate."""

    def __init__(
        self, report: ProduceReport, client: RenewingProducer, target: float, stream: TextIO
    ) -> None:
        self.report, self.client, self.target, self.stream = report, client, target, stream
        self.last_t = time.monotonic()
        self.last_sent = 0
        self.end = "\r" if stream.isatty() else "\n"

    def tick(self, now: float, force: bool = False) -> None:
        if now - self.last_t < 1.0 and not force:
            return
        r = self.report
        rate = (r.sent - self.last_sent) / max(now - self.last_t, 1e-9)
        in_flight = len(self.client.producer)
        target = f"{self.target:g}/s" if self.target > 0 else "unthrottled"
        self.stream.write(
            f"[produce] sent {r.sent:,}  acked {r.sent - r.failed - in_flight:,}  failed {r.failed:,}  "
            f"in flight {in_flight:,} | {rate:,.0f} ev/s (target {target}) | poison {r.poison_total:,} "
            f"late {r.late:,}{self.end}"
        )
        self.stream.flush()
        self.last_t, self.last_sent = now, r.sent


def publish(
    client: RenewingProducer,
    topic: str,
    messages: Iterable[Outgoing],
    report: ProduceReport,
    *,
    rate: float = 0.0,
    count: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    progress: TextIO | None = None,
) -> None:
    """The send loop: paces to ``rate`` ev/s (0 = as fast as possible), stops at count/duration/stop.

    Written for the unthrottled case too (benchmarked against a bare produce loop): per message it only
    produces and bumps two counters; clocks, polls and the progress line run every 1,024 messages.
    """
    start = time.monotonic()
    deadline = start + duration_s if duration_s else None
    stop = stop or threading.Event()
    ticker = _Progress(report, client, rate, progress) if progress is not None else None
    header_cache = {kind: [(FAULT_HEADER, kind.encode())] for kind in (*POISON_KINDS, LATE, DUPLICATE)}
    versions = [0] * (max(events.SUPPORTED_VERSIONS) + 1)
    faults: dict[str, int] = {}
    produce_call = client.producer.produce
    limit = sys.maxsize if count is None else count
    paced = rate > 0
    sent = 0
    report.stopped_by = "source exhausted"
    for key, value, fault, version in messages:
        if sent >= limit:
            report.stopped_by = "count"
            break
        if paced:
            delay = start + sent / rate - time.monotonic()
            if delay > 0 and stop.wait(delay):
                report.stopped_by = "signal"
                break
        try:
            if fault is None:
                produce_call(topic, value, key)
            else:
                produce_call(topic, value, key, headers=header_cache[fault])
        except (BufferError, KafkaException) as refused:
            _produce_after(refused, client, topic, value, key, header_cache.get(fault or ""))
            produce_call = client.producer.produce  # a new producer, if the old one failed for good
        sent += 1
        versions[version] += 1
        if fault is not None:
            faults[fault] = faults.get(fault, 0) + 1
        if paced or not sent & 0x3FF:
            now = time.monotonic()
            client.poll(now)
            produce_call = client.producer.produce
            report.sent = sent
            if ticker is not None:
                ticker.tick(now)
            if deadline is not None and now >= deadline:
                report.stopped_by = "duration"
                break
            if stop.is_set():
                report.stopped_by = "signal"
                break
    else:
        if sent >= limit:
            report.stopped_by = "count"
    report.sent = sent
    report.late = faults.pop(LATE, 0)
    report.duplicates = faults.pop(DUPLICATE, 0)
    report.poison.update(faults)
    report.by_version = {v: n for v, n in enumerate(versions) if n}
    if ticker is not None:
        ticker.tick(time.monotonic(), force=True)


def _produce_after(
    refused: Exception,
    client: RenewingProducer,
    topic: str,
    value: bytes,
    key: bytes | None,
    headers: list | None,
) -> None:
    """``produce`` refused the message: the local queue is full (the broker is slower than us: serve
    delivery reports until it has room) or the producer failed for good (a new one takes the message)."""
    while True:
        if isinstance(refused, KafkaException):
            client.recover(refused)
        else:
            client.producer.poll(0.05)
        try:
            if headers is None:
                client.producer.produce(topic, value, key)
            else:
                client.producer.produce(topic, value, key, headers=headers)
            return
        except (BufferError, KafkaException) as again:
            refused = again


def send(
    kafka: KafkaCluster,
    messages: Iterable[Outgoing],
    *,
    rate: float = 5.0,
    count: int | None = None,
    duration_s: float | None = None,
    topic: str | None = None,
    client_conf: dict[str, str] | None = None,
    compression: str = DEFAULT_COMPRESSION,
    linger_ms: int | None = None,
    client_id: str = "netflix-producer",
    stop: threading.Event | None = None,
    progress: TextIO | None = None,
    flush_timeout_s: float = 60.0,
    create_topics: bool = True,
) -> ProduceReport:
    """Publish ready messages and account for every one: the Kafka half of :func:`produce`.

    ``client_conf`` defaults to what ``kafka`` resolves now (the real cluster or the running embedded
    broker). ``linger_ms`` defaults to :data:`PACED_LINGER_MS` when ``rate`` > 0,
    else :data:`FAST_LINGER_MS`. Always flushes before returning, also when interrupted.
    """
    conf = client_conf or kafka.client_config()
    topic = topic or kafka.topic

    def create() -> None:
        if create_topics:
            ensure_topics(conf, {**kafka.topics(), topic: kafka.partitions}, kafka.replication_factor)

    create()
    if linger_ms is None:
        linger_ms = PACED_LINGER_MS if rate > 0 else FAST_LINGER_MS
    report = ProduceReport(topic=topic)

    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            client.delivery_failed(error)
            report.failed += 1
            if report.first_error is None:
                report.first_error = str(error)
                log.error("delivery to %s failed: %s (further failures are counted only)", topic, error)

    config = producer_config(conf, compression=compression, linger_ms=linger_ms, client_id=client_id)
    client = RenewingProducer({**config, "on_delivery": on_delivery}, topic, on_new_cluster=create)
    started = time.monotonic()
    try:
        publish(
            client,
            topic,
            messages,
            report,
            rate=rate,
            count=count,
            duration_s=duration_s,
            stop=stop,
            progress=progress,
        )
    finally:
        report.unflushed = client.flush(flush_timeout_s)
        report.failed += client.unreported
        report.renewals = client.renewals
        if report.unflushed:
            log.error(
                "%d message(s) still unacknowledged after a %.0f s flush: broker unreachable or too slow",
                report.unflushed,
                flush_timeout_s,
            )
        report.acked = report.sent - report.failed - report.unflushed
        report.elapsed_s = time.monotonic() - started
    return report


def produce(
    kafka: KafkaCluster,
    source: Iterable[dict[str, Any]],
    *,
    rate: float = 5.0,
    count: int | None = None,
    duration_s: float | None = None,
    poison_rate: float = 0.0,
    late_rate: float = 0.0,
    schema_version: int | str = events.LATEST_VERSION,
    seed: int | None = None,
    producer_id: str | None = None,
    duplicate_rate: float = 0.0,
    **send_options: Any,
) -> ProduceReport:
    """Publish watch events built from ``source`` records; the one entry point of the producer.

    Stops after ``count`` events, ``duration_s`` seconds, when the source is exhausted or when ``stop`` is
    set (the CLI sets it on SIGINT/SIGTERM). ``schema_version`` is 1, 2 or ``"mixed"``; faults are drawn
    with ``seed``. Other keyword arguments (topic, client_conf, compression, linger_ms, stop, progress,
    flush_timeout_s, create_topics) go to :func:`send`.
    """
    factory = EventFactory(
        schema_version=parse_schema_version(schema_version),
        poison_rate=poison_rate,
        late_rate=late_rate,
        seed=seed,
        producer_id=producer_id,
        duplicate_rate=duplicate_rate,
    )
    return send(
        kafka,
        factory.messages(source),
        rate=rate,
        count=count,
        duration_s=duration_s,
        client_id=factory.producer_id,
        **send_options,
    )
