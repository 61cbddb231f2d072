"""The package layout holds: imports point down only, nothing imports the Dagster code location, only the
Dagster code location imports Dagster, and no two modules import each other in a circle.

Read from the source with ``ast`` (every import, also those inside functions), so the rule is checked
without importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

# Which of our packages each package may import (besides itself). The stack, from the bottom:
# core; the engines; the Dagster code location and the command line, neither importing the other.
ENGINES = ("datagen", "silver", "producer", "streaming", "embedded_broker", "oncall")
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    **{engine: {"core"} for engine in ENGINES},
    "reference": {"core"},
    "netflix_assets": {"core", *ENGINES},
    "cli": {"core", *ENGINES},
}
OURS = set(ALLOWED)
DAGSTER_PACKAGES = ("dagster", "dagster_dbt", "dagster_pyspark", "dagster_gcp", "dagster_pipes")


def _modules() -> dict[str, Path]:
    """Dotted name → file of every module of our packages."""
    found = {}
    for package in ALLOWED:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, imported at module level) for every import statement of the file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # ``from package import submodule`` imports the submodule, not (only) the package's __init__.
            for alias in node.names:
                submodule = f"{name}.{alias.name}"
                found.append((submodule if submodule in MODULES else name, id(node) in top_level))
    return found


def test_imports_point_down() -> None:
    wrong = [
        f"{module} imports {name}"
        for module, path in MODULES.items()
        for name, _ in _imports(path, module)
        if name.split(".")[0] in OURS - {module.split(".")[0]} - ALLOWED[module.split(".")[0]]
    ]
    assert wrong == [], "imports against the layering (see ALLOWED):\n" + "\n".join(wrong)


def test_only_the_code_location_imports_dagster() -> None:
    loading = [
        f"{module} imports {name}"
        for module, path in MODULES.items()
        if not module.startswith("netflix_assets")
        for name, _ in _imports(path, module)
        if name.split(".")[0] in DAGSTER_PACKAGES
    ]
    assert loading == [], "command-line tools and engines must not load Dagster:\n" + "\n".join(loading)


def test_no_import_cycle_between_modules() -> None:
    graph = {
        module: {
            target
            for name, at_top in _imports(path, module)
            if at_top
            if name in MODULES and name != module
            for target in (name,)
        }
        for module, path in MODULES.items()
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target] if target in path else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(target) is None:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
