"""Entry point of the studio: ``streamlit run app.py``.

Navigation over pages/, and a sidebar on every page with the device and the active job.
"""

import streamlit as st

from studio.sidebar import render_sidebar

st.set_page_config(page_title="modelkit studio", page_icon="🧪", layout="wide")

PAGES = [
    st.Page("pages/dataset.py", title="Dataset", icon="🗂️", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/evaluate.py", title="Evaluate", icon="📊"),
    st.Page("pages/classify.py", title="Classify", icon="🔍"),
    st.Page("pages/runs.py", title="Runs", icon="🗃️"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
