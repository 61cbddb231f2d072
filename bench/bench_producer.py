"""Producer throughput against the embedded Tansu broker, next to a bare confluent-kafka loop in the same run.

Three modes, each on a fresh broker (Tansu's memory only grows, so no mode inherits another's load) and
each checked afterwards with the exact end offsets (the run fails if one event is missing):

* ``bare``  - a plain ``Producer.produce`` loop over pre-serialized (key, value) bytes with the same
  durability settings (acks=all, idempotence, compression, linger, batch size): the baseline;
* ``send``  - our path over the same pre-built messages: :func:`producer.publish.send` (delivery accounting,
  fault counters, stop/duration checks, flush);
* ``full``  - :func:`producer.publish.produce` from pre-generated watch records: also builds each event
  (ids, timestamps, envelope) and serializes it.

Usage: ``.venv/bin/python bench/bench_producer.py [--events 300000] [--repeats 3] [--compression zstd]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import confluent_kafka
from confluent_kafka import Producer

from core.kafka.cluster import KafkaCluster
from core.kafka.offsets import end_offsets
from core.settings import Settings
from embedded_broker.process import EmbeddedBroker
from producer.publish import FAST_LINGER_MS, EventFactory, produce, producer_config, send
from producer.sources import Catalog, synthetic_source

TOPIC = "bench_watch_events"


def bare_loop(conf: dict[str, str], pairs: list[tuple[bytes | None, bytes]], compression: str) -> float:
    started = time.perf_counter()
    # The same librdkafka settings as our path (incl. failure-only delivery reports): only Python differs.
    producer = Producer(producer_config(conf, compression=compression, linger_ms=FAST_LINGER_MS))
    produce_call = producer.produce
    for i, (key, value) in enumerate(pairs):
        try:
            produce_call(TOPIC, value, key)
        except BufferError:
            producer.poll(0.05)
            produce_call(TOPIC, value, key)
        if not i & 0x3FF:
            producer.poll(0)
    assert producer.flush(120) == 0
    return time.perf_counter() - started


def run_mode(mode: str, settings: Settings, data: dict, compression: str) -> tuple[float, float]:
    """(events/s, CPU microseconds of this process per event, librdkafka threads included)."""
    n = len(data["pairs"])
    with EmbeddedBroker.from_settings(settings, topics={TOPIC: 3}) as broker:
        conf = broker.client_config()
        cpu_started = time.process_time()
        if mode == "bare":
            elapsed = bare_loop(conf, data["pairs"], compression)
        else:
            options = dict(
                rate=0, topic=TOPIC, client_conf=conf, compression=compression, create_topics=False
            )
            if mode == "send":
                report = send(KafkaCluster.from_settings(settings), data["messages"], **options)
            else:
                report = produce(
                    KafkaCluster.from_settings(settings),
                    data["records"],
                    count=n,
                    schema_version=2,
                    seed=1,
                    **options,
                )
            assert report.acked == n and report.failed == 0, report.summary()
            elapsed = report.elapsed_s
        cpu_us = (time.process_time() - cpu_started) * 1e6 / n
        landed = sum(end_offsets(conf, TOPIC).values())
        assert landed == n, f"{mode}: {landed} events on the topic, expected {n}"
    return n / elapsed, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compression", default="zstd")
    args = parser.parse_args()

    catalog = Catalog(
        tuple(f"user_{i:05d}" for i in range(1, 10_001)),
        tuple("USA" if i % 5 else "Canada" for i in range(1, 10_001)),
        tuple(f"movie_{i:05d}" for i in range(1, 1_001)),
    )
    records = list(itertools.islice(synthetic_source(catalog, seed=1), args.events))
    factory = EventFactory(schema_version=2, seed=1)
    messages = [factory.build(dict(r)) for r in records]
    data = {"records": records, "messages": messages, "pairs": [(m.key, m.value) for m in messages]}
    mean_bytes = statistics.fmean(len(m.value) for m in messages)

    results: dict[str, list[float]] = {"bare": [], "send": [], "full": []}
    cpu: dict[str, list[float]] = {mode: [] for mode in results}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp))
        for repeat in range(args.repeats):
            order = list(results)[repeat % 3 :] + list(results)[: repeat % 3]  # rotate to spread drift
            for mode in order:
                rate, cpu_us = run_mode(mode, settings, data, args.compression)
                results[mode].append(rate)
                cpu[mode].append(cpu_us)
                print(
                    f"repeat {repeat + 1} {mode:>4}: {rate:>10,.0f} ev/s  {cpu_us:5.2f} CPU us/event",
                    flush=True,
                )
    median = {mode: statistics.median(rates) for mode, rates in results.items()}
    summary = {
        "events": args.events,
        "mean_event_bytes": round(mean_bytes),
        "compression": args.compression,
        "repeats": args.repeats,
        "median_ev_per_s": {k: round(v) for k, v in median.items()},
        "send_vs_bare": round(median["send"] / median["bare"], 2),
        "full_vs_bare": round(median["full"] / median["bare"], 2),
        "median_cpu_us_per_event": {k: round(statistics.median(v), 2) for k, v in cpu.items()},
        "all_runs": {k: [round(x) for x in v] for k, v in results.items()},
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"librdkafka {confluent_kafka.libversion()[0]}",
        "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
