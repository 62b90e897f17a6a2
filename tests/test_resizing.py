"""Progressive resizing (small_image_share): the first epochs train on smaller images, the rest,
evaluation and prediction at full size; the model a run saves holds Keras' Identity in the
resizing layer's place; a network that depends on the image size is refused, saying why."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
from support import TINY_CONV, tiny_net, write_colours

from cnn_core import api
from cnn_core.config import (
    TrainConfig,
    check_spec_support,
    config_from_dict,
    small_image_refusal,
    unusable_settings,
)
from cnn_core.errors import ConfigError
from cnn_core.resizing import ProgressiveResize, SmallImageEpochs
from cnn_core.spec import LayerSpec, ModelSpec


def test_the_layer_scales_training_batches_only_while_a_size_is_set():
    layer = ProgressiveResize()
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    assert layer(x, training=True).shape == (2, 8, 8, 3)  # no size yet
    layer.size = (4, 6)
    small = np.asarray(layer(x, training=True))
    assert small.shape == (2, 4, 6, 3) and small.dtype == np.float32
    assert small.min() >= 0 and small.max() <= 1  # an average of the pixels, not a crop
    np.testing.assert_array_equal(layer(x, training=False), x)  # evaluation sees them whole
    np.testing.assert_array_equal(layer(x), x)


class Probe(keras.layers.Layer):
    """Records the image size each trace of the training step sees."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[tuple[int, int]] = []

    def call(self, x, training=None):
        if training:
            self.seen.append(tuple(x.shape[1:3]))
        return x


def test_the_callback_trains_the_first_epochs_small_then_whole():
    inputs = keras.Input((8, 8, 3))
    resize = ProgressiveResize()
    probe = Probe()
    x = probe(resize(inputs))
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    images, labels = rng.uniform(size=(16, 8, 8, 3)), rng.integers(0, 2, 16)
    callback = SmallImageEpochs(resize, epochs=2, size=(4, 4))
    model.fit(images, labels, epochs=4, batch_size=8, callbacks=[callback], verbose=0)
    assert probe.seen and probe.seen[0] == (4, 4) and probe.seen[-1] == (8, 8)
    assert set(probe.seen) == {(4, 4), (8, 8)}
    assert resize.size is None  # the last epochs were whole
    assert model.predict(images, verbose=0).shape == (16, 2)
    # a run resumed after the small epochs never traces them
    probe.seen.clear()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=4, initial_epoch=2, batch_size=8, callbacks=[callback])
    assert set(probe.seen) == {(8, 8)}


def test_a_run_with_small_images_first_trains_and_saves_keras_own_layers(tmp_path):
    spec = tiny_net(LayerSpec("MaxPooling2D", {"pool_size": 2}), TINY_CONV)
    data = write_colours(tmp_path / "data", train=8, test=2)
    config = TrainConfig(epochs=2, batch_size=8, small_image_share=0.5, small_image_scale=0.5)
    run = api.start_run(spec, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    assert run.status().state == "completed", run.status().error
    assert "the first 1 epochs train on 4x4 images" in run.file("train.log").read_text()
    assert len(run.history()) == 2
    with zipfile.ZipFile(run.model_path) as archive:
        saved = json.loads(archive.read("config.json"))
    kinds = {(layer["module"], layer["class_name"]) for layer in saved["config"]["layers"]}
    assert ("keras.layers", "Identity") in kinds
    assert "cnn_core" not in json.dumps(saved)  # loads in plain Keras, without our package


def test_a_network_that_depends_on_the_image_size_is_refused_with_the_fix():
    flat = ModelSpec(
        input_shape=(8, 8, 3),
        num_classes=3,
        layers=(TINY_CONV, LayerSpec("Flatten"), LayerSpec("Dense", {"units": 5})),
    )
    config = TrainConfig(epochs=3, small_image_share=0.3)
    with pytest.raises(ConfigError, match="instead of Flatten"):
        check_spec_support(config, flat)
    assert "layer 3 (Dense) would need" in small_image_refusal(flat, 0.5)
    assert set(unusable_settings(flat)) >= {"small_image_share", "small_image_scale"}
    pooled = tiny_net()
    assert small_image_refusal(pooled, 0.5) is None
    assert "small_image_share" not in unusable_settings(pooled)
    check_spec_support(config, pooled)
    # a network that cannot be built at the smaller size: the refusal says to raise the scale
    deep = tiny_net(*[LayerSpec("MaxPooling2D", {"pool_size": 2})] * 3)
    assert "Raise small_image_scale" in small_image_refusal(deep, 0.5)


def test_the_share_counts_the_first_epochs_and_never_the_last():
    def small(share, epochs):
        return config_from_dict({"epochs": epochs, "small_image_share": share}).small_image_epochs

    assert small(0.4, 10) == 4  # fast_cpu's: the first 4 of 10
    assert small(0.3, 10) == small(0.7, 10) - 4 == 3  # exact products, not 2.9999 or 6.9999
    assert small(0.29, 100) == 29
    assert small(0.4, 3) == 1  # fewer epochs (e.g. --epochs 3): the same share, rounded down
    assert small(0.4, 1) == small(0.0, 10) == 0  # a 1-epoch run trains whole; 0 = off
    assert small(0.95, 2) == 1  # the last epoch is always at full size
    with pytest.raises(ConfigError, match="small_image_share"):
        config_from_dict({"small_image_share": 1.0})
    with pytest.raises(ConfigError, match="small_image_scale"):
        config_from_dict({"small_image_share": 0.4, "small_image_scale": 1.0})
    assert config_from_dict({"small_image_share": 0.4}).small_image_scale == 0.75
