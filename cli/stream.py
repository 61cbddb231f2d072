"""``netflix-lambda stream``: run the speed layer's streaming query in the foreground, outside Dagster.

SIGINT/SIGTERM stop it after the current micro-batch; a SIGKILL is safe too (the next start replays the
unfinished batch, exactly once). Exit code 2 when the query failed (the log says why).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from core.bucket import Bucket
from core.kafka.cluster import KafkaCluster
from core.processes import stop_on_signals
from core.settings import Settings
from core.spark import start_spark
from core.warehouse import Warehouse
from streaming.job import StreamFailedError, StreamOptions, run_stream

log = logging.getLogger("streaming")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings-from-env", action="store_true", help="read settings from NETFLIX_* (default)"
    )
    parser.add_argument(
        "--trigger-seconds", type=float, default=None, help="micro-batch interval (default: setting)"
    )
    parser.add_argument(
        "--available-now", action="store_true", help="process the backlog in bounded batches, then exit"
    )
    parser.add_argument(
        "--max-events-per-trigger", type=int, default=None, help="admission control (0 = unlimited)"
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="override the broker (default: settings / embedded)"
    )
    parser.add_argument(
        "--no-dead-letter-topic", action="store_true", help="write dead letters to Parquet only"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    stop = stop_on_signals(log, "stopping the stream after the current micro-batch")
    kafka = KafkaCluster.from_settings(settings)
    if args.bootstrap_servers:
        kafka = dataclasses.replace(kafka, bootstrap_servers=args.bootstrap_servers)
    options = StreamOptions.from_settings(
        settings,
        trigger_seconds=args.trigger_seconds,
        max_events_per_trigger=args.max_events_per_trigger,
        available_now=args.available_now or None,
        publish_dead_letters=False if args.no_dead_letter_topic else None,
    )
    spark = start_spark(settings, "netflix-speed-layer")
    try:
        bucket, warehouse = Bucket.from_settings(settings), Warehouse.from_settings(settings)
        run_stream(spark, bucket, warehouse, kafka, options, stop_event=stop)
    except StreamFailedError as exc:
        log.error("%s", exc)
        return 2
    finally:
        spark.stop()
    return 0
