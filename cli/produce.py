"""``netflix-lambda produce``: publish watch events to the event topic (replayed or synthetic, with faults).

Defaults are the steady producer of the run command: synthetic events over the raw users and movies at
5 events/s (about 430k a day, which keeps the memory-only embedded broker small), until Ctrl-C. On
SIGINT/SIGTERM it stops sending, flushes what is in flight and prints the delivery report; the exit code
is 1 if any message failed or was left unacknowledged.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys

from confluent_kafka import KafkaException

from core.bucket import Bucket
from core.contracts import events
from core.kafka.cluster import BrokerNotRunning, KafkaCluster
from core.processes import stop_on_signals
from core.settings import Settings
from producer.publish import DEFAULT_COMPRESSION, FAST_LINGER_MS, PACED_LINGER_MS, produce
from producer.sources import Catalog, SourceDataMissing, replay_source, synthetic_source

log = logging.getLogger("producer")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=("synthetic", "replay"),
        default="synthetic",
        help="synthetic events over raw users/movies, or a replay of raw/watch_history.csv",
    )
    parser.add_argument(
        "--keep-time",
        action="store_true",
        help="replay: keep each row's watch_date as event time instead of re-basing to now",
    )
    parser.add_argument(
        "--rate", type=float, default=5.0, help="events per second; 0 = unthrottled (default 5)"
    )
    parser.add_argument("--count", type=int, default=None, help="stop after this many events")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--poison-rate",
        type=_fraction,
        default=0.0,
        help="share of malformed messages (invalid JSON, NaN, missing field, wrong type, unknown version)",
    )
    parser.add_argument(
        "--late-rate",
        type=_fraction,
        default=0.0,
        help="share of valid events whose event time is 31-120 minutes in the past",
    )
    parser.add_argument(
        "--duplicate-rate",
        type=_fraction,
        default=0.0,
        help="share of valid events sent twice, as a producer retrying without idempotence does",
    )
    parser.add_argument(
        "--schema-version",
        choices=[*map(str, events.SUPPORTED_VERSIONS), "mixed"],
        default=str(events.LATEST_VERSION),
        help="event schema version to emit",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the synthetic stream and of the faults"
    )
    parser.add_argument("--topic", default=None, help="topic (default: NETFLIX_KAFKA_TOPIC)")
    parser.add_argument(
        "--compression", default=DEFAULT_COMPRESSION, choices=("zstd", "lz4", "snappy", "gzip", "none")
    )
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=None,
        help=f"producer linger.ms (default {PACED_LINGER_MS} when paced, {FAST_LINGER_MS} unthrottled)",
    )
    parser.add_argument(
        "--wait-for-broker",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the broker to be reachable (default 30)",
    )
    parser.add_argument("--quiet", action="store_true", help="no live rate line on stderr")
    parser.add_argument("--json", action="store_true", help="print the final report as JSON on stdout")


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [produce] %(message)s")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    kafka = KafkaCluster.from_settings(settings)
    try:
        bootstrap = kafka.wait_until_reachable(args.wait_for_broker)
        bucket = Bucket.from_settings(settings)
        if args.source == "replay":
            source = replay_source(bucket, keep_time=args.keep_time)
        else:
            source = synthetic_source(Catalog.from_bucket(bucket), seed=seed)
    except (BrokerNotRunning, KafkaException, SourceDataMissing) as exc:
        log.error("cannot produce: %s", exc)
        return 2
    stop = stop_on_signals(log, "stopping and flushing in-flight messages")
    log.info(
        "producing %s events (schema %s, seed %d) to %s on %s at %s%s%s%s",
        args.source,
        args.schema_version,
        seed,
        args.topic or kafka.topic,
        bootstrap,
        f"{args.rate:g} ev/s" if args.rate > 0 else "full speed",
        f", poison {args.poison_rate:.1%}" if args.poison_rate else "",
        f", late {args.late_rate:.1%}" if args.late_rate else "",
        f", re-sent {args.duplicate_rate:.1%}" if args.duplicate_rate else "",
    )
    report = produce(
        kafka,
        source,
        rate=args.rate,
        count=args.count,
        duration_s=args.duration,
        poison_rate=args.poison_rate,
        late_rate=args.late_rate,
        duplicate_rate=args.duplicate_rate,
        schema_version=args.schema_version,
        seed=seed,
        topic=args.topic,
        compression=args.compression,
        linger_ms=args.linger_ms,
        stop=stop,
        progress=None if args.quiet else sys.stderr,
    )
    log.info("%s", report.summary())
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0 if report.failed == 0 and report.unflushed == 0 else 1
