"""FusedBatchNormalization: in training it takes TensorFlow's fused kernel and computes what
Keras' BatchNormalization computes (outputs, gradients, moving statistics); everywhere else it is
Keras' layer; the model a run saves holds Keras' own class."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from support import TINY_CONV, tiny_net, write_colours

from cnn_core import api
from cnn_core.config import TrainConfig
from cnn_core.fast_norm import FusedBatchNormalization
from cnn_core.spec import LayerSpec


def pair(**kwargs):
    """Keras' layer and ours, built alike and holding the same (non-trivial) weights."""
    ours, theirs = FusedBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    for layer in (ours, theirs):
        layer.build((None, 6, 5, 4))
    rng = np.random.default_rng(1)
    values = [rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
    values[-1] = np.abs(values[-1]) + 0.5  # a moving variance is positive
    for layer in (ours, theirs):
        layer.set_weights(values)
    return ours, theirs


def op_types(layer, x, training):
    fn = tf.function(lambda v: layer(v, training=training))
    return {op.type for op in fn.get_concrete_function(x).graph.get_operations()}


@pytest.mark.parametrize("options", [{}, {"center": False}, {"scale": False, "momentum": 0.6}])
def test_a_training_step_matches_keras_batch_normalization(options):
    ours, theirs = pair(**options)
    x = tf.constant(np.random.default_rng(2).normal(2.0, 3.0, (8, 6, 5, 4)).astype("float32"))
    assert "FusedBatchNormV3" in op_types(ours, x, training=True)  # the fast path is taken
    assert "FusedBatchNormV3" not in op_types(theirs, x, training=True)
    grads = {}
    for name, layer in (("ours", ours), ("theirs", theirs)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(4, dtype="float32"))  # a gradient that varies
        grads[name] = (y, *tape.gradient(loss, [x, *layer.trainable_variables]))
    for a, b in zip(grads["ours"], grads["theirs"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    for a, b in zip(ours.non_trainable_weights, theirs.non_trainable_weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_inference_frozen_layers_and_other_shapes_are_keras_own():
    ours, theirs = pair()
    x = tf.constant(np.random.default_rng(3).normal(size=(8, 6, 5, 4)).astype("float32"))
    assert "FusedBatchNormV3" not in op_types(ours, x, training=False)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-6)
    ours.trainable = theirs.trainable = False  # frozen: the moving statistics, unchanged
    assert "FusedBatchNormV3" not in op_types(ours, x, training=True)
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-6)
    flat = FusedBatchNormalization()
    vectors = tf.constant(np.random.default_rng(4).normal(size=(8, 4)).astype("float32"))
    assert "FusedBatchNormV3" not in op_types(flat, vectors, training=True)  # not NHWC
    tiny_epsilon = FusedBatchNormalization(epsilon=1e-6)  # below the fused kernel's floor
    assert "FusedBatchNormV3" not in op_types(tiny_epsilon, x, training=True)


def test_bfloat16_training_stays_close_to_keras():
    ours = FusedBatchNormalization(dtype="mixed_bfloat16")
    theirs = keras.layers.BatchNormalization(dtype="mixed_bfloat16")
    x = tf.constant(np.random.default_rng(5).normal(1.0, 2.0, (16, 6, 5, 4)), dtype="bfloat16")
    assert "FusedBatchNormV3" in op_types(ours, x, training=True)
    a, b = ours(x, training=True), theirs(x, training=True)
    assert a.dtype == b.dtype == tf.bfloat16
    np.testing.assert_allclose(np.float32(a), np.float32(b), atol=0.05)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-2)


def test_a_run_with_batch_normalization_saves_keras_own_layer(tmp_path):
    spec = tiny_net(LayerSpec("BatchNormalization"), TINY_CONV, LayerSpec("BatchNormalization"))
    data = write_colours(tmp_path / "data", train=8, test=2)
    config = TrainConfig(epochs=1, batch_size=8, mixed_precision=False)
    run = api.start_run(spec, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    assert run.status().state == "completed", run.status().error
    with zipfile.ZipFile(run.model_path) as archive:
        saved = json.loads(archive.read("config.json"))
    layers = saved["config"]["layers"]
    norms = [layer for layer in layers if "Normalization" in layer["class_name"]]
    assert len(norms) == 2
    assert {(n["module"], n["class_name"]) for n in norms} == {
        ("keras.layers", "BatchNormalization")
    }
    assert "cnn_core" not in json.dumps(saved)  # loads in plain Keras, without our package
