import streamlit as st

st.header("Evaluate")
st.info("This page is being built.")
