"""The real-time engagement dashboard: the last hours of 5-minute windows, refreshed every few seconds.

Windows before the batch watermark W show batch truth, later ones the speed layer (the serving views of
``docs/serving.md``); alert levels, churn-risk alerts and the stream's counts are the speed layer's own.
Only the fragment re-runs on its timer, so the page reads the warehouse once per refresh and nothing else.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.settings import get_settings
from core.warehouse import WarehouseLayout
from dashboards import data
from dashboards.formatting import age, count, instant, when
from dashboards.links import REALTIME

SERVED_COLORS = alt.Scale(domain=["batch", "speed"], range=["#4c78a8", "#f58518"])


def main() -> None:
    settings = get_settings()
    st.title(REALTIME.title)
    st.caption(
        "5-minute windows of the last two hours. Windows that end before the batch watermark W show the "
        "batch layer's recomputed truth; later windows come from the speed layer, refreshed every "
        f"{settings.dashboard_refresh_seconds:g} s."
    )
    layout = WarehouseLayout.from_settings(settings)

    @st.fragment(run_every=settings.dashboard_refresh_seconds)
    def live() -> None:
        try:
            snapshot = data.realtime(layout)
        except data.NoDataYet as exc:
            st.info(str(exc))
            return
        show(snapshot)

    live()


def show(snapshot: data.Realtime) -> None:
    _headline(snapshot)
    _activity(snapshot.windows)
    _rates(snapshot.rates)
    st.subheader("Alert level by segment (newest speed-layer window)")
    if len(snapshot.segments):
        st.caption(f"Window starting {when(snapshot.segments['window_start'].iloc[0])} UTC")
        st.dataframe(snapshot.segments.drop(columns=["window_start"]), hide_index=True, width="stretch")
    else:
        st.info("No window yet.")
    st.subheader("Churn-risk alerts")
    if len(snapshot.alerts):
        st.dataframe(snapshot.alerts, hide_index=True, width="stretch")
    else:
        st.info("No churn-risk alert so far.")


def _headline(snapshot: data.Realtime) -> None:
    windows, stream = snapshot.windows, snapshot.stream
    newest = windows.iloc[-1].to_dict() if len(windows) else {}
    freshness = st.columns(3)
    freshness[0].metric("Freshness (newest micro-batch)", age(snapshot.freshness_s))
    freshness[1].metric("Newest event (UTC)", instant(stream["newest_event"]))
    freshness[2].metric("Newest window (UTC)", when(newest.get("window_start")))
    activity = st.columns(3)
    activity[0].metric("Active users (newest window)", count(newest.get("active_users")))
    activity[1].metric("Sessions (newest window)", count(newest.get("total_sessions")))
    activity[2].metric(f"Sessions (last {data.RECENT_HOURS} h)", count(windows["total_sessions"].sum()))
    health = st.columns(3)
    health[0].metric("Dead letters", count(stream["dead_letters"]))
    health[1].metric("Late events", count(stream["late"]))
    health[2].metric("Duplicates dropped", count(stream["duplicates"]))
    mark = snapshot.watermark
    st.caption(
        f"Batch watermark W = {when(mark['batch_watermark'])} UTC" if mark else "No batch build published yet"
    )


def _activity(windows: pd.DataFrame) -> None:
    st.subheader("Active users and sessions per 5-minute window")
    if not len(windows):
        st.info("No window yet.")
        return
    long = windows.melt(
        id_vars=["window_start", "served_from"],
        value_vars=["active_users", "total_sessions"],
        var_name="measure",
    )
    chart = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("window_start:T", title="window start (UTC)", axis=alt.Axis(format="%H:%M")),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("served_from:N", scale=SERVED_COLORS, title="served from"),
            strokeDash=alt.StrokeDash("measure:N", title="measure"),
            tooltip=["window_start:T", "measure:N", "value:Q", "served_from:N"],
        )
    )
    st.altair_chart(chart, width="stretch")


def _rates(rates: pd.DataFrame) -> None:
    st.subheader("Low-engagement, abandonment and completion rates")
    if not len(rates):
        st.info("No window yet.")
        return
    chart = (
        alt.Chart(rates)
        .mark_line(point=True)
        .encode(
            x=alt.X("window_start:T", title="window start (UTC)", axis=alt.Axis(format="%H:%M")),
            y=alt.Y("value:Q", title="share of sessions", axis=alt.Axis(format="%")),
            color=alt.Color("rate:N", title="rate"),
            tooltip=["window_start:T", "rate:N", alt.Tooltip("value:Q", format=".1%")],
        )
    )
    st.altair_chart(chart, width="stretch")
