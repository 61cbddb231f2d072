"""Another commit of the project, exported beside this one, for a baseline measured in the same run.

The export runs with this checkout's venv: ``PYTHONPATH`` puts the export's packages ahead of the
editable install, and its own ``PROJECT_ROOT`` (dbt project, workspace) follows from where they live.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def export_ref(ref: str) -> Path:
    """The project at ``ref`` in a new temporary folder (the caller deletes it)."""
    target = Path(tempfile.mkdtemp(prefix=f"bench-{ref}-"))
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "archive", ref], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def env_for(checkout: Path | None) -> dict[str, str]:
    """Environment additions that make a child process import ``checkout`` (nothing for this one)."""
    return {"PYTHONPATH": str(checkout)} if checkout else {}
