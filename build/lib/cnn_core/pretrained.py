"""`PretrainedBackbone`: a `keras.applications` network without its top, as one Keras layer.

It takes the body's input like every other layer (pixels scaled to 0..1 by the builder's
Rescaling) and gives its network the range it was trained on: 0..255 for MobileNetV3 (built with
`include_preprocessing=True`) and EfficientNet (which normalise inside), and Caffe's BGR minus the
ImageNet mean for ResNet50 (`keras.applications.resnet50.preprocess_input`). So the model keeps
taking raw uint8 pixels and training, evaluation, prediction and exports share one convention.

Frozen (`trainable=False`), it calls its network with `training=False`, so BatchNormalization
stays in inference mode (Keras' transfer-learning guide). A saved `.keras` model reloads with its
own weights, never downloading again. The facts about each network are in `cnn_core.backbones`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_core._keras import keras
from cnn_core.backbones import (
    BACKBONES,
    CAFFE_MEAN_BGR,
    FRESH_MOMENTUM,
    IMAGENET,
    Backbone,
    missing_weights_message,
)
from cnn_core.errors import UserError


def make_network(model: str, input_shape: tuple[int, int, int], weights: str | None) -> Any:
    """The `keras.applications` network `model` without its top, with these weights.

    The network is always built as with random weights, so that a saved model rebuilds the same
    one; ImageNet weights are then fetched through Keras' own cache and loaded as Keras does."""
    backbone = BACKBONES[model]
    constructor = getattr(keras.applications, backbone.constructor)
    network = constructor(weights=None, input_shape=input_shape, **backbone.keras_options)
    if weights == IMAGENET:
        network.load_weights(_imagenet_file(backbone))
        if backbone.imagenet_std is not None:
            _fold_std(network, backbone.imagenet_std)
    elif weights is not None:
        _load_weights(network, weights, backbone.title)
    return network


def _imagenet_file(backbone: Backbone) -> str:
    """The ImageNet weights file, from Keras' cache (~/.keras/models), downloaded if need be."""
    try:
        return keras.utils.get_file(
            backbone.weights_file,
            backbone.weights_url,
            cache_subdir="models",
            file_hash=backbone.weights_hash,
        )
    except Exception as exc:  # why: Keras' get_file raises a bare Exception when it cannot fetch
        message = missing_weights_message(f"The {backbone.title} backbone", backbone)
        raise UserError(message) from exc


def _fold_std(network: Any, std: tuple[float, float, float]) -> None:
    """(x - mean) / sqrt(variance) / sqrt(std) is (x - mean) / sqrt(variance * std)."""
    norm = next(layer for layer in network.layers if isinstance(layer, keras.layers.Normalization))
    variance = keras.ops.convert_to_numpy(norm.adapt_variance)
    norm.adapt_variance.assign(variance * np.asarray(std, dtype=variance.dtype))
    norm.finalize_state()  # why: the layer divides by a copy it takes of the variable


def _load_weights(network: Any, path: str, title: str) -> None:
    try:
        network.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        raise UserError(
            f"The weights file {path} does not fit the {title} backbone "
            f"({(str(exc).splitlines() or [type(exc).__name__])[0][:120]}); give a "
            f"{title} weights file saved with save_weights, or null weights."
        ) from exc


@keras.saving.register_keras_serializable(package="cnn_core")
class PretrainedBackbone(keras.layers.Layer):
    """One backbone of `cnn_core.backbones`, with its own preprocessing (see the module doc)."""

    def __init__(self, backbone: str, weights_source: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone, self.weights_source = backbone, weights_source
        self.restoring = False  # True when loaded from a saved model: its weights come from there
        self.network = None

    def build(self, input_shape: tuple) -> None:
        weights = None if self.restoring else self.weights_source
        self.network = make_network(self.backbone, tuple(input_shape[1:]), weights)
        self.network.trainable = self.trainable
        if self.weights_source is None:  # random weights: its statistics start from nothing
            for layer in self.network.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = FRESH_MOMENTUM

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        h, w = BACKBONES[self.backbone].output_size(input_shape[1], input_shape[2])
        return (input_shape[0], h, w, BACKBONES[self.backbone].channels)

    def call(self, images: Any, training: bool | None = None) -> Any:
        x = keras.ops.multiply(images, 255.0)  # why: the builder scaled pixels to 0..1
        if BACKBONES[self.backbone].preprocessing == "caffe":
            x = keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, x.dtype)
        return self.network(x, training=training if self.trainable else False)

    def get_config(self) -> dict[str, Any]:
        config = {"backbone": self.backbone, "weights_source": self.weights_source}
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PretrainedBackbone:
        layer = cls(**config)
        layer.restoring = True
        return layer
