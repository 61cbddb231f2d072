"""Page script of the real-time engagement dashboard (Streamlit runs page files; the code is a module)."""

from dashboards.realtime import main

main()
