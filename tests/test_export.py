"""Code export: the script runs on its own and rebuilds the very same model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnn_core.augment import Augmentation
from cnn_core.backbones import BACKBONES, IMAGENET
from cnn_core.builder import build_model
from cnn_core.export import export_code
from cnn_core.presets import load_preset, preset_ids
from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec, ModelSpec

PROJECTING = ModelSpec(
    name='Odd "name" \\ with """ quotes',
    input_shape=(20, 12, 1),
    num_classes=4,
    layers=(
        LayerSpec("Conv2D", {"filters": 5, "kernel_size": 3, "strides": 2, "activation": "gelu"}),
        LayerSpec("ResidualBlock", {"filters": 7, "strides": 2}),
        # written loosely on purpose: the script gets the resolved ints and pairs
        LayerSpec("Conv2D", {"filters": 6.0, "kernel_size": [1, 3.0], "padding": "same"}),
        LayerSpec("ResidualBlock", {"filters": 7}),
        LayerSpec("AveragePooling2D", {"pool_size": 2, "padding": "same"}),
        LayerSpec("SpatialDropout2D", {"rate": 0.1}),
        LayerSpec("Flatten"),
        LayerSpec("Dense", {"units": 9, "activation": "leaky_relu", "use_bias": False}),
        LayerSpec("Dropout", {"rate": 0.5}),
    ),
)

# Issue 14, point 2: kinds added to the registry alone export and run like the others.
SEPARABLE = ModelSpec(
    name="Separable",
    input_shape=(17, 15, 3),
    num_classes=3,
    layers=(
        LayerSpec("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "use_bias": False}),
        LayerSpec("SeparableConv2D", {"filters": 8, "kernel_size": [3, 1], "strides": 2}),
        LayerSpec("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}),
        LayerSpec("SeparableConv2D", {"filters": 4, "kernel_size": 3, "activation": "relu"}),
        LayerSpec("GlobalAveragePooling2D"),
    ),
)

PROBE = textwrap.dedent(
    """
    import json, runpy, sys
    namespace = runpy.run_path(sys.argv[1])
    model = namespace["build_model"]()
    print(json.dumps({
        "params": model.count_params(),
        "shapes": {layer.name: list(layer.output.shape[1:]) for layer in model.layers},
    }))
    """
)


def run_exported(tmp_path, code: str) -> dict:
    script = tmp_path / "exported.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


EXPORTABLE = [  # a preset with ImageNet weights would download them: backbones are tested below
    p
    for p in preset_ids()
    if all(x.params.get("weights") != IMAGENET for x in load_preset(p).spec.layers)
]


@pytest.mark.parametrize(
    "spec",
    [*(load_preset(p).spec for p in EXPORTABLE), PROJECTING, SEPARABLE],
    ids=[*EXPORTABLE, "projecting", "separable"],
)
def test_exported_script_rebuilds_the_same_model(tmp_path, spec):
    code = export_code(spec, augmentation=Augmentation(flip=True, translation=0.1))
    compile(code, "exported.py", "exec")
    result = run_exported(tmp_path, code)
    analysis = analyze(spec)
    assert result["params"] == analysis.total_params
    from cnn_core.layers import layer_name

    for info in analysis.layers[:-1]:
        assert result["shapes"][layer_name(info.index, info.type)] == list(info.output_shape)
    assert result["shapes"]["classifier"] == [spec.num_classes]
    assert "augment_flip" in result["shapes"]


def test_exported_script_reads_well():
    code = export_code(load_preset("tutorial_cnn").spec)
    assert code.startswith('"""Tutorial CNN: a Keras model exported from CNN Workbench.')
    assert "import tensorflow" not in code
    assert "# Layer 1: Conv2D 32, 3x3, same, relu -> 32x32x32, 896 params" in code
    assert 'layers.Rescaling(scale=1 / 255, name="rescale")' in code
    # strides left out where they are what Keras assumes: the pool size for pooling
    assert 'layers.MaxPooling2D(pool_size=2, name="max_pooling2d_2")(x)' in code
    assert 'layers.Dense(units=10, activation="softmax", name="classifier")(x)' in code
    assert "augment" not in code  # no augmentation asked for
    assert max(len(line) for line in code.splitlines()) < 100


def test_exported_script_has_the_resolved_values_not_the_written_ones():
    code = export_code(PROJECTING)
    assert "layers.Conv2D(filters=5, kernel_size=3, strides=2, " in code  # square: Keras' shorthand
    assert 'layers.Conv2D(filters=6, kernel_size=(1, 3), padding="same", ' in code
    assert "6.0" not in code and "3.0" not in code


def test_new_kinds_export_with_only_the_keys_keras_needs():
    code = export_code(SEPARABLE)
    depthwise = "kernel_size=3,", "depth_multiplier=2,", "use_bias=False,"
    assert "\n".join(f"        {part}" for part in depthwise) in code
    separable = "filters=8,", "kernel_size=(3, 1),", "strides=2,", 'name="separable_conv2d_2",'
    assert "\n".join(f"        {part}" for part in separable) in code  # padding: Keras' default
    assert "pool_size=3, strides=2, " in code  # strides other than the pool size are written
    assert "# Layer 2: SeparableConv2D 8, 3x1, stride 2, valid -> 7x7x8, 74 params" in code


# Issue 15: a Backbone spec exports as plain keras.applications code, the same network as ours.
BACKBONE_PROBE = textwrap.dedent(
    """
    import json, runpy, sys
    import numpy as np
    results = []
    for job in json.loads(sys.argv[1]):
        model = runpy.run_path(job["script"])["build_model"]()
        inner = [x for layer in model.layers for x in getattr(layer, "layers", [])]
        results.append({
            "shape": list(model.output.shape[1:]),
            "params": model.count_params(),
            "frozen": len(model.non_trainable_weights),
            "momenta": sorted({x.momentum for x in inner if hasattr(x, "moving_mean")}),
        })
        if "images" in job:  # the same head as ours, then predictions on the same images
            head = np.load(job["head"])
            model.get_layer("classifier").set_weights([head["kernel"], head["bias"]])
            np.save(job["predictions"], model.predict(np.load(job["images"]), verbose=0))
    print(json.dumps(results))
    """
)


def backbone_spec(model: str, *, trainable: bool, weights: str | None = None) -> ModelSpec:
    layers = (
        LayerSpec("Backbone", {"model": model, "weights": weights, "trainable": trainable}),
        LayerSpec("GlobalAveragePooling2D"),
    )
    return ModelSpec(name=model, input_shape=(32, 32, 3), num_classes=3, layers=layers)


def ours(model) -> dict:
    network = model.get_layer("backbone_1").network
    return {
        "shape": list(model.output.shape[1:]),
        "params": model.count_params(),
        "frozen": len(model.non_trainable_weights),
        "momenta": sorted({x.momentum for x in network.layers if hasattr(x, "moving_mean")}),
    }


def test_a_backbone_spec_exports_a_script_that_builds_the_same_network(tmp_path: Path):
    from cnn_core.pretrained import make_network

    trainable = {"mobilenet_v3_small": True, "mobilenet_v3_large": False}
    specs = [backbone_spec(m, trainable=trainable.get(m, m != "resnet50")) for m in BACKBONES]
    # A weights file: ResNet50, whose input is the furthest from ours (BGR minus the mean).
    weights = tmp_path / "resnet50.weights.h5"
    make_network("resnet50", (32, 32, 3), None).save_weights(weights)
    specs.append(backbone_spec("resnet50", trainable=False, weights=str(weights)))
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    np.save(tmp_path / "images.npy", images)
    jobs, expected = [], []
    for i, spec in enumerate(specs):
        script = tmp_path / f"exported_{i}.py"
        script.write_text(export_code(spec), encoding="utf-8")
        jobs.append({"script": str(script)})
        model = build_model(spec)
        expected.append(ours(model))
    kernel, bias = model.get_layer("classifier").get_weights()
    np.savez(tmp_path / "head.npz", kernel=kernel, bias=bias)
    jobs[-1].update(
        images=str(tmp_path / "images.npy"),
        head=str(tmp_path / "head.npz"),
        predictions=str(tmp_path / "predictions.npy"),
    )
    done = subprocess.run(
        [sys.executable, "-c", BACKBONE_PROBE, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for spec, result, mine in zip(specs, results, expected, strict=True):
        assert result == mine, spec.name
    assert expected[0]["momenta"] == [0.9]  # random weights: as PretrainedBackbone sets it
    assert expected[-1]["frozen"] > expected[0]["frozen"]  # frozen: all of it
    np.testing.assert_allclose(
        np.load(tmp_path / "predictions.npy"), model.predict(images, verbose=0), atol=1e-5
    )


def test_imagenet_weights_are_left_to_keras_and_the_script_reads_well():
    code = export_code(backbone_spec("efficientnet_b0", trainable=False, weights=IMAGENET))
    compile(code, "exported.py", "exec")
    assert "keras.applications.EfficientNetB0(" in code
    assert 'weights="imagenet"' in code and "momentum" not in code  # Keras' own, as trained
    assert "backbone_1.trainable = False" in code and "(x, training=False)" in code
    assert "cnn_core" not in code and "PretrainedBackbone" not in code
    for model in BACKBONES:
        code = export_code(backbone_spec(model, trainable=True, weights=IMAGENET))
        assert max(len(line) for line in code.splitlines()) < 100, model
