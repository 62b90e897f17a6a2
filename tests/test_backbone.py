"""The Backbone layer kind (issue 15, point 1): a keras.applications network as the body's first
layer. Shape inference agrees exactly with Keras at several input sizes per network; the problems
each get a one-click fix; the builder gives each network its own input range; frozen means
inference-mode BatchNormalization; weights files load; no test touches the network.
"""

from __future__ import annotations

import math
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest
from support import write_colours

from cnn_core import api
from cnn_core.backbones import BACKBONES
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.diagram import network_dot
from cnn_core.errors import UserError
from cnn_core.pretrained import make_network
from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec, ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore")

POOL = LayerSpec("GlobalAveragePooling2D")


def backbone(**params: object) -> LayerSpec:
    return LayerSpec("Backbone", {"model": "mobilenet_v3_small", **params})


def net(*layers: LayerSpec, input_shape: tuple[int, int, int] = (32, 32, 3)) -> ModelSpec:
    return ModelSpec(name="Transfer", input_shape=input_shape, num_classes=3, layers=layers)


def keras_macs(model: keras.Model) -> int:
    """Multiply-adds of every convolution, counted from the Keras layers' own shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * math.prod(layer.kernel_size)
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            inputs = layer.input.shape[-1] // layer.groups
            total += h * w * c * math.prod(layer.kernel_size) * inputs
    return total


# Two sizes per network: the smallest, and an odd, non-square one (rounding up at each halving).
@pytest.mark.parametrize("size", [(32, 32), (75, 47)])
@pytest.mark.parametrize("model", list(BACKBONES))
def test_shapes_params_and_macs_agree_with_keras(model, size):
    spec = net(backbone(model=model, trainable=True), POOL, input_shape=(*size, 3))
    info = analyze(spec).layers[0]
    network = make_network(model, (*size, 3), None)
    assert info.output_shape == tuple(network.output.shape[1:])
    assert info.params == network.count_params()
    frozen = sum(math.prod(w.shape) for w in network.non_trainable_weights)
    assert info.frozen == frozen
    assert info.macs == keras_macs(network)
    inside = sum(math.prod(x.output.shape[1:]) for x in network.layers[1:])
    inside -= math.prod(info.output_shape)
    assert info.values - math.prod(info.output_shape) == pytest.approx(inside, rel=0.25)
    frozen_spec = net(backbone(model=model), POOL, input_shape=(*size, 3))
    assert analyze(frozen_spec).layers[0].frozen == network.count_params()


def test_a_backbone_that_is_not_first_is_moved_to_the_top_by_its_fix():
    spec = net(LayerSpec("BatchNormalization"), backbone(), POOL)
    (problem,) = analyze(spec).problems
    assert problem.rule == "not_first" and problem.layer == 1
    assert "Layer 2 (Backbone)" in problem.message and "first" in problem.message
    fixed = problem.fix.apply(spec)
    assert [layer.type for layer in fixed.layers] == ["Backbone", "BatchNormalization", POOL.type]
    assert analyze(fixed).valid


def test_grey_input_is_refused_and_the_fix_makes_it_colour():
    spec = net(backbone(), POOL, input_shape=(64, 64, 1))
    (problem,) = analyze(spec).problems
    assert problem.rule == "needs_colour" and "3 channels" in problem.message
    assert problem.fix.apply(spec).input_shape == (64, 64, 3)
    assert analyze(problem.fix.apply(spec)).valid


def test_too_small_an_input_is_refused_and_the_fix_raises_it():
    spec = net(backbone(model="efficientnet_b0"), POOL, input_shape=(28, 40, 3))
    (problem,) = analyze(spec).problems
    assert problem.rule == "input_too_small" and "at least 32x32" in problem.message
    assert problem.fix.apply(spec).input_shape == (32, 40, 3)
    assert analyze(problem.fix.apply(spec)).valid


def test_a_weights_path_that_is_missing_or_not_weights_h5_is_refused(tmp_path):
    other = tmp_path / "model.h5"
    other.write_bytes(b"")
    for bad, says in ((tmp_path / "none.weights.h5", "does not exist"), (other, "path of")):
        (problem,) = analyze(net(backbone(weights=str(bad)), POOL)).problems
        assert problem.rule == "bad_value"
        assert "Layer 1 (Backbone): weights" in problem.message and says in problem.message
    (problem,) = analyze(net(backbone(model="mobilenet"), POOL)).problems
    assert problem.rule == "bad_value" and "model must be one of" in problem.message


def test_the_description_names_the_network_its_state_and_its_minimum_input():
    info = analyze(net(backbone(weights="imagenet"), POOL)).layers[0]
    assert info.description == (
        "Backbone MobileNetV3-Small, ImageNet weights, frozen, input 32x32 or larger"
    )


def test_a_weights_file_loads_into_the_backbone(tmp_path):
    source = make_network("mobilenet_v3_small", (32, 32, 3), None)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    model = build_model(net(backbone(weights=str(path)), POOL))
    loaded = model.get_layer("backbone_1").network
    for mine, theirs in zip(loaded.weights, source.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_a_weights_file_of_another_network_is_refused_with_its_path(tmp_path):
    path = tmp_path / "small.weights.h5"
    make_network("mobilenet_v3_small", (32, 32, 3), None).save_weights(path)
    with pytest.raises(UserError, match=r"small\.weights\.h5 does not fit the ResNet50 backbone"):
        build_model(net(backbone(model="resnet50", weights=str(path)), POOL))


def test_a_relative_weights_path_resolves_to_the_file_it_names(tmp_path, monkeypatch):
    (tmp_path / "w.weights.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    info = analyze(net(backbone(weights="w.weights.h5"), POOL)).layers[0]
    assert info.resolved["weights"] == str(tmp_path / "w.weights.h5")


def test_imagenet_without_a_network_says_which_file_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setattr("keras.src.backend.config.keras_home", lambda: str(tmp_path))  # empty

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network here")  # what urlretrieve raises offline

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    with pytest.raises(UserError) as caught:
        build_model(net(backbone(model="resnet50", weights="imagenet"), POOL))
    message = str(caught.value)
    url = BACKBONES["resnet50"].weights_url
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message and url in message
    assert "~/.keras/models" in message and ".weights.h5" in message


def test_imagenet_weights_come_from_keras_cache_and_efficientnet_gets_its_extra_scaling(
    tmp_path, monkeypatch
):
    source = make_network("efficientnet_b0", (32, 32, 3), None)
    norm = next(x for x in source.layers if isinstance(x, keras.layers.Normalization))
    norm.adapt_mean.assign([0.485, 0.456, 0.406])  # as ImageNet's file holds them
    norm.adapt_variance.assign([0.229**2, 0.224**2, 0.225**2])
    saved = tmp_path / "imagenet.weights.h5"
    source.save_weights(saved)
    asked = []

    def cached(*args: object, **kwargs: object) -> str:
        asked.append((args, kwargs))
        return str(saved)

    monkeypatch.setattr(keras.utils, "get_file", cached)
    network = make_network("efficientnet_b0", (32, 32, 3), "imagenet")
    b0 = BACKBONES["efficientnet_b0"]
    assert asked == [
        (
            (b0.weights_file, b0.weights_url),
            {"cache_subdir": "models", "file_hash": b0.weights_hash},
        )
    ]
    # Keras' own ImageNet EfficientNet: (x / 255 - mean) / std / sqrt(std), per channel
    pixels = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    std = np.array(b0.imagenet_std)
    expected = (pixels / 255 - np.array([0.485, 0.456, 0.406])) / std / np.sqrt(std)
    stem = next(x for x in network.layers if isinstance(x, keras.layers.Normalization))
    got = keras.Model(network.input, stem.output).predict(pixels, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model", ["mobilenet_v3_small", "resnet50"])
def test_the_model_takes_raw_pixels_and_gives_each_network_its_own_range(model):
    spec = net(backbone(model=model), POOL)
    built = build_model(spec)
    layer = built.get_layer("backbone_1")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    features = keras.Model(built.input, layer.output).predict(pixels, verbose=0)
    x = pixels.astype("float32")
    if model == "resnet50":
        x = keras.applications.resnet50.preprocess_input(x)  # caffe: BGR minus the mean
    expected = layer.network.predict(x, verbose=0)  # MobileNetV3 scales 0..255 itself
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


def test_frozen_means_no_trainable_weights_and_inference_mode_batch_norm():
    frozen = build_model(net(backbone(), POOL))
    assert sum(math.prod(w.shape) for w in frozen.trainable_weights) == 576 * 3 + 3
    pixels = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(
        frozen(pixels, training=True), frozen(pixels, training=False), atol=1e-6
    )
    trainable = build_model(net(backbone(trainable=True), POOL))
    small = BACKBONES["mobilenet_v3_small"]
    count = sum(math.prod(w.shape) for w in trainable.trainable_weights)
    assert count == small.params - small.frozen_params + 576 * 3 + 3


def test_a_saved_model_reloads_without_its_weights_file_and_predicts_the_same(tmp_path):
    source = make_network("efficientnet_b0", (32, 32, 3), None)
    weights = tmp_path / "b0.weights.h5"
    source.save_weights(weights)
    model = build_model(net(backbone(model="efficientnet_b0", weights=str(weights)), POOL))
    model.save(tmp_path / "m.keras")
    weights.unlink()  # why: reloading takes the weights from the .keras file, not from here
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    pixels = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(
        loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), atol=1e-6
    )


def test_a_backbone_spec_trains_one_epoch_and_predicts(tmp_path: Path):
    data = write_colours(tmp_path / "data", train=12, test=4)
    spec = net(backbone(), POOL)
    config = TrainConfig(epochs=1, batch_size=12, seed=3)
    run = api.start_run(spec, config, data_source=str(data), root=tmp_path / "runs", detach=False)
    status = run.status()
    assert status.state == "completed", status.error
    from cnn_core.predict import load_run_model

    model = load_run_model(run)
    pixels = np.full((1, 32, 32, 3), 200, dtype="uint8")
    probabilities = model.predict(pixels, verbose=0)
    assert probabilities.shape == (1, 3) and abs(probabilities.sum() - 1) < 1e-5


def test_the_diagram_shows_the_frozen_part():
    spec = net(backbone(), POOL)
    assert "939,120 params (939,120 frozen)" in network_dot(spec, analyze(spec))


def test_validate_json_carries_the_frozen_parameters():
    doc = analyze(net(backbone(trainable=True), POOL)).to_dict()
    small = BACKBONES["mobilenet_v3_small"]
    assert doc["layers"][0]["frozen_params"] == small.frozen_params
    assert doc["total_frozen_params"] == small.frozen_params
    assert "frozen_params" not in doc["layers"][1]


def test_a_backbone_trained_from_random_weights_predicts_in_inference_mode_what_it_learned():
    # bench.transfer found it: Keras' 0.999 BatchNormalization momentum kept a from-scratch
    # MobileNetV3's moving statistics near their start, so it predicted one class at test time.
    # With FRESH_MOMENTUM set back to Keras' 0.999 this test fails (accuracy below 0.9: it was
    # run as a second case until the suite had to fit in 15 minutes).
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    colours = np.array([(220, 40, 40), (40, 220, 40), (40, 40, 220)])
    labels = np.arange(60) % 3
    pixels = colours[labels][:, None, None, :] + rng.normal(0, 20, (60, 32, 32, 3))
    pixels = pixels.clip(0, 255).astype("uint8")
    model = build_model(net(backbone(trainable=True), POOL))
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy")
    model.fit(pixels, labels, batch_size=12, epochs=12, verbose=0)  # 60 steps
    accuracy = float((model.predict(pixels, verbose=0).argmax(1) == labels).mean())
    assert accuracy >= 0.9
