"""'Where the model looked': Grad-CAM heat maps for a run's model, and their overlay on a photo.

Grad-CAM (Selvaraju et al., 2017) weighs the last feature maps by how much each one raises the
class's probability (the gradient, averaged over the map) and keeps the positive sum. Gradients
are the one thing Keras 3 has no backend-neutral API for, so this module, which is neither model
nor training code, asks the backend in use: TensorFlow's GradientTape (the dashboard's backend).
On another backend `grad_cam` returns None and the dashboard says the map is unavailable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cnn_core.predict import load_run_model
from cnn_core.runs import Run

if TYPE_CHECKING:
    import keras

_SKIP = ("image", "rescale")


def last_feature_layer(model: keras.Model) -> str | None:
    """The name of the last layer whose output is still a feature map (height x width x c)."""
    name = None
    for layer in model.layers:
        if layer.name in _SKIP or layer.name.startswith("augment_"):
            continue
        shape = getattr(layer, "output", None)
        if shape is not None and len(shape.shape) == 4:
            name = layer.name
    return name


def grad_cam(run: Run, pixels: np.ndarray, class_index: int) -> np.ndarray | None:
    """A (height, width) map in [0, 1] over the model's input image, or None if the model has no
    feature maps or the backend cannot give gradients."""
    from cnn_core._keras import keras

    model = load_run_model(run)
    layer_name = last_feature_layer(model)
    if layer_name is None:
        return None
    probe = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])
    batch = np.asarray(pixels, dtype=np.uint8)[None]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            features, probs = probe(batch, training=False)
            score = probs[:, class_index]
        grads = tape.gradient(score, features)
        features, grads = features.numpy()[0], grads.numpy()[0]
    else:
        return None
    weights = grads.mean(axis=(0, 1))
    cam = np.maximum((features * weights).sum(axis=-1), 0)
    if not np.isfinite(cam).all() or cam.max() <= 0:
        return np.zeros(pixels.shape[:2], dtype=np.float32)
    cam = cam / cam.max()
    size = (pixels.shape[1], pixels.shape[0])
    resized = Image.fromarray((cam * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255


def colorize(cam: np.ndarray) -> np.ndarray:
    """Blue (ignored) through green and yellow to red (looked at hardest), as uint8 RGB."""
    t = np.clip(cam, 0, 1)[..., None]
    stops = np.array([[0, 0, 160], [0, 200, 255], [0, 220, 0], [255, 230, 0], [230, 0, 0]], float)
    position = t * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    frac = position - low
    colours = stops[low[..., 0]] * (1 - frac) + stops[low[..., 0] + 1] * frac
    return colours.astype(np.uint8)


def overlay(photo: Image.Image, cam: np.ndarray, *, alpha: float = 0.45) -> Image.Image:
    """The heat map stretched over the photo and blended with it."""
    photo = photo.convert("RGB")
    heat = Image.fromarray(colorize(cam)).resize(photo.size, Image.Resampling.BILINEAR)
    return Image.blend(photo, heat, alpha)
