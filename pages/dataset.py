import streamlit as st

st.header("Dataset")
st.info("This page is being built.")
