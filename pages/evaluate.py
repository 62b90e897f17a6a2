"""Evaluate: a run's test accuracy and loss, per-class figures, the confusion matrix (select a
cell to see its images), and the most confident mistakes. Computed once per run, then instant.
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from cnn_core.datasets import load_dataset
from cnn_core.errors import UserError
from cnn_core.evaluate import cell_examples, confident_mistakes, evaluate_run, read_predictions
from dashboard.routing import ensure_routed
from dashboard.widgets import run_picker_ui, show_error

ensure_routed()  # first: a fresh server's deep link must still go through app.py

st.title("Evaluate")
run = run_picker_ui(key="eval_run", need_model=True)
if run is None:
    st.info("No run has a trained model yet: train one first.", icon=":material/info:")
    st.stop()

report = run.evaluation()
if report is None:
    st.write("This run has not been evaluated on the test set yet.")
    if st.button("Evaluate on the test set", type="primary", key="evaluate"):
        with st.spinner("Evaluating on the test set…"):
            try:
                report = evaluate_run(run)
            except UserError as exc:
                show_error(exc)
            else:
                st.rerun()  # redraw without the "not evaluated yet" prompt
    if report is None:
        st.stop()

names = report["class_names"]
a, b, c, d = st.columns(4)
a.metric("Test accuracy", f"{report['accuracy']:.2%}")
b.metric("Test loss", f"{report['loss']:.4f}")
top5 = report.get("top5_accuracy")
c.metric("Top-5 accuracy", f"{top5:.2%}" if top5 is not None else "-")
d.metric("Test images", f"{report['n']:,}")

per_class = pd.DataFrame(report["per_class"])
left, right = st.columns([3, 2])
left.dataframe(
    per_class,
    hide_index=True,
    key="per_class",
    column_config={
        k: st.column_config.NumberColumn(format="%.3f") for k in ("precision", "recall", "f1")
    },
)
bars = go.Figure(go.Bar(x=per_class["class"], y=per_class["recall"] * 100, marker_color="#2f6fde"))
bars.update_layout(
    title="Accuracy per class (recall, %)",
    height=320,
    yaxis={"range": [0, 100]},
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
)
right.plotly_chart(bars, key="per_class_chart")

matrix = np.array(report["confusion_matrix"])
heat = go.Figure(
    go.Heatmap(
        z=matrix,
        x=names,
        y=names,
        colorscale="Blues",
        text=matrix,
        texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
    )
)
heat.update_layout(
    title="Confusion matrix (select a cell)",
    xaxis_title="predicted",
    yaxis_title="true",
    yaxis={"autorange": "reversed"},
    height=520,
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
)
event = st.plotly_chart(heat, key="confusion", on_select="rerun", selection_mode="points")

points = event.selection.points if event and event.selection else []
if points:
    true_index, pred_index = names.index(points[0]["y"]), names.index(points[0]["x"])
else:
    c1, c2 = st.columns(2)
    true_index = c1.selectbox(
        "True class", range(len(names)), format_func=names.__getitem__, key="cell_true"
    )
    pred_index = c2.selectbox(
        "Predicted class",
        range(len(names)),
        format_func=names.__getitem__,
        index=min(1, len(names) - 1),
        key="cell_pred",
    )


@st.cache_resource(max_entries=2, show_spinner="Loading the test images…")
def test_images(source: str, size: tuple[int, int], channels: int) -> np.ndarray:
    return load_dataset(source, image_size=size, channels=channels).x_test


def big(pixels: np.ndarray) -> Image.Image:
    image = Image.fromarray(pixels.squeeze() if pixels.shape[-1] == 1 else pixels)
    return image.resize((96, 96 * image.height // image.width), Image.Resampling.NEAREST)


predictions = read_predictions(run)
try:
    spec = run.spec()
    x_test = test_images(report["data_source"], spec.input_shape[:2], spec.input_shape[2])
except UserError as exc:
    show_error(exc)
    st.stop()
if predictions is None or len(x_test) != report["n"]:
    st.warning("The stored predictions do not match the test set; evaluate again.")
    st.stop()
probs = predictions["probabilities"].astype(np.float32)

st.subheader(f"True {names[true_index]}, predicted {names[pred_index]}")
indices = cell_examples(run, true_index, pred_index, limit=24)
if not indices:
    st.caption("No test images in this cell.")
grid = st.columns(8)
for n, index in enumerate(indices):
    grid[n % 8].image(big(x_test[index]), caption=f"{probs[index, pred_index]:.0%}")

st.subheader("Most confident mistakes")
mistakes = confident_mistakes(run, limit=16)
grid = st.columns(8)
for n, item in enumerate(mistakes):
    grid[n % 8].image(
        big(x_test[item["index"]]),
        caption=f"{item['predicted_class']} {item['confidence']:.0%} (is {item['true_class']})",
    )
if st.button("Evaluate again", key="reevaluate"):
    with st.spinner("Evaluating…"):
        try:
            evaluate_run(run, force=True)
        except UserError as exc:
            show_error(exc)
    st.rerun()
