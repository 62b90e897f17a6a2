"""The "Download as …" buttons the Runs and Predict pages share: each exports the run's model
(`cnn_core.deploy`, in a spinner), shows the proof that it predicts what the Keras model does,
and offers the exported folder as a zip. Streamlit only; Keras loads when a button is pressed.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from cnn_core.deploy import FORMAT_LABELS, export_key, export_zip, stored_exports
from cnn_core.errors import UserError
from cnn_core.runs import Run
from dashboard.text import plain, show_error

CHOICES = (("savedmodel", None), ("onnx", None), ("litert", None), ("litert", "int8"))


def label(format: str, quantize: str | None) -> str:
    return FORMAT_LABELS[format] + (f" {quantize}" if quantize else "")


def export_ui(run: Run, *, key: str, allowed: Callable[[], None] | None = None) -> None:
    """A button per format; the last export made here stays shown with its download.
    `allowed` raises a `UserError` when this user may not take the run's model away."""
    st.caption(
        "Each export is run by its own runtime on the run's test images and compared with the "
        "Keras model; a float export must give the same classes and probabilities within 0.001."
    )
    shown = f"{key}_result_{run.name}"
    columns = [column for _ in range(2) for column in st.columns(2)]  # two rows: whole labels
    for column, (format, quantize) in zip(columns, CHOICES, strict=True):
        name = label(format, quantize)
        pressed = column.button(
            f"Download as {name}",
            key=f"{key}_{export_key(format, quantize)}_{run.name}",
            icon=":material/deployed_code:",
        )
        if not pressed:
            continue
        with st.spinner(f"Exporting to {name} and checking it against the Keras model…"):
            try:
                if allowed is not None:
                    allowed()
                report, data = export_zip(run, format=format, quantize=quantize)
            except UserError as exc:
                show_error(exc)
                st.session_state.pop(shown, None)
                continue
        st.session_state[shown] = (report, data)
    if shown in st.session_state:
        report, data = st.session_state[shown]
        st.success(plain(report.summary()), icon=":material/verified:")
        if report.not_saved:
            st.warning(plain(report.not_saved), icon=":material/warning:")
        st.download_button(
            f"Save {label(report.format, report.quantize)} (zip)",
            data=data,
            file_name=f"{run.name}-{report.key}.zip",
            mime="application/zip",
            key=f"{key}_save_{run.name}",
            icon=":material/download:",
        )
    earlier = stored_exports(run)
    if earlier:
        st.caption(
            plain(
                "Exported before: "
                + "; ".join(
                    f"{label(r.format, r.quantize)} {r.exported_at[:16].replace('T', ' ')} "
                    f"(top-1 agreement {r.top1_agreement:.1%})"
                    for r in earlier.values()
                )
            )
        )
