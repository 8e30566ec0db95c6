"""scones explorer: a Streamlit app over the workflow (layout in app.py, logic in explorer.py)."""
