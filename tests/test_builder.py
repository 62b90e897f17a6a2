"""The Keras builder: input convention, augmentation, names, dtype policy, refusal of bad specs."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from support import tiny_net

import cnn_core
from cnn_core.augment import Augmentation
from cnn_core.builder import bfloat16_is_faster, build_model, cpu_has_bfloat16, uses_gpu
from cnn_core.errors import ConfigError, SpecError
from cnn_core.presets import load_preset
from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec, ModelSpec, parse_spec

TUTORIAL = load_preset("tutorial_cnn").spec
TINY = tiny_net(LayerSpec("ResidualBlock", {"filters": 6, "strides": 2}))


def test_tutorial_has_the_tutorials_parameters_and_readable_names():
    model = build_model(TUTORIAL)
    assert model.count_params() == 319_178
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "rescale", "conv2d_1"]
    assert names[-1] == "classifier"
    assert model.name == "tutorial_cnn"
    assert model.get_layer("classifier").get_config()["activation"] == "softmax"


def test_model_takes_raw_uint8_pixels_and_scales_them_inside():
    model = build_model(TINY)
    assert model.inputs[0].dtype == "uint8"
    images = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    rescale = model.get_layer("rescale")
    scaled = np.asarray(rescale(images))
    assert scaled.max() <= 1.0
    assert scaled.min() >= 0.0
    assert scaled.max() > 0.5


def test_augmentation_is_active_only_in_training():
    aug = Augmentation(flip=True, translation=0.2, rotation=0.1, zoom=0.2, contrast=0.3)
    model = build_model(TINY, augmentation=aug, compiled=False)
    names = [layer.name for layer in model.layers]
    assert names[1:7] == [
        "rescale",
        "augment_flip",
        "augment_translation",
        "augment_rotation",
        "augment_zoom",
        "augment_contrast",
    ]
    assert model.count_params() == build_model(TINY).count_params()
    images = np.random.default_rng(1).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    first = np.asarray(model(images, training=False))
    np.testing.assert_array_equal(first, np.asarray(model(images, training=False)))
    shifter = model.get_layer("augment_translation")
    scaled = images.astype("float32") / 255
    assert not np.allclose(np.asarray(shifter(scaled, training=True)), scaled)


def test_compiled_training_gets_the_fused_flip_and_shift_on_raw_pixels():
    aug = Augmentation(flip=True, translation=0.125, contrast=0.1)
    model = build_model(TINY, augmentation=aug, compiled=True)
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["augment_shift_flip", "rescale", "augment_contrast"]
    images = np.random.default_rng(1).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    moved = np.asarray(model.get_layer("augment_shift_flip")(images, training=True))
    assert moved.dtype == np.uint8
    assert not np.array_equal(moved, images)


def test_augmentation_settings_are_validated():
    assert Augmentation.from_dict({"flip": True, "zoom": 0.1}) == Augmentation(flip=True, zoom=0.1)
    assert Augmentation.from_dict(None) == Augmentation()
    with pytest.raises(ConfigError, match='unknown key "flipp"'):
        Augmentation.from_dict({"flipp": True})
    with pytest.raises(ConfigError, match=r"from 0 to 0\.5"):
        Augmentation.from_dict({"rotation": 2})
    with pytest.raises(ConfigError, match="true or false"):
        Augmentation.from_dict({"flip": "yes"})
    with pytest.raises(ConfigError, match="from 0 to 1"):
        Augmentation.from_dict({"contrast": float("nan")})


def test_cpu_bfloat16_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_bfloat16(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_bfloat16(str(cpuinfo))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not cpu_has_bfloat16(str(cpuinfo))
    assert not cpu_has_bfloat16(str(tmp_path / "missing"))
    if keras.backend.backend() == "tensorflow" and cpu_has_bfloat16():
        assert bfloat16_is_faster()
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # emulated bfloat16 is slower
        assert bfloat16_is_faster() == uses_gpu()


def test_mixed_precision_keeps_the_head_in_float32():
    model = build_model(TINY, dtype_policy="mixed_bfloat16")
    assert model.get_layer("conv2d_1").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("classifier").dtype_policy.name == "float32"
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    assert keras.backend.standardize_dtype(model(images, training=False).dtype) == "float32"


def test_invalid_spec_is_refused_before_keras_sees_it():
    spec = ModelSpec(layers=(LayerSpec("Dense", {"units": 4}),))
    with pytest.raises(SpecError, match="Layer 1 \\(Dense\\): needs a flat input"):
        build_model(spec)


def test_saved_model_loads_in_safe_mode(tmp_path):
    model = build_model(TINY, augmentation=Augmentation(flip=True))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(2).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)), expected, rtol=1e-6)


def test_inference_calls_leave_batchnorm_statistics_alone():
    """Keras' augmentation layers default to training=True, so an unqualified call would update
    BatchNormalization; `training=False` (what evaluation and prediction use) must not."""
    model = build_model(TINY, augmentation=Augmentation(flip=True))
    bn = model.get_layer("residual_block_2_bn_a")
    before = np.asarray(bn.moving_mean).copy()
    images = np.random.default_rng(3).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    model(images, training=False)
    model.predict(images, verbose=0)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), before)


def test_engine_code_uses_only_backend_neutral_keras():
    """No TensorFlow calls in cnn_core, so the same code runs with KERAS_BACKEND=jax. The
    exceptions: Grad-CAM's gradient, which Keras has no backend-neutral API for, and deploy's
    SavedModel runtime and LiteRT int8 options, which are TensorFlow's own formats (imported
    inside the functions that need them, never by training); and the devices: TensorFlow's
    logical CPU devices and MirroredStrategy (Keras' distribution API has no TensorFlow part),
    used only when Keras runs on TensorFlow; and tracking's check that TensorFlow imports before
    Keras' TensorBoard callback (which writes through TensorFlow's summary ops) is made; and
    fast_norm's fused BatchNormalization kernel, taken only when Keras runs on TensorFlow (every
    other backend trains through Keras' own layer)."""
    package = Path(cnn_core.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name in (
            "gradcam.py",
            "deploy.py",
            "placement.py",
            "_keras.py",
            "tracking.py",
            "fast_norm.py",
        ):
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(
            r"^\s*(import tensorflow|from tensorflow)|\btf\.[A-Za-z_]", text, re.MULTILINE
        ):
            offenders.append(path.name)
    assert offenders == []


def test_whole_floats_in_the_spec_validate_build_and_train():
    # Issue 14: validate said yes and the worker failed on the raw 3.0 ("must be a tuple of 2
    # integers"); the builder now reads the values the checks normalised.
    spec = parse_spec(
        '{"version": 1, "name": "Floats", "input_shape": [8, 8, 3], "num_classes": 2, "layers": ['
        '{"type": "Conv2D", "filters": 8.0, "kernel_size": 3.0, "strides": 1.0},'
        '{"type": "MaxPooling2D", "pool_size": 2.0}, {"type": "Flatten"},'
        '{"type": "Dense", "units": 4.0}, {"type": "Dropout", "rate": 0}]}'
    )
    analysis = analyze(spec)
    assert analysis.valid, [p.message for p in analysis.problems]
    assert spec.layers[0].params["kernel_size"] == 3.0  # the saved spec keeps what was written
    model = build_model(spec)
    assert model.get_layer("conv2d_1").get_config()["kernel_size"] == (3, 3)
    assert model.count_params() == analysis.total_params
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(16) % 2
    history = model.fit(images, labels, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_alternate_flip_leaves_the_flips_to_the_feed_and_needs_flip() -> None:
    from cnn_core.augment import augmentation_nodes
    from cnn_core.errors import ConfigError

    names = lambda a, **kw: [n.cls for part in augmentation_nodes(a, **kw) for n in part]  # noqa: E731
    alternate = Augmentation.from_dict({"flip": True, "alternate_flip": True, "translation": 0.1})
    assert names(alternate) == ["RandomTranslation"]
    assert names(Augmentation(flip=True, translation=0.1)) == ["RandomFlip", "RandomTranslation"]
    compiled = augmentation_nodes(alternate, compiled=True)[0]
    assert [n.kwargs["flip"] for n in compiled] == [False]
    with pytest.raises(ConfigError, match=r"alternate_flip .*flip is off"):
        Augmentation.from_dict({"alternate_flip": True})
    from cnn_core.export import export_code

    assert "RandomFlip" in export_code(TINY, augmentation=alternate)  # no feed there: at random


def test_flips_and_shifts_move_to_the_feed_where_the_step_is_not_compiled() -> None:
    from cnn_core.augment import augmentation_nodes, feed_augments
    from cnn_core.config import config_from_dict
    from cnn_core.training.fit import augment_in_feed, feed_augmentation

    names = lambda a, **kw: [n.cls for part in augmentation_nodes(a, **kw) for n in part]  # noqa: E731
    both = Augmentation(flip=True, translation=0.0625, rotation=0.05)
    assert names(both, in_feed=True) == ["RandomRotation"]  # the rest stays in the model
    assert feed_augments(both, compiled=False) and not feed_augments(both, compiled=True)
    assert not feed_augments(Augmentation(rotation=0.1), compiled=False)
    assert not feed_augments(None, compiled=False)
    config = config_from_dict({"augmentation": {"flip": True, "translation": 0.0625}})
    assert augment_in_feed(config)  # TensorFlow on this CPU: no XLA
    assert feed_augmentation(config, (32, 32, 3)) == {
        "alternate_flip": False,
        "flip": True,
        "shift": (2, 2),
    }
    assert feed_augmentation(config, (20, 48, 1))["shift"] == (1, 3)
    model = build_model(TINY, augmentation=config.augmentation, augment_in_feed=True)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not kinds & {"RandomFlip", "RandomTranslation", "RandomShiftFlip"}
    plain = config_from_dict({})
    assert not augment_in_feed(plain) and feed_augmentation(plain, (32, 32, 3)) == {
        "alternate_flip": False
    }
