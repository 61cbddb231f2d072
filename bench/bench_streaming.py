"""Speed-layer benchmark: sustained throughput and event→warehouse latency, with a no-Kafka ceiling.

Three measurements in one run, one SparkSession (``local[2]`` by default), real Tansu broker:

1. **Kafka throughput**: ``--events`` watch events (2 % poison, 2 % late) are produced up front, then the
   stream drains them with ``availableNow`` in batches of ``--batch`` events (the production default of
   ``NETFLIX_STREAM_MAX_EVENTS_PER_TRIGGER``, what a stream behind by a backlog reads per trigger):
   events per second from query start to the last commit of ``engagement_health_realtime``, and over
   the batches after the first. A full batch on a topic of its own runs first: a stream runs for hours,
   and the JVM compiles Spark's generated code only after a few hundred thousand rows.
2. **Ceilings**: the same query fed by Spark's built-in rate source (each tick picks one of the
   pre-generated messages) and by the *same* messages (read back from the topic, same coordinates) as
   Parquet files, four files per batch. ``Kafka / ceiling`` is what the Kafka source costs.
3. **Latency**: the stream runs with its normal trigger while a producer publishes at each of ``--rates``
   events/s for ``--latency-seconds``; per event, latency = the micro-batch's snapshot publication time
   minus the event's Kafka timestamp (read from Silver, so it is exact per event, not per batch).

With ``--legacy-share F``, that fraction of the events is published after the others as the original
pipeline's producer wrote them (schema version 0: ``json.dumps``, ``timestamp``, bare ``NaN``, no key): the
Kafka source maps them (``core/contracts/legacy_v0.py``), the ceilings get them already mapped, so
``Kafka / ceiling`` then shows what the mapping costs.

Other jobs may share the machine's cores, so besides wall-clock rates each throughput run reports the CPU
seconds its whole process tree used (JVM, Python workers, broker) per event, and the rate two idle cores
would bound. The work folder (~400 MB) is deleted at the end unless ``--keep-work``.

    .venv/bin/python bench/bench_streaming.py                      # defaults used for docs/benchmarks.md
    .venv/bin/python bench/bench_streaming.py --events 100000 --rates 5,1000 --latency-seconds 30  # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from core.bucket import Bucket  # noqa: E402
from core.contracts.speed import SILVER_KEY  # noqa: E402
from core.kafka.cluster import KafkaCluster  # noqa: E402
from core.kafka.offsets import end_offsets  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.spark import start_spark  # noqa: E402
from core.warehouse import WarehouseLayout  # noqa: E402
from datagen import generate  # noqa: E402
from embedded_broker.process import EmbeddedBroker  # noqa: E402
from producer.publish import produce, producer_config  # noqa: E402
from producer.sources import Catalog, synthetic_source  # noqa: E402
from streaming.job import StreamOptions, StreamSummary, run_stream  # noqa: E402
from streaming.kafka_source import SCHEMA  # noqa: E402

log = logging.getLogger("bench_streaming")
FILES_PER_BATCH = 4  # the file ceiling's tasks per batch: what the Kafka source gets on local[2]


def settings_for(root: Path, broker: EmbeddedBroker, args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=root,
        bucket_url=str(args.work / "bucket"),  # shared raw/ (dimensions); speed/ is per run below
        kafka_bootstrap_servers=broker.bootstrap_servers,
        spark_master=args.master,
        spark_shuffle_partitions=args.shuffle_partitions,
        spark_driver_memory=args.driver_memory,
        **extra,
    )


def stream(
    settings: Settings,
    spark: Any,
    *,
    stop_event: threading.Event | None = None,
    on_batch: Any = None,
    source: Any = None,
    **options: Any,
) -> StreamSummary:
    """The stream as the deployment described by ``settings`` runs it, with ``options`` overridden."""
    return run_stream(
        spark,
        Bucket.from_settings(settings),
        WarehouseLayout.from_settings(settings),
        KafkaCluster.from_settings(settings),
        StreamOptions.from_settings(settings, **options),
        stop_event=stop_event,
        on_batch=on_batch,
        source=source,
    )


def fresh_speed(settings: Settings) -> None:
    """Each measurement starts with an empty checkpoint, speed/ folder and realtime warehouse."""
    bucket = Bucket.from_settings(settings)
    bucket.delete("speed", recursive=True)
    shutil.rmtree(settings.warehouse_dir, ignore_errors=True)


def read_back(conf: dict[str, str], topic: str) -> pa.Table:
    """The topic's messages with their coordinates, exactly as the Kafka source delivers them."""
    ends = end_offsets(conf, topic)
    consumer = Consumer({**conf, "group.id": "bench-read-back", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    cols: dict[str, list[Any]] = {"partition": [], "offset": [], "key": [], "value": [], "timestamp": []}
    while len(cols["offset"]) < sum(ends.values()):
        for m in consumer.consume(10_000, 1.0):
            if m.error() is None:
                cols["partition"].append(m.partition())
                cols["offset"].append(m.offset())
                cols["key"].append(m.key())
                cols["value"].append(m.value())
                cols["timestamp"].append(m.timestamp()[1] * 1000)
    consumer.close()
    from streaming.kafka_source import LEGACY_COLUMN, arrow_schema, legacy_events

    schema = arrow_schema()
    arrays = {f.name: pa.array(cols[f.name], f.type) for f in schema if f.name != LEGACY_COLUMN}
    arrays[LEGACY_COLUMN] = legacy_events(arrays["value"])  # as the source maps legacy v0 events
    return pa.table([arrays[f.name] for f in schema], schema=schema)


def publish_legacy(conf: dict[str, str], topic: str, catalog: Catalog, count: int, seed: int) -> None:
    """``count`` events as the original producer sent them: pandas records (missing → NaN, ratings as
    floats) plus ``timestamp``, ``json.dumps``-encoded, without a key."""
    from itertools import islice

    from confluent_kafka import Producer

    producer = Producer(producer_config(conf, client_id="bench-legacy-v0"))
    for record in islice(synthetic_source(catalog, seed=seed), count):
        legacy = {k: math.nan if v is None else v for k, v in record.items()}
        rating = record["user_rating"]
        legacy["user_rating"] = math.nan if rating is None else float(rating)
        now = time.time()
        legacy["timestamp"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
        while True:
            try:
                producer.produce(topic, json.dumps(legacy).encode())
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} legacy v0 events not delivered")
    log.info("published %d legacy v0 events", count)


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every descendant (JVM, Python workers, broker).

    Other jobs share this machine's two cores, so wall-clock rates vary with their load; CPU time per
    event does not, and ``2 cores / (CPU per event)`` bounds what an idle machine would sustain.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(cpu.get(pid, 0.0) for pid in tree)


def throughput(label: str, run: Any, events: int) -> dict[str, Any]:
    """Run ``run(on_batch)``; time and CPU from its start to the commit of the last batch holding events.

    Counting to the last non-empty batch keeps a source that keeps ticking after the events ran out (the
    rate source) comparable with one that stops (Kafka and files under ``availableNow``).
    """
    batches: list[Any] = []
    last: dict[str, float] = {}

    def on_batch(metrics: Any) -> None:
        batches.append(metrics)
        if not metrics.skipped and metrics.rows_in:
            last.update(at=time.time(), cpu=tree_cpu_seconds())

    cpu_before = tree_cpu_seconds()
    started = time.time()
    run(on_batch)
    elapsed = last.get("at", time.time()) - started
    cpu = last.get("cpu", tree_cpu_seconds()) - cpu_before
    done = [b for b in batches if not b.skipped and b.rows_in]
    warm = done[1:]
    warm_rows = sum(b.rows_in for b in warm)
    warm_seconds = sum(b.duration_s for b in warm)
    result = {
        "events": sum(b.rows_in for b in done),
        "batches": len(done),
        "seconds": round(elapsed, 1),
        "events_per_s": round(events / elapsed),
        "cpu_s": round(cpu, 1),
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "idle_2_core_bound_events_per_s": round(2 * events / cpu) if cpu else None,
        "load_average_1m_after": os.getloadavg()[0],
        "warm_events_per_s": round(warm_rows / warm_seconds) if warm_seconds else None,
        # What the whole-run rate includes besides the batches: starting the query (source, dimensions).
        "query_start_s": round(done[0].committed_at - done[0].duration_s - started, 1) if done else None,
        "first_batch_s": round(done[0].duration_s, 1) if done else None,
        "stage_s": {
            k: round(sum(b.stage_s.get(k, 0) for b in warm), 2) for k in (done[-1].stage_s if done else {})
        },
    }
    log.info("%s: %s", label, json.dumps(result))
    return result


def latency(settings: Settings, spark: Any, catalog: Catalog, args: argparse.Namespace) -> list[dict]:
    """The live stream at each rate; per-event latency from Silver's Kafka timestamps and publish times."""
    fresh_speed(settings)
    published: dict[int, float] = {}
    stop = threading.Event()

    def on_batch(m: Any) -> None:
        if not m.skipped:
            published[m.batch_id] = m.committed_at

    live = threading.Thread(
        target=stream, args=(settings, spark), kwargs={"stop_event": stop, "on_batch": on_batch}, daemon=True
    )
    live.start()
    time.sleep(args.stream_warmup)
    phases = []
    for rate in args.rates:
        began = time.time()
        source = synthetic_source(catalog, seed=rate)
        report = produce(
            KafkaCluster.from_settings(settings), source, rate=rate, duration_s=args.latency_seconds
        )
        phases.append((rate, began, time.time(), report.sent))
        time.sleep(2)
    time.sleep(settings.stream_trigger_seconds * 2 + 10)  # let the last events reach the warehouse
    stop.set()
    live.join(300)
    silver = Bucket.from_settings(settings).uri(SILVER_KEY)
    con = duckdb.connect()
    con.execute("CREATE TABLE published (batch_id BIGINT, published_at DOUBLE)")
    con.executemany("INSERT INTO published VALUES (?, ?)", list(published.items()))
    results = []
    for rate, began, ended, sent in phases:
        row = con.sql(
            f"""
            SELECT count(*), quantile_cont(lat, 0.5), quantile_cont(lat, 0.95), max(lat) FROM (
                SELECT p.published_at - epoch_us(s.kafka_timestamp) / 1e6 AS lat
                FROM read_parquet('{silver}/**/*.parquet', hive_partitioning=true) s
                JOIN published p USING (batch_id)
                WHERE epoch_us(s.kafka_timestamp) / 1e6 BETWEEN {began} AND {ended})
            """
        ).fetchall()[0]
        result = {"rate": rate, "sent": sent, "measured_events": row[0], "p50_s": round(row[1] or 0, 2),
                  "p95_s": round(row[2] or 0, 2), "max_s": round(row[3] or 0, 2)}  # fmt: skip
        log.info("latency at %s ev/s: %s", rate, json.dumps(result))
        results.append(result)
    return results


def run_rate_source(
    spark: Any, settings: Settings, lookup: Path, args: argparse.Namespace, on_batch: Any
) -> None:
    """The same query fed by Spark's built-in ``rate-micro-batch`` source: tick ``value`` picks
    pre-generated message ``value % pool`` (broadcast hash join of the tick batch against the cached pool
    of the topic's first ``--batch`` messages, so each batch scans one batch worth of cache whatever
    ``--events`` is), ``--batch`` ticks per micro-batch, until ``--events`` messages went through."""
    from pyspark.sql import functions as F

    fresh_speed(settings)
    messages = spark.read.parquet(str(lookup)).repartition(FILES_PER_BATCH).cache()
    messages.count()
    seen = [0]
    stop = threading.Event()

    def count(metrics: Any) -> None:
        on_batch(metrics)
        seen[0] += metrics.rows_in
        if seen[0] >= args.events:
            stop.set()

    def source(session: Any) -> Any:
        ticks = (
            session.readStream.format("rate-micro-batch")
            .option("rowsPerBatch", args.batch)
            .option("numPartitions", 3)
            .load()
            .where(F.col("value") < args.events)
        )
        pool = F.lit(args.batch)
        joined = messages.join(F.broadcast(ticks), messages["idx"] == ticks["value"] % pool)
        return joined.select(*[messages[name] for name in SCHEMA.fieldNames()])

    try:
        stream(settings, spark, trigger_seconds=1.0, stop_event=stop, on_batch=count,
               publish_dead_letters=False, source=source, query_name="rate_ceiling")  # fmt: skip
    finally:
        messages.unpersist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_500_000)
    parser.add_argument(
        "--batch", type=int, default=Settings.model_fields["stream_max_events_per_trigger"].default,
        help="events per micro-batch (every source)",
    )  # fmt: skip
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[5, 1_000, 10_000])
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument(
        "--stream-warmup", type=float, default=20.0, help="seconds before the first latency phase"
    )
    parser.add_argument("--trigger-seconds", type=float, default=10.0)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=2)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "streaming_work")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--legacy-share", type=float, default=0.0, help="fraction of --events sent as legacy v0 events"
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (topic copy, sinks)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "streaming.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    logging.getLogger("streaming").setLevel(logging.WARNING)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "load_before": os.getloadavg(), "args": {
        k: str(v) for k, v in vars(args).items()}}  # fmt: skip

    with EmbeddedBroker(args.work / "broker", record_state=False) as broker:
        conf = broker.client_config()
        base = settings_for(args.work / "kafka", broker, args, stream_max_events_per_trigger=args.batch,
                            stream_trigger_seconds=args.trigger_seconds)  # fmt: skip
        bucket = Bucket.from_settings(base)
        generate(bucket, 0.1, seed=42)
        catalog = Catalog.from_bucket(bucket)
        legacy = round(args.events * args.legacy_share)
        report = produce(KafkaCluster.from_settings(base), synthetic_source(catalog, seed=1), rate=0,
                         count=args.events - legacy, poison_rate=0.02, late_rate=0.02, seed=2)  # fmt: skip
        log.info("produced: %s", report.summary())
        if legacy:
            publish_legacy(conf, base.kafka_topic, catalog, legacy, seed=5)
        messages = read_back(conf, base.kafka_topic)
        files = args.work / "ceiling_input"
        files.mkdir()
        for i, start in enumerate(range(0, messages.num_rows, args.batch)):
            for j in range(FILES_PER_BATCH):  # as many tasks per batch as the Kafka source's minPartitions
                piece = messages.slice(start, args.batch).slice(j * -(-args.batch // FILES_PER_BATCH))
                pq.write_table(
                    piece.slice(0, -(-args.batch // FILES_PER_BATCH)), files / f"part-{i:05d}-{j}.parquet"
                )

        spark = start_spark(base, "bench_streaming")
        # Warm-up on a small file stream so no measured run pays the JVM's first compilation ...
        warm_settings = settings_for(args.work / "warmup", broker, args)
        fresh_speed(warm_settings)
        warm_files = args.work / "warm_input"
        warm_files.mkdir()
        pq.write_table(messages.slice(0, min(50_000, messages.num_rows)), warm_files / "part-0.parquet")
        stream(
            warm_settings,
            spark,
            available_now=True,
            publish_dead_letters=False,
            source=lambda s: s.readStream.schema(SCHEMA).parquet(str(warm_files)),
            query_name="warmup",
        )
        # ... and one full batch on a topic of its own, so no measured run pays the JIT's warm-up.
        kafka_warm = settings_for(args.work / "warmup_kafka", broker, args, kafka_topic="bench_warmup",
                                  stream_max_events_per_trigger=args.batch)  # fmt: skip
        produce(KafkaCluster.from_settings(kafka_warm), synthetic_source(catalog, seed=3), rate=0,
                count=args.batch, poison_rate=0.02, late_rate=0.02, seed=4)  # fmt: skip
        stream(kafka_warm, spark, available_now=True, publish_dead_letters=False, query_name="warmup_kafka")

        fresh_speed(base)
        results["kafka"] = throughput(
            "kafka source",
            lambda cb: stream(base, spark, available_now=True, on_batch=cb),
            args.events,
        )
        ceiling_settings = settings_for(args.work / "ceiling", broker, args)
        fresh_speed(ceiling_settings)

        def file_source(session: Any) -> Any:
            return (
                session.readStream.schema(SCHEMA)
                .option("maxFilesPerTrigger", FILES_PER_BATCH)
                .parquet(str(files))
            )

        results["ceiling"] = throughput(
            "file source (ceiling)",
            lambda cb: stream(
                ceiling_settings,
                spark,
                available_now=True,
                on_batch=cb,
                publish_dead_letters=False,
                source=file_source,
                query_name="ceiling",
            ),
            args.events,
        )
        lookup = args.work / "rate_lookup.parquet"
        pool = messages.slice(0, args.batch)
        pq.write_table(pool.append_column("idx", pa.array(range(pool.num_rows), pa.int64())), lookup)
        results["rate_ceiling"] = throughput(
            "rate source (ceiling)",
            lambda cb: run_rate_source(
                spark, settings_for(args.work / "rate", broker, args), lookup, args, cb
            ),
            args.events,
        )
        results["rate_ratio"] = round(
            results["kafka"]["events_per_s"] / results["rate_ceiling"]["events_per_s"], 2
        )
        results["ratio"] = round(results["kafka"]["events_per_s"] / results["ceiling"]["events_per_s"], 2)
        results["cpu_ratio"] = round(
            results["ceiling"]["cpu_us_per_event"] / results["kafka"]["cpu_us_per_event"], 2
        )
        results["warm_ratio"] = round(
            (results["kafka"]["warm_events_per_s"] or 0) / (results["ceiling"]["warm_events_per_s"] or 1), 2
        )
        if not args.skip_latency:
            live = settings_for(
                args.work / "live",
                broker,
                args,
                stream_trigger_seconds=args.trigger_seconds,
                stream_max_events_per_trigger=args.batch,
                kafka_topic="bench_live_events",
            )
            # Creates the topic: the stream starts on it empty.
            produce(KafkaCluster.from_settings(live), iter(()), rate=0)
            results["latency"] = latency(live, spark, catalog, args)
        spark.stop()
    results["load_after"] = os.getloadavg()
    if not args.keep_work:
        shutil.rmtree(args.work, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
