"""The landing page at the server's root: what each dashboard shows, with its link."""

from __future__ import annotations

import streamlit as st

from dashboards.links import HISTORY, REALTIME

DESCRIPTIONS = {
    REALTIME: "active users and sessions per 5-minute window, engagement rates, alert levels by segment, "
    "churn-risk alerts, dead-letter, late and duplicate counts, and the data's freshness",
    HISTORY: "monthly active users by country and plan (current month merged across the batch watermark), "
    "cohort retention, genre and content performance",
}


def main() -> None:
    st.title("netflix-lambda dashboards")
    for dashboard, text in DESCRIPTIONS.items():
        st.page_link(f"views/{dashboard.path}.py", label=f"{dashboard.title}: {text}")
