"""Where the dashboards are served: one Streamlit server on 127.0.0.1, one URL path per dashboard.

The launcher prints these URLs, Dagster shows them as metadata on the assets each dashboard reads, and the
app declares its pages with the same paths, so a link cannot point at a page that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Dashboard:
    path: str  # URL path of the page (st.Page url_path) and its script's name under dashboards/views/
    title: str


REALTIME = Dashboard("realtime", "Real-time engagement")
HISTORY = Dashboard("history", "Historical trends")
DASHBOARDS: tuple[Dashboard, ...] = (REALTIME, HISTORY)


def base_url(settings: Settings, port: int | None = None) -> str:
    return f"http://{HOST}:{port or settings.dashboard_port}"


def dashboard_url(settings: Settings, dashboard: Dashboard, port: int | None = None) -> str:
    return f"{base_url(settings, port)}/{dashboard.path}"
