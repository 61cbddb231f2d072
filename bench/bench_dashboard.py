"""Serving benchmark: event → visible on the real-time dashboard, and the dashboards' page load time.

Two measurements, each on the real stack (embedded broker, ``netflix-lambda stream`` and ``netflix-lambda
dashboards`` as the run command starts them, with their default trigger and refresh; Debian's headless
Chromium through Playwright):

* ``latency``: a producer publishes synthetic events at each of ``--rates`` events/s for ``--seconds``; the
  browser keeps the real-time page open and reads its "Newest event (UTC)" metric every 0.2 s. An event is
  visible once the page shows a newest event time at or after its own (the page prints seconds, so each
  latency is exact to 1 s, rounded down); latency = that moment minus the event's time. Every event counts.
* ``pageload``: the batch warehouse at ``--scale`` (generated CSVs → reference Silver → dbt through Dagster,
  plus a few thousand streamed events), then each page opened ``--runs`` times in a fresh browser context:
  ``goto`` to fully drawn (metrics, no "running" indicator, every chart's SVG). The baseline, measured in the
  same run: the page's queries alone (``dashboards.data``), without Streamlit and the browser.

    .venv/bin/python bench/bench_dashboard.py latency --rates 5,1000 --seconds 90
    .venv/bin/python bench/bench_dashboard.py pageload --scale 10 --runs 5

Results go to ``bench/results/dashboard_<mode>.json``; the work folder is deleted unless ``--keep-work``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dagster import AssetsDefinition, materialize  # noqa: E402

from core.bucket import Bucket  # noqa: E402
from core.kafka.cluster import KafkaCluster  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.warehouse import WarehouseLayout  # noqa: E402
from dashboards import data  # noqa: E402
from dashboards.links import HISTORY, REALTIME  # noqa: E402
from datagen import generate  # noqa: E402
from embedded_broker.process import EmbeddedBroker  # noqa: E402
from netflix_assets.defs.dbt import definitions as gold  # noqa: E402
from netflix_assets.resources import build_resources  # noqa: E402
from producer.publish import EventFactory, send  # noqa: E402
from producer.sources import Catalog, synthetic_source  # noqa: E402
from reference.marts import compute_reference, write_silver_parquet  # noqa: E402
from tests.browser import CHROME_ARGS, CHROMIUM, dashboards_server, metric, require_chromium  # noqa: E402
from tests.conftest import stop_process  # noqa: E402
from tests.test_streaming_exactly_once import stream_env  # noqa: E402

log = logging.getLogger("bench_dashboard")
NEWEST_EVENT = "Newest event (UTC)"
CHARTS = {REALTIME.path: 2, HISTORY.path: 5}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 2), "p95": round(p95, 2),
            "max": round(ordered[-1], 2), "min": round(ordered[0], 2)}  # fmt: skip


def warehouse_with_silver(settings: Settings, scale: float) -> None:
    """Generated CSVs, their reference Silver (no Spark: the page's cost is what is measured), a dbt build."""
    bucket = Bucket.from_settings(settings)
    started = time.monotonic()
    generate(bucket, scale=scale, seed=7)
    reference = compute_reference(bucket.local_path("raw"))
    write_silver_parquet(reference, bucket.local_path("silver"))
    reference.close()
    log.info("scale %g: raw + Silver in %.0f s", scale, time.monotonic() - started)


def build_batch(settings: Settings) -> float:
    started = time.monotonic()
    [assets] = [a for a in gold.definitions(settings).assets if isinstance(a, AssetsDefinition)]
    assert materialize([assets], resources=build_resources(settings)).success
    return time.monotonic() - started


@contextmanager
def stack(work: Path, scale: float) -> Iterator[tuple[Settings, EmbeddedBroker, dict[str, str]]]:
    with EmbeddedBroker(work / "broker", record_state=False) as broker:
        settings = Settings(
            _env_file=None, data_dir=work / "data", kafka_bootstrap_servers=broker.bootstrap_servers,
            spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="2g",
        )  # fmt: skip
        warehouse_with_silver(settings, scale)
        env = stream_env(settings)
        for name in ("NETFLIX_STREAM_MAX_EVENTS_PER_TRIGGER",):  # production defaults, not the test's
            env.pop(name, None)
        yield settings, broker, env


@contextmanager
def process(argv: list[str], env: dict[str, str], logfile: Path) -> Iterator[subprocess.Popen]:
    with logfile.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def chromium() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# -- latency ----------------------------------------------------------------------------------------------
def read_newest(page: Any) -> datetime | None:
    """The page's "Newest event (UTC)", or None while the fragment re-renders or nothing is counted yet."""
    try:
        text = metric(page, NEWEST_EVENT)
    except Exception:  # the element is being replaced by the fragment's re-run: read again next time
        return None
    if not text or text == "none":
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def observe(
    page: Any, producer: threading.Thread, stamps: list[float], drain_s: float
) -> list[tuple[float, datetime]]:
    """(wall time, shown value) at every change of the page's newest event time, while the producer runs
    and then until its last event is shown (at most ``drain_s`` more seconds). Playwright's sync API
    belongs to this thread; the producer runs in its own."""
    seen: list[tuple[float, datetime]] = []
    deadline = None
    while True:
        value = read_newest(page)
        if value is not None and (not seen or seen[-1][1] != value):
            seen.append((time.time(), value))
        if not producer.is_alive():
            deadline = deadline or time.monotonic() + drain_s
            caught_up = bool(stamps and seen) and seen[-1][1].timestamp() >= float(int(stamps[-1]))
            if caught_up or time.monotonic() > deadline:
                return seen
        time.sleep(0.2)


def latencies(stamps: list[float], seen: list[tuple[float, datetime]]) -> list[float]:
    """Per event: the first moment the page showed a newest event time at or after the event's second."""
    out = []
    for stamp in stamps:
        second = float(int(stamp))
        visible = next((t for t, shown in seen if shown.timestamp() >= second and t >= stamp), None)
        if visible is not None:
            out.append(visible - stamp)
    return out


def measure_rate(page: Any, kafka: KafkaCluster, conf: dict[str, str], catalog: Catalog, rate: int,
                 seconds: float, drain_s: float) -> dict[str, Any]:  # fmt: skip
    stamps: list[float] = []

    def clock() -> float:
        now = time.time()
        stamps.append(now)
        return now

    factory = EventFactory(seed=rate, clock=clock)
    producer = threading.Thread(
        target=send,
        args=(kafka, factory.messages(synthetic_source(catalog, seed=rate))),
        kwargs={"rate": rate, "duration_s": seconds, "client_conf": conf},
    )
    load = os.getloadavg()
    producer.start()
    seen = observe(page, producer, stamps, drain_s)
    producer.join()
    samples = latencies(stamps, seen)
    return {
        **percentiles(samples),
        "events": len(stamps),
        "visible": len(samples),
        "load_at_start": [round(x, 2) for x in load],
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"rates": {}}
    with stack(args.work, 0.1) as (settings, broker, env), chromium() as browser:
        results["batch_build_s"] = round(build_batch(settings), 1)
        exe = str(Path(sys.executable).parent / "netflix-lambda")
        with process([exe, "stream"], env, args.work / "stream.log"), \
                dashboards_server(settings, env, args.work / "streamlit.log") as url:  # fmt: skip
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{url}/{REALTIME.path}")
            catalog = Catalog.from_bucket(Bucket.from_settings(settings))
            kafka, conf = KafkaCluster.from_settings(settings), broker.client_config()
            # Warm-up: a stream's first micro-batches (query start, JIT) are not what a running stream costs.
            warm = EventFactory(seed=1).messages(synthetic_source(catalog, seed=1))
            send(kafka, warm, rate=50, duration_s=20, client_conf=conf)
            deadline = time.monotonic() + 300
            while read_newest(page) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the page showed no event in 300 s; see {args.work}/stream.log")
                time.sleep(1)
            time.sleep(args.settle)
            for rate in args.rates:
                results["rates"][str(rate)] = measure_rate(
                    page, kafka, conf, catalog, rate, args.seconds, args.drain
                )
                log.info("%d ev/s: %s", rate, results["rates"][str(rate)])
                time.sleep(args.settle)
    return results


# -- page load --------------------------------------------------------------------------------------------
def load_page(browser: Any, url: str, path: str) -> float:
    """Seconds from ``goto`` to the page fully drawn: a metric, no "running" indicator, every chart's SVG."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(300_000)
    try:
        started = time.perf_counter()
        page.goto(f"{url}/{path}")
        page.get_by_test_id("stMetricValue").first.wait_for()
        page.wait_for_function(
            """(charts) => !document.querySelector('[data-testid="stStatusWidget"]')
                && document.querySelectorAll('[data-testid="stVegaLiteChart"] svg').length >= charts""",
            arg=CHARTS[path],
        )
        return time.perf_counter() - started
    finally:
        context.close()


def queries_alone(layout: WarehouseLayout, runs: int) -> dict[str, dict[str, float]]:
    """The baseline: each page's reads through dashboards.data, no Streamlit, no browser."""
    out = {}
    for path, read in ((REALTIME.path, data.realtime), (HISTORY.path, data.history)):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            read(layout)
            times.append(time.perf_counter() - started)
        out[path] = percentiles(times)
    return out


def seed_speed_layer(settings: Settings, broker: EmbeddedBroker, env: dict[str, str], work: Path) -> None:
    """A few thousand events of the last minutes, streamed once, so the real-time page has windows."""
    catalog = Catalog.from_bucket(Bucket.from_settings(settings))
    messages = EventFactory(seed=3).messages(synthetic_source(catalog, seed=3))
    send(
        KafkaCluster.from_settings(settings),
        messages,
        rate=0,
        count=5_000,
        client_conf=broker.client_config(),
    )
    exe = str(Path(sys.executable).parent / "netflix-lambda")
    with process([exe, "stream", "--available-now"], env, work / "stream.log") as proc:
        if proc.wait(600) != 0:
            raise RuntimeError(f"the stream failed; see {work}/stream.log")


def run_pageload(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"scale": args.scale}
    with stack(args.work, args.scale) as (settings, broker, env), chromium() as browser:
        seed_speed_layer(settings, broker, env, args.work)
        results["batch_build_s"] = round(build_batch(settings), 1)
        layout = WarehouseLayout.from_settings(settings)
        results["warehouse_mb"] = round(layout.batch_published.stat().st_size / 1e6, 1)
        with dashboards_server(settings, env, args.work / "streamlit.log") as url:
            results["load_at_start"] = [round(x, 2) for x in os.getloadavg()]
            for path in CHARTS:
                first = load_page(browser, url, path)
                times = [load_page(browser, url, path) for _ in range(args.runs)]
                results[path] = {"first_load_s": round(first, 2), **percentiles(times)}
                log.info("%s: first %.2f s, then %s", path, first, results[path])
            results["queries_alone"] = queries_alone(layout, args.runs)
            results["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("latency", "pageload"))
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[5, 1_000])
    parser.add_argument("--seconds", type=float, default=90.0, help="producer time per rate")
    parser.add_argument(
        "--drain", type=float, default=60.0, help="wait for the last event after the producer"
    )
    parser.add_argument("--settle", type=float, default=15.0, help="pause between phases")
    parser.add_argument("--scale", type=float, default=10.0, help="pageload: generator scale")
    parser.add_argument("--runs", type=int, default=5, help="pageload: loads per page")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "dashboard_work")
    parser.add_argument("--keep-work", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    started = datetime.now(UTC)
    header = {
        "machine": f"{os.cpu_count()} cores",
        "started": started.isoformat(timespec="seconds"),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    try:
        results = {**header, **(run_latency(args) if args.mode == "latency" else run_pageload(args))}
    finally:
        if not args.keep_work:
            shutil.rmtree(args.work, ignore_errors=True)
    output = args.output or ROOT / "bench" / "results" / f"dashboard_{args.mode}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
