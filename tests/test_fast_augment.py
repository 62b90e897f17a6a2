"""RandomShiftFlip: every output image is a flipped and/or shifted copy of its input, with the
border filled by reflection; nothing changes outside training; it saves and loads safely."""

from __future__ import annotations

import keras
import numpy as np

from cnn_core.fast_augment import RandomShiftFlip


def candidates(image: np.ndarray, pad: int) -> list[np.ndarray]:
    """Every image the layer may produce from `image` with shifts of up to `pad` pixels."""
    out = []
    for source in (image, image[:, ::-1]):
        padded = np.pad(source, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        h, w = image.shape[:2]
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                out.append(padded[dy : dy + h, dx : dx + w])
    return out


def test_outputs_are_shifted_or_flipped_copies():
    rng = np.random.default_rng(0)
    images = rng.random((16, 10, 10, 3)).astype("float32")
    layer = RandomShiftFlip(shift=0.2, flip=True, seed=3)
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape
    moved = 0
    for before, after in zip(images, out, strict=True):
        matches = [np.allclose(after, c) for c in candidates(before, 2)]
        assert any(matches)
        moved += not np.allclose(after, before)
    assert moved >= 8  # with 50 possible outcomes, nearly every image changes


def test_flip_only_and_shift_only():
    images = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    flipped = np.asarray(RandomShiftFlip(flip=True, seed=1)(images, training=True))
    for before, after in zip(images, flipped, strict=True):
        assert np.array_equal(after, before) or np.array_equal(after, before[:, ::-1])
    shifted = np.asarray(RandomShiftFlip(shift=0.25, seed=1)(images, training=True))
    for before, after in zip(images, shifted, strict=True):
        assert any(np.array_equal(after, c) for c in candidates(before, 1)[:9])  # no flips


def test_inference_is_the_identity():
    images = np.random.default_rng(1).random((3, 8, 8, 3)).astype("float32")
    layer = RandomShiftFlip(shift=0.5, flip=True)
    np.testing.assert_array_equal(np.asarray(layer(images)), images)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_saved_in_a_model_and_loaded_in_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, RandomShiftFlip(shift=0.125, flip=True, name="aug")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.get_layer("aug").get_config()["shift"] == 0.125
