"""Entry point of the studio: ``streamlit run app.py``."""

import streamlit as st

from modelkit.device import describe_device

st.set_page_config(page_title="modelkit studio", page_icon="🧪", layout="wide")
st.title("modelkit studio")
st.write("Train image classifiers on your own photo folders.")
st.sidebar.caption(describe_device())
