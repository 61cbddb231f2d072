"""Keep the embedded broker within bounds: restart it (EMPTY) when it dies or outgrows its memory cap.

Tansu keeps every message in memory and never frees it (about 370 MB after 1.4 M events). Above
``NETFLIX_EMBEDDED_BROKER_MAX_RSS_MB`` the supervisor restarts it **empty**, on the same port, with a new
cluster id; the stream sees the new id and, instead of silently reading from the wrong offsets, logs the
loss at ERROR, archives its checkpoint and starts over from the new topic (``streaming.broker_reset``). At
the run command's 5 events/s that is a restart every week or so. If Tansu dies, it is restarted the same
way and the restart is logged as an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from core.kafka.cluster import KafkaCluster, read_state
from core.settings import Settings
from embedded_broker.process import EmbeddedBroker

log = logging.getLogger("embedded_broker")
STATUS_EVERY_S = 600.0


def supervise(
    settings: Settings,
    *,
    port: int | None = None,
    max_rss_mb: float | None = None,
    check_interval_s: float = 5.0,
    stop: threading.Event | None = None,
) -> int:
    """Run the broker until ``stop`` is set; restart it (empty) when it dies or outgrows ``max_rss_mb``."""
    stop = stop or threading.Event()
    cap = max_rss_mb if max_rss_mb is not None else settings.embedded_broker_max_rss_mb
    cluster = KafkaCluster.from_settings(settings)
    running = read_state(cluster.state_dir)
    if running is not None:
        log.error(
            "an embedded broker is already running on %s (pid %d, supervisor %s); stop it with "
            "`netflix-lambda broker --stop` first",
            running.bootstrap_servers,
            running.pid,
            running.supervisor_pid,
        )
        return 1
    topics = cluster.topics()
    broker = EmbeddedBroker.from_settings(settings, port, supervisor_pid=os.getpid(), topics=topics)
    broker.start()
    log.info(
        "broker supervisor running: bootstrap %s, topics %s, RSS cap %d MB (checked every %.0f s); "
        "Ctrl-C stops it",
        broker.bootstrap_servers,
        ", ".join(f"{t} ({n} partitions)" for t, n in topics.items()),
        cap,
        check_interval_s,
    )
    last_status = time.monotonic()
    try:
        while not stop.wait(check_interval_s):
            reason = None
            if not broker.is_running():
                reason = "the Tansu process died"
            else:
                rss = broker.rss_mb() or 0.0
                if rss > cap:
                    reason = (
                        f"its memory reached {rss:.0f} MB, above the {cap} MB cap "
                        "(NETFLIX_EMBEDDED_BROKER_MAX_RSS_MB)"
                    )
                elif time.monotonic() - last_status >= STATUS_EVERY_S:
                    log.info(
                        "broker %s healthy: RSS %.0f MB of %d MB cap", broker.bootstrap_servers, rss, cap
                    )
                    last_status = time.monotonic()
            if reason is None:
                continue
            old_cluster = broker.cluster_id
            log.error(
                "RESTARTING THE EMBEDDED BROKER EMPTY because %s. Every event it held is gone (memory-only "
                "storage); consumers will see cluster id change from %s and must reset their offsets. "
                "This is restart number %d.",
                reason,
                old_cluster,
                broker.restarts + 1,
            )
            broker.restart()
            log.error(
                "embedded broker back on %s with new cluster id %s",
                broker.bootstrap_servers,
                broker.cluster_id,
            )
    finally:
        broker.stop()
    return 0
