"""Page script of the historical trends dashboard (Streamlit runs page files; the code is a module)."""

from dashboards.history import main

main()
