"""The Keras builder: spec (+ training options) -> `keras.Model`.

The model takes raw 0..255 pixels (uint8) so that training, evaluation and prediction share one
input convention: `Rescaling(1/255)`, with the optional augmentation (active only in training)
around it (flips and shifts before, on uint8; the rest after), then the body and the classifier
head `Dense(num_classes, softmax)`. Layer names follow the
spec (`conv2d_1` is the spec's first layer), so shapes and Grad-CAM can find them again.

Only backend-neutral Keras 3 is used here (no `tf.*`), so the same model builds on TensorFlow,
JAX or PyTorch. Keras is imported when a model is built, not when this module is imported.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from cnn_core.augment import Augmentation, augmentation_nodes
from cnn_core.layers import HEAD_NAME, KINDS, KerasNode, classifier_head, keras_nodes
from cnn_core.shapes import check_spec
from cnn_core.spec import ModelSpec

if TYPE_CHECKING:
    import keras

# Our own layers, not in keras.layers: class name -> the module that defines it.
CUSTOM_LAYERS = {
    "RandomShiftFlip": "cnn_core.fast_augment",
    "PretrainedBackbone": "cnn_core.pretrained",
    "FusedBatchNormalization": "cnn_core.fast_norm",  # a kind's `trains_as`
    "ProgressiveResize": "cnn_core.resizing",  # small_image_share
}
SMALL_IMAGES_NAME = "small_images"
INPUT_NAME = "image"


def model_nodes(
    spec: ModelSpec,
    *,
    augmentation: Augmentation | None = None,
    compiled: bool = False,
    small_images: bool = False,
    augment_in_feed: bool = False,
) -> list[tuple[int | None, list[KerasNode]]]:
    """The whole model as plain data: (spec index or None, Keras nodes) per step, head last;
    with `small_images`, progressive resizing's layer before the spec's first layer; with
    `augment_in_feed`, no layers for the flips and shifts that the training feed makes.

    Raises `SpecError` if the spec cannot be built. `code.export_code` prints these same nodes
    (never progressive resizing's, a training schedule like the learning rate's).
    """
    analysis = check_spec(spec)
    raw, scaled = augmentation_nodes(augmentation, compiled=compiled, in_feed=augment_in_feed)
    steps: list[tuple[int | None, list[KerasNode]]] = [(None, raw)] if raw else []
    steps.append((None, [KerasNode("rescale", "Rescaling", {"scale": 1 / 255})]))
    if scaled:
        steps.append((None, scaled))
    if small_images:
        steps.append((None, [KerasNode(SMALL_IMAGES_NAME, "ProgressiveResize", {})]))
    shape = tuple(spec.input_shape)
    for index, layer in enumerate(spec.layers):
        info = analysis.layers[index]  # why: the checked, normalised values, never the raw spec
        steps.append((index, keras_nodes(index, KINDS[layer.type], info.resolved, shape)))
        shape = info.output_shape
    steps.append((None, classifier_head(spec.num_classes).nodes(shape)))
    return steps


def build_model(
    spec: ModelSpec,
    *,
    augmentation: Augmentation | None = None,
    dtype_policy: str | None = None,
    compiled: bool | None = None,
    small_images: bool = False,
    augment_in_feed: bool = False,
) -> keras.Model:
    """Build the Keras model for `spec`; raise `SpecError` if the spec is not buildable.

    Call the model with `training=False` outside training: Keras' augmentation layers default
    to training mode, and an unqualified call would update BatchNormalization's statistics.
    `compiled` says whether training will be XLA-compiled (default: as Keras decides, see
    `xla_training`); it picks the cheaper flip-and-shift augmentation for that case.
    `dtype_policy` (e.g. "mixed_bfloat16") applies to every layer but the head, which stays
    float32 so that probabilities and the loss keep full precision. `small_images` adds
    progressive resizing's layer (`cnn_core.resizing`), for a run with small_image_share.
    `augment_in_feed` leaves out the flip and shift layers, for a training feed that makes them
    (`cnn_core.augment.feed_augments`).
    """
    from cnn_core._keras import keras

    if compiled is None:
        compiled = xla_training()
    steps = model_nodes(
        spec,
        augmentation=augmentation,
        compiled=compiled,
        small_images=small_images,
        augment_in_feed=augment_in_feed,
    )
    inputs = keras.Input(shape=tuple(spec.input_shape), dtype="uint8", name=INPUT_NAME)
    x = inputs
    for _, nodes in steps:
        x = apply_nodes(nodes, x, dtype_policy=dtype_policy)
    return keras.Model(inputs, x, name=model_name(spec))


def model_name(spec: ModelSpec) -> str:
    """A Keras-friendly model name from the spec's name ('Tutorial CNN' -> 'tutorial_cnn')."""
    slug = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in spec.name.lower())
    return "_".join(part for part in slug.split("_") if part) or "cnn_model"


def apply_nodes(
    nodes: list[KerasNode], x: keras.KerasTensor, *, dtype_policy: str | None = None
) -> keras.KerasTensor:
    """Create each node's Keras layer and call it on its inputs; return the last output."""

    outputs = {"@in": x}
    for node in nodes:
        kwargs = dict(node.kwargs)
        if dtype_policy and node.name != HEAD_NAME:
            kwargs["dtype"] = dtype_policy
        elif node.name == HEAD_NAME:
            kwargs["dtype"] = "float32"
        layer = _layer_class(node.trains_as or node.cls)(**kwargs, name=node.name)
        args = [outputs[name] for name in node.inputs]
        outputs[node.name] = layer(args if len(args) > 1 else args[0])
    return outputs[nodes[-1].name]


def keras_own_class(layer: keras.layers.Layer) -> type:
    """The Keras class a layer stands for: Keras' own for one of our faster subclasses (a kind's
    `trains_as`, which names it as `keras_own`), else the layer's own class."""
    return getattr(type(layer), "keras_own", type(layer))


def _layer_class(name: str) -> type:
    """A Keras layer class by name: Keras' own, or one of ours (see CUSTOM_LAYERS)."""
    from cnn_core._keras import keras

    if name in CUSTOM_LAYERS:
        return getattr(importlib.import_module(CUSTOM_LAYERS[name]), name)
    return getattr(keras.layers, name)


def xla_training() -> bool:
    """Whether Keras' `jit_compile="auto"` compiles the train step with XLA here: always with JAX,
    with TensorFlow only on a GPU (it leaves XLA off on CPU-only machines), never with torch."""
    from cnn_core._keras import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        return uses_gpu()
    return False


def uses_gpu() -> bool:
    """Whether Keras sees a GPU."""
    from cnn_core._keras import keras

    if keras.backend.backend() == "torch":  # Keras' distribution API has no torch part
        import torch

        return bool(torch.cuda.is_available())
    return any(d.lower().startswith("gpu") for d in keras.distribution.list_devices())


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16), from the
    kernel's CPU flags (Linux); False where they cannot be read."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def bfloat16_is_faster() -> bool:
    """Whether bfloat16 mixed precision speeds up training here: on a GPU, and with TensorFlow on
    a CPU with native bfloat16 (its oneDNN kernels run bfloat16 convolutions about twice as fast
    as float32 ones; whole training steps about 1.3 times, see BENCHMARKS.md). Not with JAX or
    PyTorch on a CPU, nor where TensorFlow's oneDNN is turned off, where bfloat16 is emulated."""
    if uses_gpu():
        return True
    from cnn_core._keras import keras

    if keras.backend.backend() != "tensorflow":
        return False
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false"):
        return False
    return cpu_has_bfloat16()
