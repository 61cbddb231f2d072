"""How the dashboards are served: the Streamlit command line, bound to 127.0.0.1, nothing sent out."""

from __future__ import annotations

import sys
from pathlib import Path

from core.settings import Settings
from dashboards.links import HOST

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(settings: Settings, port: int | None = None) -> list[str]:
    """``streamlit run`` for this deployment: loopback only, headless, no usage statistics, no file
    watcher (nothing reloads in production; it would also watch the whole tree), viewer toolbar."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", HOST,
        "--server.port", str(port or settings.dashboard_port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
