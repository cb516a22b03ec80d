import streamlit as st

st.header("Classify")
st.info("This page is being built.")
