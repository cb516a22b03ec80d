"""Entry point of the studio: ``streamlit run app.py``.

Navigation over app_pages/, and a sidebar on every page with the device and the active job.
"""

from pathlib import Path

import streamlit as st

from studio.sidebar import render_sidebar
from studio.state import remember_dataset

# the icon ships with the app: a Material icon is fetched from the web, which fails offline
ICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
st.set_page_config(page_title="modelkit studio", page_icon=str(ICON), layout="wide")

PAGES = [
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/folder_open:", default=True),
    st.Page("app_pages/label.py", title="Label", icon=":material/label:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("app_pages/classify.py", title="Classify", icon=":material/image_search:"),
    st.Page("app_pages/clean.py", title="Clean", icon=":material/cleaning_services:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/history:"),
    st.Page("app_pages/tune.py", title="Tune", icon=":material/tune:"),
]

page = st.navigation(PAGES)
render_sidebar()
# every page keeps the chosen data set in the address, so a reload of any page reopens it
if refused := remember_dataset():
    st.warning(refused)
page.run()
