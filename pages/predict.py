"""Predict: classify your own photos with a run's model, see what it saw and where it looked.

A broken or hostile file gets a one-line message next to its name; the other photos are still
predicted.
"""

import pandas as pd
import streamlit as st

from cnn_core import access, settings
from cnn_core.errors import UserError
from cnn_core.gradcam import grad_cam, overlay
from cnn_core.predict import class_names, predict_images
from dashboard.access import who
from dashboard.charts import enlarged, top_k_figure
from dashboard.exporting import export_ui
from dashboard.routing import ensure_routed
from dashboard.state import run_picker_ui
from dashboard.text import plain, show_error

ensure_routed()  # first: even a fresh server's first request goes through app.py

UNSURE = 0.5  # below this top probability, say plainly that the model is unsure
PHOTO_SIZE = 360  # pixels: the photo as shown, beside what the model sees
TYPES = ["jpg", "jpeg", "png", "gif", "bmp", "webp"]

st.title("Predict")
run = run_picker_ui(key="predict_run", need_model=True)
if run is None:
    st.info("No run has a trained model yet: train one first.", icon=":material/info:")
    st.stop()
try:
    names = class_names(run)
    spec = run.spec()
except UserError as exc:
    show_error(exc)
    st.stop()
h, w, _ = spec.input_shape
st.caption(plain(f"Classes: {', '.join(names)}. Photos are resized to {h}x{w} for the model."))


def may_export() -> None:
    user = who()
    access.require(user, run, "export")
    access.audit(user, "export", run.name)


with st.expander("Export this model (SavedModel, ONNX, LiteRT)"):
    export_ui(run, key="predict_export", allowed=may_export)

uploads = st.file_uploader(
    "Photos (JPEG, PNG, GIF, BMP, WEBP)",
    type=TYPES,
    accept_multiple_files=True,
    key="photos",
    max_upload_size=settings.PHOTO_UPLOAD_MB,  # the browser's check; predict_images checks again
)
camera = (
    st.camera_input("…or take one", key="camera")
    if st.toggle("Use the camera", key="use_cam")
    else None
)
files = [(f.name, f.getvalue()) for f in uploads or []]
if camera is not None:
    files.append(("camera.jpg", camera.getvalue()))
if not files:
    st.stop()
try:
    limit = settings.max_photos()
except UserError as exc:
    show_error(exc)
    st.stop()
if len(files) > limit:  # each photo is drawn with its own chart and heat map
    left_out = [name for name, _ in files[limit:]]
    named = ", ".join(left_out[:5]) + (
        f" and {len(left_out) - 5:,} more" if len(left_out) > 5 else ""
    )
    st.warning(
        plain(
            f"{len(files):,} photos in this upload, and the page takes at most {limit:,} at once: "
            f"the first {limit:,} are predicted below, not {named}; upload those separately."
        ),
        icon=":material/photo_library:",
    )
    files = files[:limit]

try:
    results = predict_images(
        run, files, top=5, max_bytes=settings.PHOTO_UPLOAD_MB * 2**20, photo_size=PHOTO_SIZE
    )
except UserError as exc:
    show_error(exc)
    st.stop()

rows = []
for (name, _), result in zip(files, results, strict=True):
    with st.container(border=True):
        st.markdown(f"**{plain(name)}**")
        if result.error:
            st.error(plain(result.error), icon=":material/broken_image:")
            rows.append(
                {"photo": name, "prediction": None, "probability": None, "problem": result.error}
            )
            continue
        best, probability = result.top[0]
        rows.append(
            {"photo": name, "prediction": best, "probability": probability, "problem": None}
        )
        photo = result.photo
        a, b, c, d = st.columns([3, 1.3, 3, 3])
        a.image(photo, caption="your photo")
        b.image(enlarged(result.pixels, 96), caption=f"what the model sees ({w}x{h})")
        c.plotly_chart(top_k_figure(result.top), key=f"top_{len(rows)}")
        if probability < UNSURE:
            c.info(
                plain(f"The model is unsure: its best guess, {best}, has only {probability:.0%}."),
                icon=":material/help:",
            )
        try:
            cam = grad_cam(run, result.pixels, names.index(best))
        except UserError:
            cam = None
        if cam is None:
            d.caption(
                "No heat map for this model: it has no feature maps, or this Keras backend "
                "gives no gradients."
            )
        else:
            d.image(overlay(photo, cam), caption=plain(f"where the model looked for '{best}'"))

if len(rows) > 1:
    st.subheader("All photos")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="predict_table",
        column_config={"probability": st.column_config.NumberColumn(format="percent")},
    )
