"""Breach → page latency of the SLO monitor over induced freshness incidents, and its CPU cost per sample.

The stack is real (``tests/oncall_stack.py``): embedded broker, ``netflix-lambda produce`` at ``--rate``
events/s, the Spark stream (2 s trigger), ``netflix-lambda monitor`` with the project's SLO file, and a
local receiver speaking PagerDuty's Events API. Each incident freezes the stream (SIGSTOP to its process
group: the driver, Spark's JVM and its Python workers), so the oldest unreflected event ages until the
monitor pages. The breach moment is computed independently of the monitor, from the topic and the
stream's checkpoint: the first uncommitted message's Kafka timestamp + 60 s; the page time is when the
receiver got the trigger. Then SIGCONT: the stream catches up and the incident resolves.

CPU per sample: the monitor process's user + system CPU (all its threads: sampling, DuckDB, notifier
workers) over the samples it took during the run. Baseline, measured in the same run against the same
broker: one exact end-offset probe (``EndOffsetProbe.end_offsets``), which the speed sensor already pays
on every tick and which every monitor sample includes.

Usage: ``.venv/bin/python bench/bench_oncall.py [--incidents 10] [--rate 20] [--interval 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from core.kafka.offsets import EndOffsetProbe
from core.settings import Settings
from core.warehouse import WarehouseLayout
from oncall.definitions import load_slo_book
from oncall.history import SampleHistory
from oncall.sample import Sample

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the end-to-end test's stack, reused rather than copied
    sys.path.insert(0, str(ROOT))

from tests.oncall_stack import OBJECTIVE_S, Stack, running_stack, slo_file  # noqa: E402

KEY = "speed_freshness:page"


def induce(stack: Stack, number: int) -> dict[str, Any]:
    """Freeze the stream until the page, thaw it, wait for the resolve; the incident's timings."""
    done = len(stack.pages(KEY))
    stack.wait_for("a healthy speed layer", lambda: stack.slo("speed_freshness").get("good") is True, 300)
    stream = stack.procs["stream"]
    os.killpg(stream.pid, signal.SIGSTOP)
    frozen_at = time.time()
    try:
        page = stack.wait_for(f"page {number}", lambda: stack.pages(KEY)[done:], 300)[0]
        oldest_ms = min(stack.first_unreflected_ms().values())
    finally:
        os.killpg(stream.pid, signal.SIGCONT)
    breach_at = oldest_ms / 1000.0 + OBJECTIVE_S
    resolve = stack.wait_for(f"resolve {number}", lambda: stack.pages(KEY, "resolve")[done:], 600)[0]
    result = {
        "incident": number,
        "breach_after_freeze_s": round(breach_at - frozen_at, 2),
        "breach_to_page_s": round(page.at - breach_at, 3),
        "page_to_resolve_s": round(resolve.at - page.at, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def probe_cpu_per_call(stack: Stack, calls: int = 50) -> float:
    """Baseline: CPU seconds of this process per exact end-offset probe."""
    with EndOffsetProbe({"bootstrap.servers": stack.broker.bootstrap_servers}) as probe:
        probe.end_offsets(stack.settings.kafka_topic)
        started = time.process_time()
        for _ in range(calls):
            probe.end_offsets(stack.settings.kafka_topic)
        return (time.process_time() - started) / calls


def full_history_cost(root: Path, interval: float, days: float = 30.0, ticks: int = 20) -> dict[str, float]:
    """CPU ms of the history's part of a sample (append, budget and burn-rate counts, publication) once
    ``slo_samples`` holds a whole budget window of 5 SLOs, synthesized (a real run only had minutes)."""
    layout = WarehouseLayout(root / "full_history")
    history = SampleHistory(layout, retention_s=(days + 1) * 86400)
    book = load_slo_book(Settings(_env_file=None))
    now = time.time()
    count = int(days * 86400 / interval)
    for slo in book.slos:
        ts = pa.array(
            [datetime.fromtimestamp(now - i * interval, UTC).replace(tzinfo=None) for i in range(count)]
        )
        good = pa.array([i % 97 != 0 for i in range(count)])
        table = pa.table({"slo": pa.array([slo] * count), "ts": ts, "value": pa.array([1.0] * count),
                          "good": good, "details": pa.array(["{}"] * count)})  # fmt: skip
        history.con.register("bulk", table)
        history.con.execute("INSERT INTO slo_samples SELECT * FROM bulk")
        history.con.unregister("bulk")
    samples = [Sample(slo, now, 1.0, True, {"headline": "x"}) for slo in book.slos]
    started = time.process_time()
    for i in range(ticks):
        tick = now + (i + 1) * interval
        history.append([Sample(s.slo, tick, s.value, s.good, s.details) for s in samples])
        history.counts(tick, book.windows())
        history.publish(tick, [{"slo": s.slo, "value": s.value} for s in samples])
    cost = (time.process_time() - started) / ticks
    history.close()
    return {"rows": count * len(book.slos), "history_cpu_ms_per_sample": round(1000 * cost, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="producer events/s")
    parser.add_argument("--interval", type=float, default=5.0, help="NETFLIX_SLO_SAMPLE_INTERVAL_S")
    parser.add_argument("--out", type=Path, default=Path("bench/results/oncall.json"))
    parser.add_argument("--history-only", action="store_true", help="only the 30-day history cost")
    args = parser.parse_args()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench_oncall_"))
    if args.history_only:
        print(json.dumps({**full_history_cost(root, args.interval), "load_average": os.getloadavg()}))
        shutil.rmtree(root)
        return
    slos = slo_file(root / "slos.yaml", lambda document: None)  # the project's SLOs as they are
    extra = {"NETFLIX_SLO_SAMPLE_INTERVAL_S": str(args.interval)}
    try:
        with running_stack(root, slos, rate=args.rate, extra_env=extra) as stack:
            monitor = psutil.Process(stack.procs["monitor"].pid)
            cpu_before, samples_before = sum(monitor.cpu_times()[:2]), stack.monitor_samples()
            incidents = [induce(stack, n + 1) for n in range(args.incidents)]
            cpu_after, samples_after = sum(monitor.cpu_times()[:2]), stack.monitor_samples()
            baseline = probe_cpu_per_call(stack)
        # In a fresh process: the stack's client threads must not be counted as the history's CPU.
        command = [sys.executable, __file__, "--history-only", "--interval", str(args.interval)]
        measured = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
        full_history = json.loads(measured.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    latencies = [i["breach_to_page_s"] for i in incidents]
    samples = samples_after - samples_before
    report = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rate_events_per_s": args.rate,
        "sample_interval_s": args.interval,
        "incidents": incidents,
        "breach_to_page_p50_s": round(statistics.median(latencies), 3),
        "breach_to_page_max_s": round(max(latencies), 3),
        "breach_to_page_min_s": round(min(latencies), 3),
        "monitor_samples": samples,
        "monitor_cpu_s": round(cpu_after - cpu_before, 2),
        "monitor_cpu_ms_per_sample": round(1000 * (cpu_after - cpu_before) / max(samples, 1), 2),
        "baseline_end_offset_probe_cpu_ms": round(1000 * baseline, 2),
        "full_30_day_history": full_history,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "incidents"}, indent=2))


if __name__ == "__main__":
    main()
