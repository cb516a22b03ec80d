"""UI-side helpers shared by the Streamlit pages (the only package besides app_pages/ that imports
streamlit). Training logic lives in modelkit; this holds settings, singletons and widgets."""
