"""`make run`'s first minutes: from `netflix-lambda up` starting to the UI, the first realtime row, the marts.

Each repetition runs the launcher twice on one fresh data folder, the way a newcomer meets it:

* **first start**: right after what ``make setup`` does once the venv is installed (the code location loaded
  once, which parses the dbt project; its time is reported as ``prepared_s``), with no raw files (the
  generator writes them), no Silver, no checkpoint: the stream joins the raw CSVs until the batch run has
  written Silver;
* **second start**: the same folder after a clean stop (raw files, Silver, marts and the stream's
  checkpoint present; the embedded broker starts empty, as it always does).

Milestones, in seconds from the launcher's start, read from outside as a user sees them: **UI** (the
webserver answers with the code location loaded), **realtime** (sessions in the published
``engagement_health_realtime`` snapshot), **marts** (a ``batch.duckdb`` published since the start), and
**stop** (SIGINT until every process of the tree is gone). The streaming run's own timeline comes from
its Dagster events: launched → run process up (code location loaded) → Spark session up (step start) →
first micro-batch started → committed.

``--baseline-ref`` runs the launcher of another commit (default: none) from a temporary export with the
same venv, once per start kind, for a same-machine, same-hour comparison. The machine's load average is
recorded at each start; other jobs share the cores, so medians over ``--runs`` are the numbers to quote.

    .venv/bin/python bench/bench_up.py --runs 3 --baseline-ref 43ef5fa
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.checkout import env_for, export_ref  # noqa: E402
from cli.dagster_api import DagsterApi, Run, metadata  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.launcher_stack import LauncherStack  # noqa: E402

MILESTONES = ("ui", "realtime", "marts", "stop")
STREAM_PHASES = ("launched", "run_process_up", "spark_up", "first_batch_started", "first_batch_committed")
BATCH_STEPS = ("silver_tables", "gold_dbt")
BATCH_PHASES = ("launched", "run_process_up", *(f"{step}_started" for step in BATCH_STEPS), "ended")
Milestones = Callable[[dict[str, float], dict[str, Any], float], None]  # (timeline, event, seconds)


def _event_seconds(event: dict[str, Any]) -> float:
    return int(event["timestamp"]) / 1000.0


def _first_run(api: DagsterApi, job: str, started: float) -> Run | None:
    """The oldest run of ``job`` created since the start: the one the launcher launched (or None)."""
    runs = [r for r in api.runs(job, limit=20) if r.created >= started]
    return runs[-1] if runs else None


def _run_events(api: DagsterApi, run_id: str) -> Iterator[dict[str, Any]]:
    events, cursor = api.events(run_id, None)
    while True:
        yield from events
        if len(events) < 500:
            return
        events, cursor = api.events(run_id, cursor)


def _timeline(api: DagsterApi, job: str, started: float, note: Milestones) -> dict[str, float]:
    """Milestones of ``job``'s first run since the start (s since the launcher's start), from its events:
    launched and run process up for every job, the rest from ``note(timeline, event, seconds)``."""
    run = _first_run(api, job, started)
    if run is None:
        return {}
    timeline = {"launched": run.created - started}
    for event in _run_events(api, run.run_id):
        at = _event_seconds(event) - started
        if event["__typename"] == "RunStartEvent":
            timeline.setdefault("run_process_up", at)
        else:
            note(timeline, event, at)
    return timeline


def _stream_milestones(timeline: dict[str, float], event: dict[str, Any], at: float) -> None:
    kind = event["__typename"]
    if kind == "ExecutionStepStartEvent":
        timeline.setdefault("spark_up", at)
    elif kind == "MaterializationEvent" and event["assetKey"]["path"][-1] == "engagement_health_realtime":
        values = metadata(event)
        if int(values.get("rows_in", 0) or 0) > 0 and "first_batch_committed" not in timeline:
            timeline["first_batch_committed"] = at
            timeline["first_batch_started"] = at - float(values.get("batch_duration_s", 0.0))
            timeline["first_batch_rows"] = float(values.get("rows_in", 0))


def _batch_milestones(timeline: dict[str, float], event: dict[str, Any], at: float) -> None:
    kind = event["__typename"]
    if kind == "ExecutionStepStartEvent" and event.get("stepKey") in BATCH_STEPS:
        timeline.setdefault(f"{event['stepKey']}_started", at)
    elif kind in ("RunSuccessEvent", "RunFailureEvent"):
        timeline["ended"] = at


def stream_timeline(api: DagsterApi, started: float) -> dict[str, float]:
    """The first streaming run: launched, run process up, Spark up, first micro-batch started, committed."""
    return _timeline(api, "speed_stream_job", started, _stream_milestones)


def batch_timeline(api: DagsterApi, started: float) -> dict[str, float]:
    """The first batch run: where the marts' time goes (process, Silver step, dbt step, end)."""
    return _timeline(api, "batch_layer", started, _batch_milestones)


def one_start(
    data_dir: Path,
    out: Path,
    scale: float,
    checkout: Path | None,
    timeout_s: float,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One launch until realtime and marts are in (or ``timeout_s``), then a SIGINT stop.

    ``settings``: ``NETFLIX_*`` variables for the launcher (the stack passes no others from this process).
    """
    env = {**env_for(checkout), **(settings or {})}
    stack = LauncherStack(data_dir, free_port(), ["--scale", f"{scale:g}"], out, env, cwd=checkout)
    result: dict[str, Any] = {"load_at_start": round(os.getloadavg()[0], 2)}
    stack.start()
    try:
        try:
            result["ui"] = stack.wait("UI", stack.location, timeout_s, every_s=0.25)
        except AssertionError:  # not up within the bound: recorded as such, the other runs still count
            result["timed_out"] = f"UI not serving after {timeout_s:.0f} s"
            result["stop"] = stack.stop(signal.SIGINT, 300)
            return result
        deadline = time.monotonic() + timeout_s
        while not {"realtime", "marts", "batch_run"} <= set(result) and time.monotonic() < deadline:
            stack.alive()
            if "realtime" not in result and stack.realtime_sessions() > 0:
                result["realtime"] = stack.since_start()
            if "marts" not in result and stack.marts_published():
                result["marts"] = stack.since_start()
            if "batch_run" not in result and _batch_finished(stack.api, stack.started, result):
                result["batch_run"] = stack.since_start()
            time.sleep(0.5)
        result["stream"] = stream_timeline(stack.api, stack.started)
        result["batch"] = batch_timeline(stack.api, stack.started)
        result["load_at_end"] = round(os.getloadavg()[0], 2)
        result["stop"] = stack.stop(signal.SIGINT, 300)
    finally:
        stack.kill()
    return result


def prepare(data_dir: Path, checkout: Path | None) -> float:
    """What `make setup` does after installing: load the code location once, which parses the dbt project
    for this data folder (its paths are dbt vars). Seconds it took."""
    env = {**os.environ, **env_for(checkout), "NETFLIX_DATA_DIR": str(data_dir)}
    started = time.monotonic()
    argv = [sys.executable, "-c", "import netflix_assets.definitions"]
    subprocess.run(argv, env=env, cwd=checkout or PROJECT_ROOT, check=True, capture_output=True)
    return round(time.monotonic() - started, 1)


def _batch_finished(api: DagsterApi, started: float, result: dict[str, Any]) -> bool:
    """The batch run launched at this start has ended (the stack is stopped only after it); a launcher
    that publishes the marts before serving the UI (the baseline's) is done once they are in."""
    if result.get("marts", float("inf")) <= result["ui"]:
        return True
    runs = [r for r in api.runs("batch_layer", limit=5) if r.created >= started]
    return bool(runs) and not runs[-1].in_progress


def _median(results: list[dict[str, Any]], key: str, sub: str | None = None) -> float | None:
    values = [r[key][sub] if sub else r[key] for r in results if key in r and (sub is None or sub in r[key])]
    return round(statistics.median(values), 1) if values else None


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _row(label: str, results: list[dict[str, Any]]) -> str:
    cells = [_median(results, m) for m in MILESTONES]
    after_ui = [r["realtime"] - r["ui"] for r in results if "realtime" in r and "ui" in r]
    cells.append(round(statistics.median(after_ui), 1) if after_ui else None)
    loads = [r["load_at_start"] for r in results]
    timed_out = sum("timed_out" in r for r in results)
    if timed_out:
        label += f" ({timed_out} of {len(results)} timed out: {results[0].get('timed_out', 'see JSON')})"
    return (
        f"| {label} | {len(results)} | "
        + " | ".join(_cell(c) for c in cells)
        + f" | {min(loads):.1f}–{max(loads):.1f} |"
    )


def _timeline_row(label: str, results: list[dict[str, Any]], run: str, phases: tuple[str, ...]) -> str:
    cells = [_median(results, run, phase) for phase in phases]
    return f"| {label} | " + " | ".join(_cell(c) for c in cells) + " |"


def report(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| launcher, start | runs | UI s | first realtime row s | marts s | stop s | realtime after UI s "
        "| load (1 min) at starts |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_row(label, rows) for label, rows in results.items() if rows]
    lines += [
        "",
        "| launcher, start | stream launched | run process up | Spark up | first batch started | committed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [_timeline_row(label, rows, "stream", STREAM_PHASES) for label, rows in results.items() if rows]
    lines += [
        "",
        "| launcher, start | batch launched | run process up | Silver step started | dbt step started "
        "| ended |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [_timeline_row(label, rows, "batch", BATCH_PHASES) for label, rows in results.items() if rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (each: a first and a second start)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generator scale (1 = Kaggle size, make run's)"
    )
    parser.add_argument("--baseline-ref", default=None, help="also run this commit's launcher once per start")
    parser.add_argument("--timeout", type=float, default=900.0, help="per milestone, seconds")
    parser.add_argument("--json", type=Path, default=None, help="write every measurement here")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NETFLIX_NAME=VALUE",
        help="a setting for every launcher started, e.g. NETFLIX_BATCH_NICENESS=0 (repeatable)",
    )
    parser.add_argument(
        "--first-start-only", action="store_true", help="skip the second start of each repetition"
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    if any(not name.startswith("NETFLIX_") for name in settings):
        parser.error("--setting takes NETFLIX_NAME=VALUE")
    starts = ["first start"] if args.first_start_only else ["first start", "second start"]

    work = Path(tempfile.mkdtemp(prefix="bench-up-"))
    results: dict[str, list[dict[str, Any]]] = {}
    plans: list[tuple[str, Path | None, int]] = [("this branch", None, args.runs)]
    if args.baseline_ref:
        plans.insert(0, (args.baseline_ref, export_ref(args.baseline_ref), 1))
    try:
        for label, checkout, runs in plans:
            for index in range(runs):
                data_dir = work / f"{label.replace(' ', '-')}-{index}" / "data"
                prepared = prepare(data_dir, checkout)
                for start in starts:
                    out = data_dir.parent / f"{start.replace(' ', '-')}.txt"
                    print(f"{label}, {start} #{index + 1} (load {os.getloadavg()[0]:.1f})", flush=True)
                    try:
                        measured = one_start(data_dir, out, args.scale, checkout, args.timeout, settings)
                    except AssertionError as exc:  # the launcher died or would not stop: say so, go on
                        measured = {
                            "load_at_start": round(os.getloadavg()[0], 2),
                            "timed_out": str(exc)[:200],
                        }
                    measured["prepared_s"] = prepared
                    print(json.dumps(measured), flush=True)
                    results.setdefault(f"{label}, {start}", []).append(measured)
    finally:
        for _label, checkout, _runs in plans:
            if checkout is not None:
                shutil.rmtree(checkout, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(
        f"\nmachine: {os.cpu_count()} cores; scale {args.scale:g}; s from `netflix-lambda up` starting"
        + (f"; settings {' '.join(args.setting)}" if args.setting else "")
        + "\n"
    )
    print(report(results))


if __name__ == "__main__":
    main()
