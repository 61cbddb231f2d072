"""The historical trends dashboard: monthly active users, cohort retention, genre and content performance.

Everything comes from the published batch warehouse; the monthly active users are the serving view's
(``docs/serving.md``), so the current month is merged across the batch watermark W (batch viewers before
W and the speed layer's after it, each viewer once), and the page says so.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.settings import get_settings
from core.warehouse import WarehouseLayout
from dashboards import data
from dashboards.formatting import count, when
from dashboards.links import HISTORY

MONTHS_SHOWN = 12
COHORTS_SHOWN = 12


def main() -> None:
    st.title(HISTORY.title)
    try:
        snapshot = data.history(WarehouseLayout.from_settings(get_settings()))
    except data.NoDataYet as exc:
        st.info(str(exc))
        return
    show(snapshot)


def show(snapshot: data.History) -> None:
    _headline(snapshot)
    _monthly_users(snapshot.monthly_users)
    _cohorts(snapshot.cohorts)
    _genres(snapshot.genres)
    st.subheader("Content performance (most watched titles)")
    st.dataframe(snapshot.titles, hide_index=True, width="stretch")


def _headline(snapshot: data.History) -> None:
    mark, users, month = snapshot.watermark, snapshot.monthly_users, snapshot.current_month
    current = users[users["month_start"] == month] if month is not None else users.iloc[0:0]
    columns = st.columns([1.4, 1, 1.2, 1])
    columns[0].metric("Batch watermark W (UTC)", when(mark["batch_watermark"]) if mark else "none")
    columns[1].metric("Current month", month.strftime("%Y-%m") if month is not None else "none")
    columns[2].metric("Monthly active users (current month)", count(current["monthly_active_users"].sum()))
    columns[3].metric("Of them seen only after W", count(current["speed_only_users"].sum()))
    st.caption(
        "The current month is served merged: viewers in the batch facts before W united with the viewers the "
        "speed layer counted from W on, each viewer once. Earlier months are batch truth."
    )


def _monthly_users(users: pd.DataFrame) -> None:
    st.subheader("Monthly active users by country and plan")
    if not len(users):
        st.info("No viewing session yet.")
        return
    months = sorted(users["month_start"].unique())[-MONTHS_SHOWN:]
    recent = users[users["month_start"].isin(months)]
    left, right = st.columns(2)
    for column, segment in ((left, "country"), (right, "subscription_plan")):
        per_segment = recent.groupby(["month_start", segment], as_index=False)["monthly_active_users"].sum()
        column.altair_chart(
            alt.Chart(per_segment)
            .mark_bar()
            .encode(
                x=alt.X("yearmonth(month_start):O", title="month"),
                y=alt.Y("monthly_active_users:Q", title="monthly active users"),
                color=alt.Color(f"{segment}:N", title=segment.replace("_", " ")),
                tooltip=["yearmonth(month_start):O", f"{segment}:N", "monthly_active_users:Q"],
            ),
            width="stretch",
        )


def _cohorts(cohorts: pd.DataFrame) -> None:
    st.subheader("Cohort retention")
    if not len(cohorts):
        st.info("No cohort yet.")
        return
    recent = cohorts[cohorts["cohort_month"].isin(sorted(cohorts["cohort_month"].unique())[-COHORTS_SHOWN:])]
    curves, heatmap = st.columns(2)
    curves.altair_chart(
        alt.Chart(recent)
        .mark_line(point=True)
        .encode(
            x=alt.X("months_since_cohort:Q", title="months since first session"),
            y=alt.Y("retention_rate:Q", title="retention", axis=alt.Axis(format="%")),
            color=alt.Color("yearmonth(cohort_month):O", title="cohort"),
            tooltip=["yearmonth(cohort_month):O", "months_since_cohort:Q", "retention_rate:Q"],
        ),
        width="stretch",
    )
    heatmap.altair_chart(
        alt.Chart(recent)
        .mark_rect()
        .encode(
            x=alt.X("months_since_cohort:O", title="months since first session"),
            y=alt.Y("yearmonth(cohort_month):O", title="cohort"),
            color=alt.Color("retention_rate:Q", title="retention", scale=alt.Scale(scheme="blues")),
            tooltip=[
                "yearmonth(cohort_month):O",
                "months_since_cohort:O",
                "retention_rate:Q",
                "active_users:Q",
            ],
        ),
        width="stretch",
    )


def _genres(genres: pd.DataFrame) -> None:
    st.subheader("Genre performance")
    if not len(genres):
        st.info("No genre yet.")
        return
    st.altair_chart(
        alt.Chart(genres)
        .mark_bar()
        .encode(
            x=alt.X("total_views:Q", title="sessions, all time"),
            y=alt.Y("genre_primary:N", sort="-x", title="genre"),
            color=alt.Color("avg_rating:Q", title="avg rating", scale=alt.Scale(scheme="goldorange")),
            tooltip=["genre_primary:N", "total_views:Q", "unique_users:Q", "avg_rating:Q", "total_reviews:Q"],
        ),
        width="stretch",
    )
