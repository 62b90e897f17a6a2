"""Evaluate: a run's test accuracy and loss, per-class figures, the confusion matrix (click a
cell to see its images; the most common mistake is shown first), and the most confident mistakes.
Computed once per run, then instant.
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cnn_core.errors import UserError
from cnn_core.evaluate import (
    cell_examples,
    class_findings,
    confident_mistakes,
    data_changed,
    evaluate_run,
    largest_confusion,
    matching_probabilities,
    stored_evaluation,
)
from cnn_core.testset import TestSet, choose_test_set, load_test_images
from dashboard.charts import enlarged
from dashboard.routing import ensure_routed
from dashboard.state import fingerprint, run_picker_ui
from dashboard.text import plain, plotly_text, show_error

ensure_routed()  # first: even a fresh server's first request goes through app.py

st.title("Evaluate")
run = run_picker_ui(key="eval_run", need_model=True)
if run is None:
    st.info("No run has a trained model yet: train one first.", icon=":material/info:")
    st.stop()

report, ignored = stored_evaluation(run)
if ignored:
    st.warning(ignored, icon=":material/warning:")
if report is None:
    st.write("This run has not been evaluated on the test set yet.")
    if st.button("Evaluate on the test set", type="primary", key="evaluate"):
        with st.spinner("Evaluating on the test set…"):
            try:
                report = evaluate_run(run)
            except UserError as exc:
                show_error(exc)
            else:
                if not report.not_saved:
                    st.rerun()  # redraw without the "not evaluated yet" prompt
                # Not saved (a read-only run folder): the figures are shown, not thrown away.
                st.warning(
                    f"Test accuracy {report.accuracy:.2%}, loss {report.loss:.4f} on "
                    f"{report.n:,} images; but {report.not_saved}",
                    icon=":material/warning:",
                )
                if report.not_logged:
                    st.warning(plain(report.not_logged), icon=":material/cloud_off:")
                report = None
    if report is None:
        st.stop()

if report.not_logged:  # MLflow refused this evaluation's figures
    st.warning(plain(report.not_logged), icon=":material/cloud_off:")
if data_changed(report, current=fingerprint(report.data_source)):
    st.warning(
        f"The test images in {plain(report.data_source)} changed since this evaluation; these "
        "figures are about the old ones. Evaluate again (at the bottom of the page) for the new.",
        icon=":material/update:",
    )
names = report.class_names
labels = [plotly_text(name) for name in names]  # the charts' class names, shown as text
a, b, c, d = st.columns(4)
a.metric("Test accuracy", f"{report.accuracy:.2%}")
b.metric("Test loss", f"{report.loss:.4f}")
top5 = report.top5_accuracy
c.metric("Top-5 accuracy", f"{top5:.2%}" if top5 is not None else "-")
d.metric("Test images", f"{report.n:,}")

per_class = pd.DataFrame([row.to_dict() for row in report.per_class])
findings = class_findings(report)
if findings["unbalanced"]:  # accuracy hides the small classes: recall per class comes first
    per_class = per_class[["class", "recall", "precision", "f1", "support"]]
    per_class = per_class.sort_values("recall", kind="stable")
    st.info(
        f"The test images' classes are unbalanced ({findings['imbalance']:.1f}:1), so accuracy "
        "says little about the small ones: the table puts each class's recall first, lowest "
        "first.",
        icon=":material/balance:",
    )
if never := findings["never_recognised"]:
    st.warning(
        f"The model never recognises {plain(', '.join(never))} (recall 0): train with "
        '"Balance the classes" on, or give it more images of '
        f"{'that class' if len(never) == 1 else 'those classes'}.",
        icon=":material/warning:",
    )
left, right = st.columns([3, 2])
left.dataframe(
    per_class,
    hide_index=True,
    key="per_class",
    column_config={
        k: st.column_config.NumberColumn(format="%.3f") for k in ("precision", "recall", "f1")
    },
)
bars = go.Figure(
    go.Bar(
        x=[plotly_text(name) for name in per_class["class"]],
        y=per_class["recall"] * 100,
        marker_color="#2f6fde",
    )
)
bars.update_layout(
    title="Accuracy per class (recall, %)",
    height=320,
    yaxis={"range": [0, 100]},
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
)
right.plotly_chart(bars, key="per_class_chart")

matrix = np.array(report.confusion_matrix)
# The cell shown below lives in the class selectboxes' state: a click on the matrix writes it
# there (a callback, so it runs before the page is drawn again), and so does the user's own
# choice in the selectboxes; whichever came last wins. A new run or evaluation starts again
# from the most common mistake.
cell_of = (run.name, report.evaluated_at)
if st.session_state.get("cell_of") != cell_of or not all(
    st.session_state.get(key) in range(len(names)) for key in ("cell_true", "cell_pred")
):
    st.session_state["cell_of"] = cell_of
    st.session_state["cell_true"], st.session_state["cell_pred"] = largest_confusion(matrix)


def show_clicked_cell() -> None:
    """on_select of the matrix: show the clicked cell. A cleared selection changes nothing."""
    for point in st.session_state["confusion"].selection.points:
        if "customdata" in point:  # the cells' click targets carry (true, predicted, count)
            true, predicted = (int(i) for i in point["customdata"][:2])
            st.session_state["cell_true"], st.session_state["cell_pred"] = true, predicted
            return


def confusion_figure(shown: tuple[int, int]) -> go.Figure:
    """The matrix as a heatmap, with one click target per cell and a frame around `shown`.

    Streamlit returns no selection for a heatmap, so a transparent scatter point sits on each
    cell's centre; with no hover cut-off, plotly picks the nearest centre, which is the point of
    the cell under the mouse wherever in the cell it is, whatever the chart's size in pixels.
    """
    n = len(names)
    true, predicted = np.indices(matrix.shape).reshape(2, -1)
    targets = go.Scatter(
        x=[labels[p] for p in predicted],
        y=[labels[t] for t in true],
        # plain lists: a numpy array reaches the selection as a typed array's {"0": ..} object
        customdata=np.stack([true, predicted, matrix.ravel()], axis=1).tolist(),
        mode="markers",
        marker={"symbol": "square", "size": 1, "opacity": 0},
        selected={"marker": {"opacity": 0}},  # the frame shows the chosen cell, not plotly
        unselected={"marker": {"opacity": 0}},
        hovertemplate="true %{y}, predicted %{x}: %{customdata[2]}<extra></extra>",
        showlegend=False,
    )
    heat = go.Heatmap(
        z=matrix,
        x=labels,
        y=labels,
        zmin=0,
        colorscale="Blues",
        colorbar={"title": {"text": "images"}},
        text=matrix,
        texttemplate="%{text}",  # plotly picks dark or light text for each cell's colour
        hoverinfo="skip",  # the click targets say it
    )
    t, p = shown
    frame = {"type": "rect", "x0": p - 0.5, "x1": p + 0.5, "y0": t - 0.5, "y1": t + 0.5}
    fixed = {"fixedrange": True}
    figure = go.Figure([heat, targets])
    figure.add_shape(**frame, line={"color": "#ff8c00", "width": 3})
    figure.update_layout(
        title="Confusion matrix (click a cell to see its images)",
        # Fixed ranges, true classes downwards: autorange would pad for the markers, a blank
        # strip around the cells. No zoom or pan: a drag would only move the cells out of view.
        xaxis={"title": "predicted", "type": "category", "range": [-0.5, n - 0.5], **fixed},
        yaxis={"title": "true", "type": "category", "range": [n - 0.5, -0.5], **fixed},
        hovermode="closest",
        hoverdistance=-1,  # no cut-off: a click anywhere in a cell lands on its target
        height=520,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure


shown = (st.session_state["cell_true"], st.session_state["cell_pred"])
st.plotly_chart(
    confusion_figure(shown),
    key="confusion",
    on_select=show_clicked_cell,
    selection_mode="points",
)
c1, c2 = st.columns(2)
true_index = c1.selectbox(
    "True class", range(len(names)), format_func=names.__getitem__, key="cell_true"
)
pred_index = c2.selectbox(
    "Predicted class", range(len(names)), format_func=names.__getitem__, key="cell_pred"
)


@st.cache_resource(max_entries=2, show_spinner="Loading the test images…")
def test_images(test_set: TestSet) -> np.ndarray:
    return load_test_images(test_set)


try:
    x_test = test_images(choose_test_set(run, report.data_source))
except UserError as exc:
    show_error(exc)
    st.stop()
probs = matching_probabilities(run, x_test, count=report.n)
if probs is None:
    st.warning("The stored predictions do not match the test set; evaluate again.")
    st.stop()

count = int(matrix[true_index, pred_index])
st.subheader(
    f"True {plain(names[true_index])}, predicted {plain(names[pred_index])}: "
    f"{count} image{'' if count == 1 else 's'}"
)
indices = cell_examples(run, true_index, pred_index, limit=24)
with st.container(key="cell_images"):
    if not indices:
        st.caption("No test images in this cell.")
    elif len(indices) < count:
        st.caption(f"The {len(indices)} most confident of them.")
    grid = st.columns(8)
    for n, index in enumerate(indices):
        grid[n % 8].image(enlarged(x_test[index], 96), caption=f"{probs[index, pred_index]:.0%}")

st.subheader("Most confident mistakes")
mistakes = confident_mistakes(run, limit=16)
grid = st.columns(8)
for n, item in enumerate(mistakes):
    grid[n % 8].image(
        enlarged(x_test[item["index"]], 96),
        caption=plain(
            f"{item['predicted_class']} {item['confidence']:.0%} (is {item['true_class']})"
        ),
    )
if st.button("Evaluate again", key="reevaluate"):
    with st.spinner("Evaluating…"):
        try:
            again = evaluate_run(run, force=True)
        except UserError as exc:
            show_error(exc)
        else:
            if again.not_saved:
                st.warning(
                    f"Test accuracy {again.accuracy:.2%} on {again.n:,} images; but "
                    f"{again.not_saved}",
                    icon=":material/warning:",
                )
                st.stop()
    st.rerun()
