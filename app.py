"""CNN Workbench's dashboard: `streamlit run app.py`. This file only routes to the pages, once
`dashboard.access` has let the visitor in (the right host name; signed in on a shared server)."""

import streamlit as st

from cnn_core.backends import keep_this_process_off_gpus
from dashboard.access import account_ui, gate, stand_ins
from dashboard.memory import start_sweeper

st.set_page_config(page_title="CNN Workbench", page_icon=":material/neurology:", layout="wide")

pages = [
    st.Page("pages/build.py", title="Build", icon=":material/stacks:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
    st.Page("pages/search.py", title="Search", icon=":material/manage_search:"),
]
start_sweeper()  # once per server: closed sessions' uploads and freed memory go back
keep_this_process_off_gpus()  # the server predicts on the CPU: the GPUs are the runs'

refusal = gate()
if refusal is not None:  # every address shows the refusal, and nothing else: no page names
    st.navigation(stand_ins(pages, refusal), position="hidden").run()
else:
    account_ui()
    st.navigation(pages).run()
