"""Progressive resizing: the first epochs train on smaller images, which cost less per epoch.

A network that ends in global pooling takes any image size, so its first epochs (the
`small_image_share` of them) can see every training image scaled down (to `small_image_scale` of its
side) and the rest see them whole, as fastai's DAWNBench entries and the FixRes paper (Touvron et
al. 2019) did: the early epochs learn coarse features at a fraction of the cost, the last ones adapt
them to the full size that evaluation and prediction use. `ProgressiveResize` sits in the training
model after the augmentation; it does nothing outside training nor until `SmallImageEpochs` (a
callback) gives it a size. Keras retraces the training step when the size changes (one extra trace a
run), with static shapes on every backend. The saved model holds Keras' `Identity` in its place
(`cnn_core.training.checkpoints.portable_model`).
"""

from __future__ import annotations

from typing import Any

from cnn_core._keras import keras


@keras.saving.register_keras_serializable(package="cnn_core")
class ProgressiveResize(keras.layers.Layer):
    """Scales training batches to `size` (height, width) while a size is set; else passes them on.

    Keras sees the full size (the layers after it are built for it): only the training step's
    tensors are smaller, so the network must not depend on the image size (global pooling).
    """

    keras_own = keras.layers.Identity  # the class a saved model holds in its place

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size: tuple[int, int] | None = None  # set by SmallImageEpochs; never saved

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training or self.size is None:
            return images
        resized = keras.ops.image.resize(
            images, self.size, interpolation="bilinear", antialias=True
        )
        return keras.ops.cast(resized, images.dtype)


class SmallImageEpochs(keras.callbacks.Callback):
    """Sets the model's `ProgressiveResize` layer to `size` for the epochs before `epochs`
    (counted from 0, so a resumed run continues as it began) and back to the full size after,
    making Keras trace its training step again when the size changes."""

    def __init__(self, layer: ProgressiveResize, *, epochs: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.layer, self.epochs, self.size = layer, int(epochs), tuple(size)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        wanted = self.size if epoch < self.epochs else None
        if wanted != self.layer.size:
            self.layer.size = wanted
            self.model.make_train_function(force=True)


def progressive_layer(model: keras.Model) -> ProgressiveResize | None:
    """The model's `ProgressiveResize` layer, if it has one."""
    found = [layer for layer in model.layers if isinstance(layer, ProgressiveResize)]
    return found[0] if found else None
