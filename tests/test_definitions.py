"""The code location loads, and its asset graph is pinned: a change to it must be deliberate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.contracts.raw import RAW_TABLES
from core.settings import Settings
from tests.asset_graph_snapshot import SNAPSHOT, describe_graph


def test_asset_graph_matches_the_pinned_snapshot(tmp_path: Path) -> None:
    actual = describe_graph(Settings(_env_file=None, data_dir=tmp_path))
    pinned = json.loads(SNAPSHOT.read_text())
    assert actual == pinned, (
        "the asset graph changed; if that is deliberate, re-pin it with "
        "`.venv/bin/python -m tests.asset_graph_snapshot` and review the diff"
    )


def test_every_raw_file_has_a_blocking_contract_check(tmp_path: Path) -> None:
    assets = describe_graph(Settings(_env_file=None, data_dir=tmp_path))["assets"]
    for table in RAW_TABLES:
        node = assets[f"raw/{table}"]
        assert node["group"] == "raw" and node["deps"] == []
        assert {"header_matches_contract", "is_nonempty_csv"} <= set(node["checks"])


def test_workspace_loads_the_code_location() -> None:
    from netflix_assets import definitions

    assert definitions.defs.resolve_asset_graph().get_all_asset_keys()


def test_on_duckdb_the_code_location_loads_without_google_bigquery(tmp_path: Path) -> None:
    """Every Dagster process (code server, run worker) loads the code location: on the DuckDB default it
    must not import Google's BigQuery library or dagster-gcp, ~0.5 s of each start (docs/benchmarks.md)."""
    probe = (
        "import json, sys\n"
        "from netflix_assets import definitions\n"
        "assert definitions.defs.resolve_asset_graph().get_all_asset_keys()\n"
        "print(json.dumps(sorted(m for m in ('google.cloud.bigquery', 'dagster_gcp') if m in sys.modules)))\n"
    )
    env = {**os.environ, "NETFLIX_DATA_DIR": str(tmp_path), "NETFLIX_WAREHOUSE": "duckdb"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def _ancestors(assets: dict, key: str) -> set[str]:
    seen: set[str] = set()
    stack = [key]
    while stack:
        for parent in assets[stack.pop()]["deps"]:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def test_lineage_runs_from_raw_files_to_marts_and_realtime_kpis(tmp_path: Path) -> None:
    assets = describe_graph(Settings(_env_file=None, data_dir=tmp_path))["assets"]
    for mart in ("monthly_engagement", "cohort_retention", "content_performance", "genre_performance",
                 "monthly_active_users"):  # fmt: skip
        assert assets[mart]["group"] == "gold"
        assert {"raw/watch_history", "silver/watch_history"} <= _ancestors(assets, mart)
        # The Lambda merge: the batch layer recomputes what the stream accepted (docs/serving.md).
        assert {"silver_watch_events", "late_events", "stream_batches"} <= _ancestors(assets, mart)
    realtime = _ancestors(assets, "engagement_health_realtime")
    assert {"netflix_watch_events", "silver/users", "silver/movies", "raw/users", "raw/movies"} <= realtime
    for name in ("bronze_watch_events", "silver_watch_events", "dead_letter_events", "late_events",
                 "engagement_health_realtime", "churn_risk_alerts"):  # fmt: skip
        assert assets[name]["group"] == "speed"


def test_each_dashboard_url_is_metadata_on_the_assets_it_shows(tmp_path: Path) -> None:
    from dagster import AssetKey

    from dashboards.links import HISTORY, REALTIME, dashboard_url
    from netflix_assets.definitions import build_definitions

    settings = Settings(_env_file=None, data_dir=tmp_path, dashboard_port=8599)
    graph = build_definitions(settings).resolve_asset_graph()

    def url(name: str) -> str | None:
        value = graph.get(AssetKey(name)).metadata.get("dashboard")
        return getattr(value, "url", None)

    for name in ("engagement_health_realtime", "churn_risk_alerts", "serving_engagement_5min"):
        assert url(name) == dashboard_url(settings, REALTIME) == "http://127.0.0.1:8599/realtime"
    for name in ("serving_monthly_active_users", "cohort_retention", "genre_performance", "batch_watermark"):
        assert url(name) == dashboard_url(settings, HISTORY)
    assert url("fct_watch_sessions") is None and url("bronze_watch_events") is None
