"""Build: choose or load an architecture and see every layer's output shape and parameters.

Pure `cnn_core` (no TensorFlow), so the page opens at once.
"""

import pandas as pd
import streamlit as st

from cnn_core.errors import SpecError
from cnn_core.presets import list_presets
from cnn_core.shapes import analyze
from cnn_core.spec import parse_spec

st.title("Build")
presets = {p.spec.name: p for p in list_presets()}
choice = st.selectbox("Start from a preset", list(presets), key="build_preset")
spec = presets[choice].spec
upload = st.file_uploader("…or load a spec file (.json)", type=["json"], key="build_upload")
if upload is not None:
    try:
        spec = parse_spec(upload.getvalue(), source=upload.name)
    except SpecError as exc:
        st.error(str(exc))

analysis = analyze(spec)
st.subheader(spec.name)
if spec.description:
    st.caption(spec.description)
rows = [
    {
        "#": "" if info.index is None else info.index + 1,
        "layer": info.description,
        "output shape": "x".join(map(str, info.output_shape)) if info.output_shape else "?",
        "parameters": info.params,
    }
    for info in analysis.layers
]
st.dataframe(pd.DataFrame(rows), hide_index=True, key="build_table")
left, middle, right = st.columns(3)
left.metric("Parameters", f"{analysis.total_params:,}")
middle.metric("Multiply-adds per image", f"{analysis.total_macs / 1e6:.1f} M")
right.metric("Model size", f"{analysis.model_bytes / 1e6:.2f} MB")
for problem in analysis.problems:
    st.error(problem.message)
st.download_button(
    "Download spec JSON",
    spec.to_json(),
    file_name="spec.json",
    mime="application/json",
    key="build_download",
)
