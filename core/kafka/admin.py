"""Topic administration on any broker: create what is missing, read the cluster id."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


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
