"""Runs: every run in a sortable table; select several to overlay their curves and compare them;
download one as a zip or export its model for deployment, delete it, or open it in Evaluate or
Predict.
"""

import pandas as pd
import streamlit as st

from cnn_core import access, api
from cnn_core.api import zip_run
from cnn_core.compare import compare_runs
from cnn_core.errors import UserError
from cnn_core.runs import Run, delete_run, list_runs, run_row
from dashboard.access import who
from dashboard.charts import curve_figure
from dashboard.exporting import export_ui
from dashboard.routing import ensure_routed
from dashboard.text import plain, show_error

ensure_routed()  # first: even a fresh server's first request goes through app.py

OPEN_IN = (  # the pages a run with a model opens in: (page, label, icon)
    ("pages/evaluate.py", "Evaluate", ":material/analytics:"),
    ("pages/predict.py", "Predict", ":material/image_search:"),
)

st.title("Runs")
user = who()
try:
    runs = access.visible(user, list_runs())  # shared server: the signed-in user's own runs
except UserError as exc:  # an unreadable runs folder
    show_error(exc)
    st.stop()


def may_export(run: Run) -> None:
    access.require(user, run, "export")
    access.audit(user, "export", run.name)


def download(run: Run) -> bytes:
    access.require(user, run, "download")
    access.audit(user, "download", run.name)
    return zip_run(run)


if not runs:
    st.info("No runs yet: build a network and train it.", icon=":material/info:")
    st.page_link("pages/train.py", label="Train a network", icon=":material/play_arrow:")
    st.stop()

table = pd.DataFrame([run_row(run) for run in runs])
selection = st.dataframe(
    table,
    hide_index=True,
    key="runs_table",
    on_select="rerun",
    selection_mode="multi-row",
    column_config={
        "best val accuracy": st.column_config.NumberColumn(format="percent"),
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "parameters": st.column_config.NumberColumn(format="localized"),
        "duration (s)": st.column_config.NumberColumn(format="%.0f"),
    },
)
chosen = [runs[i] for i in selection.selection.rows]
if not chosen:
    st.caption("Select one or more rows to compare runs, download, delete or open them.")
    st.stop()

comparison = compare_runs(chosen)
left, right = st.columns(2)
left.plotly_chart(curve_figure(comparison.histories, "accuracy", title="Accuracy"), key="cmp_acc")
right.plotly_chart(curve_figure(comparison.histories, "loss", title="Loss"), key="cmp_loss")

if len(chosen) > 1:
    st.subheader("Side by side")
    only_diff = st.toggle("Only what differs", value=True, key="only_diff")
    shown = comparison.only_differing() if only_diff else comparison
    table = pd.DataFrame(list(shown.cells), index=list(shown.rows), columns=list(shown.runs))
    st.dataframe(table, key="comparison")

st.subheader("Actions")
for run in chosen:
    status = run.status()
    with st.container(border=True):
        st.markdown(f"**{plain(run.name)}** · {status.state}")
        a, b, c, d = st.columns(4)
        a.download_button(
            "Download zip",
            data=lambda run=run: download(run),
            file_name=f"{run.name}.zip",
            mime="application/zip",
            key=f"zip_{run.name}",
            icon=":material/download:",
        )
        for column, (page, label, icon) in zip((b, c), OPEN_IN, strict=True):
            column.page_link(
                page,
                label=label,
                icon=icon,
                query_params={"run": run.name},
                disabled=not run.has_model(),
            )
        if run.has_model():
            with st.expander("Export for deployment (SavedModel, ONNX, LiteRT)"):
                export_ui(run, key="runs_export", allowed=lambda run=run: may_export(run))
        if status.active:  # deleting comes after stopping: offer what can be done now
            if d.button("Stop", key=f"stop_{run.name}", icon=":material/stop:"):
                try:
                    access.require(user, run, "stop")
                    api.request_stop(run)
                    access.audit(user, "stop", run.name)
                except UserError as exc:  # someone else's run, or a read-only run folder
                    show_error(exc)
                else:
                    st.toast(
                        plain(
                            f"Stop requested: {run.name} stops within one batch, keeping its model."
                        )
                    )
            continue
        confirmed = d.checkbox("Delete…", key=f"confirm_{run.name}")
        if confirmed and d.button("Really delete", key=f"delete_{run.name}", type="primary"):
            try:
                access.require(user, run, "delete")
                delete_run(run)
                access.audit(user, "delete", run.name)
            except (UserError, OSError) as exc:
                show_error(exc if isinstance(exc, UserError) else UserError(str(exc)))
            else:
                st.toast(plain(f"Deleted {run.name}."))
                st.rerun()
