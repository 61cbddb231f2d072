"""The two dashboards of the serving layer (Streamlit): real-time engagement and historical trends."""
