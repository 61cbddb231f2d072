"""The asset graph as plain data, and the command that re-pins it after a deliberate change.

.venv/bin/python -m tests.asset_graph_snapshot   # rewrites tests/snapshots/asset_graph.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from core.settings import Settings
from netflix_assets.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def describe_graph(settings: Settings) -> dict[str, Any]:
    """Keys, groups, upstream deps and checks of every asset; sensors, schedules and jobs by name."""
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(check.name for check in node.check_keys),
        }
    return {
        "assets": assets,
        "sensors": sorted(s.name for s in defs.sensors or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "jobs": sorted(j.name for j in defs.jobs or [] if not j.name.startswith("__")),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(
            json.dumps(describe_graph(Settings(_env_file=None, data_dir=Path(tmp))), indent=2) + "\n"
        )
    print(f"pinned {SNAPSHOT}")


if __name__ == "__main__":
    main()
