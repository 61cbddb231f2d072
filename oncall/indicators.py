"""The SLIs: one function per ``sli:`` name of the SLO file, each turning one sample's readings into a value.

Every function returns a :class:`Sample` whose ``details`` carry the numbers an alert shows and a
``headline``: one sentence an on-call engineer reads first. A source that cannot be read gives a sample
without a verdict (``good=None``) and says why; the broker being unreachable is alerted on separately.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from oncall.definitions import Slo
from oncall.readings import Readings, TopicUnavailable
from oncall.sample import Sample
from oncall.warehouse_reader import WarehouseUnavailable

LATENCY_STALE_AFTER_S = 60.0  # a batch older than this says nothing about the stream's current latency
TOP_REASONS = 5


@dataclass(frozen=True)
class Context:
    """What an SLI needs besides the readings."""

    monitor_started_at: float
    traffic_expected: bool


SliFunction = Callable[[Slo, Readings, Context], Sample]


def _measured(sli: SliFunction) -> SliFunction:
    """An unreadable source (the topic, the warehouse) gives a sample without a verdict that says why."""

    @functools.wraps(sli)
    def measured(slo: Slo, readings: Readings, ctx: Context) -> Sample:
        try:
            return sli(slo, readings, ctx)
        except (TopicUnavailable, WarehouseUnavailable) as exc:
            details = {"headline": f"not measured: {exc}", "error": str(exc)}
            return Sample(slo.name, readings.now, None, None, details)

    return measured


@_measured
def speed_freshness(slo: Slo, readings: Readings, ctx: Context) -> Sample:
    """Age of the oldest event the stream has not committed (0 when it committed everything)."""
    now = readings.now
    topic = readings.topic()
    oldest = min(topic.oldest_unreflected_ms.values(), default=None)
    age = max(now - oldest / 1000.0, 0.0) if oldest is not None else 0.0
    details = {
        "lag_messages": topic.lag,
        "end_offsets": {str(p): o for p, o in sorted(topic.end_offsets.items())},
        "committed_offsets": {str(p): o for p, o in sorted(topic.committed.items())},
        "committed_batch": topic.committed_batch,
        "cluster_id": topic.cluster_id,
    }
    if oldest is not None:
        partition = min(topic.oldest_unreflected_ms, key=topic.oldest_unreflected_ms.__getitem__)
        details["oldest_unreflected"] = {
            "partition": partition,
            "offset": topic.committed.get(partition, 0),
            "timestamp_ms": oldest,
        }
        position = (
            f"stream at batch {topic.committed_batch}"
            if topic.stream_started
            else "the stream has not committed on this broker yet"
        )
        details["headline"] = (
            f"the oldest event not yet in engagement_health_realtime is {age:.0f} s old "
            f"({topic.lag:,} messages behind; {position})"
        )
    else:
        details["headline"] = f"the stream has committed every message ({sum(topic.end_offsets.values()):,})"
    in_grace = not topic.stream_started and now - ctx.monitor_started_at < slo.startup_grace_s
    if in_grace:
        details["grace"] = "the stream has not committed on this broker yet and the monitor just started"
        return Sample(slo.name, now, age, None, details)
    return Sample(slo.name, now, age, slo.meets(age), details)


@_measured
def speed_latency_p95(slo: Slo, readings: Readings, ctx: Context) -> Sample:
    """p95 event→published latency of the newest micro-batch published in the last minute."""
    now = readings.now
    batches = [b for b in readings.ledger(LATENCY_STALE_AFTER_S) if b["latency_p95_s"] is not None]
    if not batches:
        return Sample(slo.name, now, None, None, {"headline": "no micro-batch published in the last minute"})
    newest = batches[-1]
    value = float(newest["latency_p95_s"])
    headline = f"micro-batch {newest['batch_id']} reached the warehouse with p95 latency {value:.1f} s"
    details = {"batch_id": newest["batch_id"], "rows_in": newest["rows_in"], "headline": headline}
    return Sample(slo.name, now, value, slo.meets(value), details)


@_measured
def validation_success_rate(slo: Slo, readings: Readings, ctx: Context) -> Sample:
    """Valid / consumed over the SLO's window, with the top dead-letter reasons."""
    now = readings.now
    window = slo.window_s or 300.0
    batches = readings.ledger(window)
    consumed = sum(int(b["rows_in"] or 0) for b in batches)
    if consumed == 0:
        headline = f"no message consumed in the last {window:.0f} s"
        return Sample(slo.name, now, None, None, {"headline": headline})
    dead = sum(int(b["dead_letters"] or 0) for b in batches)
    reasons: Counter[str] = Counter()
    for batch in batches:
        reasons.update(json.loads(batch["dead_by_reason"] or "{}"))
    value = (consumed - dead) / consumed
    top = dict(reasons.most_common(TOP_REASONS))
    details = {
        "consumed": consumed,
        "dead_letters": dead,
        "window_s": window,
        "batches": len(batches),
        "top_dead_letter_reasons": top,
        "headline": (
            f"{value:.2%} of {consumed:,} messages valid in the last {window:.0f} s; {dead:,} dead letters"
            + (f" (top reasons: {', '.join(f'{k} {v}' for k, v in top.items())})" if top else "")
        ),
    }
    return Sample(slo.name, now, value, slo.meets(value), details)


@_measured
def marts_age(slo: Slo, readings: Readings, ctx: Context) -> Sample:
    """Seconds since the marts readers see were built (``batch.duckdb`` replaced, or ``built_at``)."""
    now = readings.now
    published = readings.marts_published_at()
    if published is None:
        return Sample(slo.name, now, None, None, {"headline": "no batch build published yet"})
    age = max(now - published, 0.0)
    details = {"published_at": published, "headline": f"the marts were published {age / 60:.0f} min ago"}
    return Sample(slo.name, now, age, slo.meets(age), details)


@_measured
def input_silence(slo: Slo, readings: Readings, ctx: Context) -> Sample:
    """Seconds since the newest event on the topic (since the monitor started, if the topic is empty)."""
    now = readings.now
    topic = readings.topic()
    if topic.newest_ms is None:
        silence = now - ctx.monitor_started_at
        headline = f"no event on the topic since the monitor started {silence:.0f} s ago"
    else:
        silence = max(now - topic.newest_ms / 1000.0, 0.0)
        headline = f"the newest event on the topic is {silence:.0f} s old"
    details = {"messages": sum(topic.end_offsets.values()), "headline": headline}
    if not ctx.traffic_expected:
        details["expected"] = False
        return Sample(slo.name, now, silence, None, details)
    return Sample(slo.name, now, silence, slo.meets(silence), details)


SLIS: dict[str, SliFunction] = {
    "speed_freshness": speed_freshness,
    "speed_latency_p95": speed_latency_p95,
    "validation_success_rate": validation_success_rate,
    "marts_age": marts_age,
    "input_silence": input_silence,
}
