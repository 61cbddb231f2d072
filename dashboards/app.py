"""The Streamlit entry point: a landing page and the two dashboards, each at its own URL path.

Run through :mod:`dashboards.server` (``netflix-lambda dashboards``), which binds 127.0.0.1 and turns off
usage statistics; no page uses a component that fetches from the internet.
"""

from pathlib import Path

import streamlit as st

from dashboards.links import DASHBOARDS

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="netflix-lambda", layout="wide")
pages = [st.Page(VIEWS / "home.py", title="Dashboards", default=True)]
pages += [st.Page(VIEWS / f"{d.path}.py", title=d.title, url_path=d.path) for d in DASHBOARDS]
st.navigation(pages).run()
