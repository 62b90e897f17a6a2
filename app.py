"""CNN Workbench's dashboard: `streamlit run app.py`. This file only routes to the pages."""

import streamlit as st

st.set_page_config(page_title="CNN Workbench", page_icon=":material/neurology:", layout="wide")

pages = [
    st.Page("pages/build.py", title="Build", icon=":material/stacks:", default=True),
]
st.navigation(pages).run()
