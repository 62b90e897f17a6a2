"""Tests for `cnn_core.predict`: awkward pictures, one bad file among good ones, top-k, the cache
of loaded models and the errors a user sees when a run has no usable model.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import TINY, encode, gradient, imported_frameworks, png_declaring

from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.errors import UserError
from cnn_core.predict import (
    Prediction,
    class_names,
    clear_model_cache,
    load_run_model,
    predict_images,
)
from cnn_core.runs import DATASET, MODEL, Run, atomic_write_json, create_run

NAMES = ["cat", "dog", "bird"]


def make_run(tmp_path: Path, *, names: list[str] | None = NAMES, seed: int = 0) -> Run:
    import keras

    run = create_run(TINY, TrainConfig(), data_source=str(tmp_path), root=tmp_path / "runs")
    keras.utils.set_random_seed(seed)
    build_model(TINY).save(run.file(MODEL))
    dataset = {"source": str(tmp_path)} | ({"class_names": names} if names else {})
    atomic_write_json(run.file(DATASET), dataset)
    return run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return make_run(tmp_path)


# ----------------------------------------------------------------------------- awkward pictures


def awkward_pictures(folder: Path) -> tuple[list[tuple[str, object]], set[str]]:
    """(name, path or bytes) for good and bad pictures, and the names of the bad ones."""
    rgba = gradient().convert("RGBA")
    rgba.putalpha(128)
    frames = [gradient(), Image.new("RGB", (40, 30), (255, 0, 0))]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100)
    grey16 = Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 20).reshape(48, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    photo = encode(gradient(), "JPEG")
    files = {
        "photo.jpg": photo,
        "rgba.png": encode(rgba, "PNG"),
        "palette.gif": encode(gradient().convert("P"), "GIF"),
        "animated.gif": animated.getvalue(),
        "grey16.png": encode(grey16, "PNG"),
        "cmyk.jpg": encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"),
        "rotated.jpg": encode(gradient(), "JPEG", exif=exif.tobytes()),
        "picture.webp": encode(gradient(), "WEBP"),
        "picture.bmp": encode(gradient(), "BMP"),
        "dot.png": encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"),
        "big.jpg": encode(Image.new("RGB", (4000, 3000), (120, 60, 200)), "JPEG"),
        "truncated.jpg": photo[: len(photo) // 2],
        "notes.jpg": b"this is a text file, not a picture\n",
        "empty.jpg": b"",
        "bomb.png": png_declaring(30000, 30000),
    }
    bad = {"truncated.jpg", "notes.jpg", "empty.jpg", "bomb.png"}
    items: list[tuple[str, object]] = []
    for index, (name, data) in enumerate(files.items()):
        path = folder / name
        path.write_bytes(data)
        items.append((name, path if index % 2 else data))  # both paths and bytes
    return items, bad


def test_awkward_pictures_are_classified_and_bad_ones_explained(run: Run, tmp_path: Path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    items, bad = awkward_pictures(folder)
    results = predict_images(run, items, top=5)

    assert [r.image for r in results] == [name for name, _ in items]
    for result in results:
        if result.image in bad:
            assert result.error is not None
            assert "\n" not in result.error
            assert result.image in result.error
            assert result.top == ()
            assert result.to_dict() == {"image": result.image, "error": result.error}
            continue
        assert result.error is None, result.error
        assert result.pixels is not None
        assert result.pixels.shape == (8, 8, 3)
        assert result.pixels.dtype == np.uint8
        assert result.probabilities is not None
        assert result.probabilities.shape == (3,)
        assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert len(result.top) == 3  # top=5 clamped to the three classes
        assert {name for name, _ in result.top} == set(NAMES)
        probs = [p for _, p in result.top]
        assert probs == sorted(probs, reverse=True)
        assert result.to_dict()["top"][0] == {"class": result.top[0][0], "probability": probs[0]}
        json.dumps(result.to_dict(), allow_nan=False)


def test_bad_file_does_not_change_the_others(run: Run):
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    picture = encode(Image.fromarray(pixels), "PNG")
    alone = predict_images(run, [("a.png", picture)])[0]
    mixed = predict_images(run, [("junk.png", b"junk"), ("a.png", picture), ("b.png", picture)])
    assert mixed[0].error is not None
    assert np.array_equal(mixed[1].pixels, pixels)  # an 8x8 PNG reaches the model unchanged
    np.testing.assert_allclose(mixed[1].probabilities, alone.probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixed[2].probabilities, alone.probabilities, rtol=1e-5, atol=1e-6)


def test_probabilities_match_the_model_in_inference_mode(run: Run):
    pixels = np.random.default_rng(2).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    items = [(f"{i}.png", encode(Image.fromarray(p), "PNG")) for i, p in enumerate(pixels)]
    results = predict_images(run, items)
    expected = np.asarray(load_run_model(run)(pixels, training=False))
    np.testing.assert_allclose(np.stack([r.probabilities for r in results]), expected, atol=1e-6)
    assert results[0].top[0] == (NAMES[int(expected[0].argmax())], pytest.approx(expected[0].max()))


@pytest.mark.parametrize(("top", "expected"), [(1, 1), (2, 2), (0, 1), (-3, 1), (100, 3)])
def test_top_is_clamped_to_the_number_of_classes(run: Run, top: int, expected: int):
    picture = encode(gradient(), "PNG")
    assert len(predict_images(run, [("x.png", picture)], top=top)[0].top) == expected


def test_no_pictures_gives_no_predictions(run: Run):
    assert predict_images(run, []) == []


def test_only_bad_pictures_still_answers(run: Run):
    results = predict_images(run, [("a.jpg", b""), ("b.jpg", b"text")])
    assert all(r.error for r in results)


def test_prediction_to_dict_shapes():
    ok = Prediction(image="x.png", top=(("cat", 0.75), ("dog", 0.25)))
    assert ok.to_dict() == {
        "image": "x.png",
        "top": [{"class": "cat", "probability": 0.75}, {"class": "dog", "probability": 0.25}],
    }
    assert Prediction(image="y.png", error="bad").to_dict() == {"image": "y.png", "error": "bad"}


# ---------------------------------------------------------------------------------- class names


def test_class_names_come_from_dataset_json(run: Run):
    names = class_names(run)
    assert names == tuple(NAMES)
    assert not names.placeholder


def test_class_names_fall_back_to_numbered_placeholders(tmp_path: Path):
    run = make_run(tmp_path, names=None)
    names = class_names(run)
    assert names == ("class 0", "class 1", "class 2")
    assert names.placeholder
    top = predict_images(run, [("x.png", encode(gradient(), "PNG"))])[0].top
    assert {name for name, _ in top} == set(names)


def test_class_count_differing_from_the_model_is_refused(run: Run):
    atomic_write_json(run.file(DATASET), {"source": "x", "class_names": ["a", "b"]})
    with pytest.raises(UserError, match="2 classes but the model scores 3"):
        predict_images(run, [("x.png", encode(gradient(), "PNG"))])


# ---------------------------------------------------------------------------- loading the model


def test_missing_model_is_a_user_error_saying_what_to_do(tmp_path: Path):
    run = create_run(TINY, TrainConfig(), data_source="x", root=tmp_path / "runs")
    with pytest.raises(UserError, match=r"has no trained model yet \(state: queued\); train it"):
        predict_images(run, [("x.png", b"")])


def zip_holding(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not a zip",
        b"PK\x03\x04" + b"\x00" * 40,
        "truncated",
        zip_holding("notes.txt", b"hello"),
        zip_holding("config.json", b"{not json"),
        zip_holding("config.json", b'{"class_name": "Lambda", "config": {}}'),
    ],
)
def test_damaged_model_file_is_one_line_user_error(run: Run, damage: bytes | str):
    if damage == "truncated":
        damage = run.file(MODEL).read_bytes()[:5000]
    run.file(MODEL).write_bytes(damage)
    with pytest.raises(UserError) as caught:
        load_run_model(run)
    message = str(caught.value)
    assert "\n" not in message
    assert run.name in message
    assert "model.keras is damaged" in message or "model.keras cannot be loaded" in message
    assert "train the run again" in message


def test_only_runs_are_loaded_never_paths(run: Run):
    with pytest.raises(TypeError, match=r"runs\.Run"):
        load_run_model(run.file(MODEL))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_run_model(str(run.path))  # type: ignore[arg-type]


def test_a_model_linked_from_outside_the_run_is_refused(run: Run, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere.keras"
    run.file(MODEL).rename(elsewhere)
    run.file(MODEL).symlink_to(elsewhere)
    with pytest.raises(UserError, match="outside the run"):
        load_run_model(run)


def test_loaded_model_is_cached_until_the_file_changes(run: Run, tmp_path: Path):
    first = load_run_model(run)
    assert load_run_model(run) is first
    assert load_run_model(Run(run.path)) is first  # another handle on the same run

    picture = [("x.png", encode(gradient(), "PNG"))]
    before = predict_images(run, picture)[0].probabilities
    import keras

    keras.utils.set_random_seed(123)
    build_model(TINY).save(run.file(MODEL))  # a new model with other weights
    info = run.file(MODEL).stat()
    os.utime(run.file(MODEL), ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    second = load_run_model(run)
    assert second is not first
    assert not np.allclose(predict_images(run, picture)[0].probabilities, before)


def test_cache_is_bounded(tmp_path: Path):
    clear_model_cache()
    runs = [make_run(tmp_path / str(i)) for i in range(6)]
    models = [load_run_model(r) for r in runs]
    assert load_run_model(runs[-1]) is models[-1]
    assert load_run_model(runs[0]) is not models[0]  # evicted, loaded again


def test_importing_predict_and_evaluate_does_not_import_keras():
    frameworks = ("keras", "tensorflow", "jax", "torch")
    assert imported_frameworks("cnn_core.predict", "cnn_core.evaluate", frameworks=frameworks) == []
