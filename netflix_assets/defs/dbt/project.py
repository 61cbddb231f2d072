"""The dbt project as Dagster loads it: a manifest that is always current, run folders that do not pile up.

``@dbt_assets`` needs ``target/manifest.json`` when the code location loads, and a fresh clone has none
(``target/`` is not committed). ``DbtProject.prepare_if_dev()`` only helps under ``dagster dev``, so
:func:`prepare_manifest` runs ``dbt parse`` whenever the manifest is missing, older than any file of the
project, or parsed for another target or other graph-shaping ``--vars``; under a file lock, so the several
processes Dagster starts at once parse only once. A warm load costs a few ``stat`` calls, a cold one a
``dbt parse`` (4-8 s here, ~12 CPU-s on busy cores).

Where the data is (``core.dbt.LOCATION_VARS``) does not change the graph, so a code location pointed at
another folder loads on the manifest it finds. Its runs' ``dbt build`` then parses in full once (dbt does when
any ``--vars`` changes) and :func:`keep_partial_parse` keeps that parse for the next run.

Each graph (a target and its datasets) has its own folder, ``target/<target>-<hash>/``: code locations for
DuckDB and for BigQuery, or for two sets of BigQuery datasets, on one checkout (a test suite, a laptop with
both deployments) each keep their manifest instead of re-parsing over each other's at every load.
"""

import fcntl
import filecmp
import hashlib
import json
import os
import shutil
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from core.dbt import DBT_PROJECT_DIR, LOCATION_VARS, vars_args

ASSET_OP_NAME = "gold_dbt"
RUN_FOLDERS_KEPT = 5
PARSED_VARS_FILE = "partial_parse.vars.json"  # the --vars of target/partial_parse.msgpack
# Files whose change makes a parsed manifest stale.
_PROJECT_SOURCES = ("models", "macros", "tests", "dbt_project.yml", "profiles.yml")


def build_dbt_project(target: str, values: dict[str, str], project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    """The dbt project for the configured warehouse target (``duckdb`` or ``bigquery``) and its datasets.

    Its artifacts (manifest, partial parse, run folders) live in the graph's own folder under ``target/``;
    :func:`run_target_path` seeds each run with that folder's ``partial_parse.msgpack``, so a run re-parses
    only what changed since the load.
    """
    return DbtProject(
        project_dir=project_dir,
        profiles_dir=project_dir,
        target=target,
        target_path=graph_folder(target, values),
    )


def graph_folder(target: str, values: dict[str, str]) -> Path:
    """``target/<target>-<hash of the graph-shaping vars>``: one per graph, the same for every data folder."""
    digest = hashlib.sha256(_stamp(target, values).encode()).hexdigest()[:10]
    return Path("target") / f"{target}-{digest}"


def run_target_path(project: DbtProject, run_id: str) -> Path:
    """A run's private target folder inside its graph's folder (dagster-dbt would make it under dbt's
    default ``target/``, and seed it from there)."""
    return _seeded_folder(project, f"{ASSET_OP_NAME}-{run_id[:8]}-{os.urandom(3).hex()}")


def _seeded_folder(project: DbtProject, name: str) -> Path:
    """A new folder in the graph's folder holding its ``partial_parse.msgpack``, so dbt re-parses only what
    changed since (or everything, if its ``--vars`` differ)."""
    folder = Path(project.target_path) / name
    seed = project.project_dir / project.target_path / "partial_parse.msgpack"
    (project.project_dir / folder).mkdir(parents=True, exist_ok=True)
    if seed.exists():
        shutil.copyfile(seed, project.project_dir / folder / "partial_parse.msgpack")
    return folder


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _PROJECT_SOURCES:
        path = project_dir / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            newest = max(newest, file.stat().st_mtime)
    return newest


def _stamp_path(project: DbtProject) -> Path:
    return project.project_dir / project.target_path / "manifest.stamp"


def _stamp(target: str | None, values: dict[str, str]) -> str:
    """What the manifest was parsed for: the target and the ``--vars`` that shape the graph (datasets, not
    folders or endpoints)."""
    shaping = {name: value for name, value in values.items() if name not in LOCATION_VARS}
    return json.dumps({"target": target, "vars": shaping}, sort_keys=True)


def manifest_is_stale(project: DbtProject, values: dict[str, str]) -> bool:
    """Missing, older than a project file, or parsed for another target or other graph-shaping ``--vars``."""
    manifest, stamp = project.manifest_path, _stamp_path(project)
    if not manifest.exists() or not stamp.exists() or stamp.read_text() != _stamp(project.target, values):
        return True
    return manifest.stat().st_mtime < _newest_source_mtime(project.project_dir)


def prepare_manifest(project: DbtProject, dbt: DbtCliResource, values: dict[str, str]) -> Path:
    """``dbt parse`` when the manifest is stale.

    Concurrent loaders (Dagster starts several processes at once) wait on a file lock for a single parse,
    and the parse writes into a private folder whose artifacts then replace the shared ones atomically,
    so no process ever reads a half-written manifest.
    """
    if manifest_is_stale(project, values):
        parse_manifest(project, dbt, values)
    return project.manifest_path


def parse_manifest(project: DbtProject, dbt: DbtCliResource, values: dict[str, str]) -> Path:
    """``dbt parse`` with exactly ``values``, unless another process did so while this one waited."""
    target_dir = project.project_dir / project.target_path
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if manifest_is_stale(project, values) or _parsed_vars(target_dir) != values:
                staging = _seeded_folder(project, f".parse-{os.getpid()}")
                dbt.cli(["parse", "--quiet", *vars_args(values)], target_path=staging).wait()
                staged = project.project_dir / staging
                _install(staged, target_dir, values)
                (staged / "manifest.stamp").write_text(_stamp(project.target, values))
                os.replace(staged / "manifest.stamp", _stamp_path(project))
                shutil.rmtree(staged, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if not project.manifest_path.exists():
        raise FileNotFoundError(f"dbt parse ran but wrote no manifest at {project.manifest_path}")
    return project.manifest_path


def _parsed_vars(target_dir: Path) -> dict[str, object] | None:
    """The ``--vars`` of the parse ``partial_parse.msgpack`` holds, as recorded beside it."""
    recorded = target_dir / PARSED_VARS_FILE
    return json.loads(recorded.read_text()) if recorded.exists() else None


def keep_partial_parse(project: DbtProject, run_target: Path, values: dict[str, str]) -> None:
    """Seed the next run with this run's parse (:func:`run_target_path` copies the graph folder's
    ``partial_parse.msgpack`` into each run folder); a run whose ``--vars`` match it re-parses only the files
    that changed."""
    parsed = run_target / "partial_parse.msgpack"
    target_dir = project.project_dir / project.target_path
    if not parsed.exists() or _parsed_vars(target_dir) == values:
        return
    seed = target_dir / "partial_parse.msgpack"
    if seed.exists() and filecmp.cmp(parsed, seed, shallow=False):
        return  # the seed, not rewritten: this run's parse failed, it parsed nothing for ``values``
    staging = target_dir / f".keep-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    shutil.copyfile(parsed, staging / "partial_parse.msgpack")
    _install(staging, target_dir, values)
    shutil.rmtree(staging, ignore_errors=True)


def _install(staged: Path, target_dir: Path, values: dict[str, str]) -> None:
    """Replace the shared artifacts with the staged ones, each atomically (readers never see half a file)."""
    (staged / PARSED_VARS_FILE).write_text(json.dumps(values, sort_keys=True))
    for name in ("partial_parse.msgpack", "semantic_manifest.json", "manifest.json", PARSED_VARS_FILE):
        if (staged / name).exists():
            os.replace(staged / name, target_dir / name)


def prune_run_folders(project: DbtProject, keep: int = RUN_FOLDERS_KEPT) -> None:
    """Keep the newest ``keep`` per-run target folders (dbt logs, compiled SQL, run_results) of this asset;
    dagster-dbt creates one per run and never deletes them, an hourly schedule would fill the disk."""
    target_dir = project.project_dir / project.target_path
    runs = sorted(target_dir.glob(f"{ASSET_OP_NAME}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)
