"""CNN Workbench's dashboard: `streamlit run app.py`. This file only routes to the pages."""

import streamlit as st

st.set_page_config(page_title="CNN Workbench", page_icon=":material/neurology:", layout="wide")

pages = [
    st.Page("pages/build.py", title="Build", icon=":material/stacks:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
]
st.navigation(pages).run()
