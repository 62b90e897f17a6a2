"""Tests for `cnn_core.evaluate`: the stored figures equal an independent computation, the result
is computed once per model file, and the stored predictions pick out mistakes and matrix cells.

The model is set by hand to classify a picture by its strongest colour channel, so which test
images it gets wrong, and how confidently, is known before it runs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import tiny_net

import cnn_core.evaluate as evaluate
from cnn_core.builder import build_model
from cnn_core.config import TrainConfig
from cnn_core.errors import UserError
from cnn_core.evaluate import (
    cell_examples,
    confident_mistakes,
    evaluate_run,
    largest_confusion,
    metrics,
    read_predictions,
)
from cnn_core.runs import DATASET, MODEL, PREDICTIONS, Run, atomic_write_json, create_run

CLASSES = ["blue", "green", "red"]  # folder order, sorted: the model's output order
CHANNEL_CLASS = {0: 2, 1: 1, 2: 0}  # R -> red, G -> green, B -> blue
TINY = tiny_net(name="Colour net")
# (true class folder, colour) of each test image, in the loader's order (class, then file name)
TEST_IMAGES = [
    ("blue", (0, 0, 250)),
    ("blue", (10, 20, 120)),
    ("blue", (200, 0, 60)),  # looks red: a confident mistake
    ("green", (0, 240, 0)),
    ("green", (30, 90, 60)),
    ("green", (40, 60, 50)),  # looks green, barely
    ("red", (250, 0, 0)),
    ("red", (120, 110, 0)),  # nearly a tie with green, still red
    ("red", (0, 230, 10)),  # looks green: the most confident mistake
    ("red", (60, 0, 90)),  # looks blue: a weak mistake
]


def colour_model():
    """A model whose scores are 8 x the mean of each colour channel (in 0..1)."""
    model = build_model(TINY)
    conv = model.get_layer("conv2d_1")
    kernel = np.zeros((3, 3, 3, 4), dtype=np.float32)
    for channel in range(3):
        kernel[1, 1, channel, channel] = 1.0  # the centre tap copies each channel
    conv.set_weights([kernel, np.zeros(4, dtype=np.float32)])
    head = np.zeros((4, 3), dtype=np.float32)
    for channel, cls in CHANNEL_CLASS.items():
        head[channel, cls] = 8.0
    model.get_layer("classifier").set_weights([head, np.zeros(3, dtype=np.float32)])
    return model


def write_png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path, "PNG")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "colours"
    for index, cls in enumerate(CLASSES):
        write_png(folder / "train" / cls / "a.png", (255 * (index == 2), 0, 255 * (index == 0)))
    for index, (cls, colour) in enumerate(TEST_IMAGES):
        write_png(folder / "test" / cls / f"{index:02d}.png", colour)
    return folder


@pytest.fixture
def run(tmp_path: Path, data: Path) -> Run:
    run = create_run(TINY, TrainConfig(), data_source=str(data), root=tmp_path / "runs")
    colour_model().save(run.file(MODEL))
    atomic_write_json(run.file(DATASET), {"source": str(data), "class_names": CLASSES})
    return run


def expected_labels() -> tuple[np.ndarray, np.ndarray]:
    y_true = np.array([CLASSES.index(cls) for cls, _ in TEST_IMAGES])
    y_pred = np.array([CHANNEL_CLASS[int(np.argmax(colour))] for _, colour in TEST_IMAGES])
    return y_true, y_pred


# ------------------------------------------------------------------------------------ figures


def test_figures_equal_an_independent_computation(run: Run, data: Path):
    report = evaluate_run(run).to_dict()  # as evaluation.json holds it
    y_true, y_pred = expected_labels()
    n = len(TEST_IMAGES)

    assert report["n"] == n
    assert report["class_names"] == CLASSES
    assert report["data_source"] == str(data)
    assert report["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["top5_accuracy"] is None  # three classes: top-5 means nothing

    matrix = np.zeros((3, 3), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[t, p] += 1
    assert report["confusion_matrix"] == matrix.tolist()
    assert sum(map(sum, report["confusion_matrix"])) == n
    for c, row in enumerate(report["per_class"]):
        tp = matrix[c, c]
        precision = tp / matrix[:, c].sum() if matrix[:, c].sum() else 0.0
        recall = tp / matrix[c].sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert row == pytest.approx(
            {
                "class": CLASSES[c],
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(matrix[c].sum()),
            }
        )

    stored = read_predictions(run)
    assert stored is not None
    assert stored["y_true"].tolist() == y_true.tolist()
    assert stored["y_pred"].tolist() == y_pred.tolist()
    probs = stored["probabilities"].astype(np.float64)
    loss = np.mean(-np.log(np.clip(probs[np.arange(n), y_true], 1e-7, 1)))
    assert report["loss"] == pytest.approx(loss, rel=2e-3)  # stored probabilities are float16

    means = np.array([colour for _, colour in TEST_IMAGES], dtype=np.float64) / 255
    scores = 8 * means[:, [2, 1, 0]]  # blue, green, red
    softmax = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, softmax, atol=2e-3)
    assert report["loss"] == pytest.approx(np.mean(-np.log(softmax[np.arange(n), y_true])))


def test_metrics_handle_zero_division_and_top5():
    names = [f"c{i}" for i in range(7)]
    y_true = np.array([0, 0, 1, 2, 6])
    probs = np.full((5, 7), 0.01)
    probs[[0, 1, 2, 3, 4], [0, 1, 1, 3, 5]] = 0.9  # c6 is never predicted right; c3 never true
    probs[3, 2] = 0.5  # the true class is second: within the top 5
    probs[4, 6] = 0.0  # the true class has probability 0: below the top 5, loss clipped
    report = metrics(y_true, probs, names)
    assert report["accuracy"] == pytest.approx(2 / 5)
    assert report["top5_accuracy"] == pytest.approx(4 / 5)
    by_class = {row["class"]: row for row in report["per_class"]}
    assert by_class["c3"] == {
        "class": "c3",
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }
    assert by_class["c1"]["precision"] == pytest.approx(0.5)
    assert by_class["c1"]["recall"] == pytest.approx(1.0)
    assert by_class["c1"]["f1"] == pytest.approx(2 / 3)
    assert by_class["c0"]["recall"] == pytest.approx(0.5)
    assert np.isfinite(report["loss"])
    assert report["loss"] > -np.log(1e-7) / 5  # the clipped zero dominates


def test_files_are_written_and_match_what_is_returned(run: Run):
    import json

    from cnn_core.runs import EVALUATION

    report = evaluate_run(run).to_dict()
    assert run.evaluation().to_dict() == report == json.loads(run.file(EVALUATION).read_text())
    assert report["model_mtime"] == run.file(MODEL).stat().st_mtime_ns
    assert report["seconds"] >= 0
    assert report["evaluated_at"]
    assert not list(run.path.glob(".*.tmp"))


# ----------------------------------------------------------------------------- computed once


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return original_run_model(*args, **kwargs)


original_run_model = evaluate.run_model


def test_second_call_returns_the_stored_result(run: Run, monkeypatch: pytest.MonkeyPatch):
    first = evaluate_run(run)

    def refuse(*args, **kwargs):
        raise AssertionError("the model should not be loaded again")

    monkeypatch.setattr(evaluate, "load_run_model", refuse)
    monkeypatch.setattr(evaluate, "load_test_set", refuse)
    assert evaluate_run(run) == first


def test_force_and_a_changed_model_recompute(run: Run, monkeypatch: pytest.MonkeyPatch):
    counter = Counter()
    monkeypatch.setattr(evaluate, "run_model", counter)
    first = evaluate_run(run)
    evaluate_run(run)
    assert counter.calls == 1
    evaluate_run(run, force=True)
    assert counter.calls == 2

    info = run.file(MODEL).stat()
    os.utime(run.file(MODEL), ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    again = evaluate_run(run)
    assert counter.calls == 3
    assert again.model_mtime != first.model_mtime
    assert again.accuracy == first.accuracy

    run.file(PREDICTIONS).unlink()  # predictions gone: the dashboard needs them back
    evaluate_run(run)
    assert counter.calls == 4


def test_another_data_source_is_evaluated_not_served_from_store(
    run: Run, data: Path, tmp_path: Path
):
    evaluate_run(run)
    other = tmp_path / "other"
    for cls in CLASSES:
        write_png(other / "train" / cls / "a.png", (9, 9, 9))
        write_png(other / "test" / cls / "a.png", (0, 0, 255))  # all look blue
    report = evaluate_run(run, data_source=str(other)).to_dict()
    assert report["data_source"] == str(other)
    assert report["n"] == 3
    assert report["accuracy"] == pytest.approx(1 / 3)


def test_class_names_of_the_data_must_be_the_runs(run: Run, data: Path):
    atomic_write_json(run.file(DATASET), {"source": str(data), "class_names": ["a", "b", "c"]})
    with pytest.raises(UserError) as caught:
        evaluate_run(run)
    message = str(caught.value)
    assert "blue, green, red" in message
    assert "a, b, c" in message
    assert not run.file(PREDICTIONS).exists()


def test_missing_model_is_a_user_error(tmp_path: Path, data: Path):
    run = create_run(TINY, TrainConfig(), data_source=str(data), root=tmp_path / "runs")
    with pytest.raises(UserError, match="no trained model yet"):
        evaluate_run(run)


# ------------------------------------------------------------------------- stored predictions


def test_predictions_round_trip(run: Run):
    evaluate_run(run)
    stored = read_predictions(run)
    assert stored is not None
    assert set(stored) == {"y_true", "y_pred", "probabilities"}
    assert stored["y_true"].dtype == np.int16
    assert stored["y_pred"].dtype == np.int16
    assert stored["probabilities"].dtype == np.float16
    assert stored["probabilities"].shape == (len(TEST_IMAGES), 3)
    np.testing.assert_allclose(stored["probabilities"].sum(axis=1), 1.0, atol=3e-3)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"PK\x03\x04garbage", "npy", "missing_key", "bad_label"],
)
def test_damaged_predictions_read_as_none(run: Run, content: bytes | str):
    if content == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(3))
        content = buffer.getvalue()
    elif content in ("missing_key", "bad_label"):
        buffer = io.BytesIO()
        labels = np.array([0, 7 if content == "bad_label" else 1], dtype=np.int16)
        arrays = {"y_true": labels, "y_pred": labels, "probabilities": np.ones((2, 3))}
        if content == "missing_key":
            del arrays["y_pred"]
        np.savez(buffer, **arrays)
        content = buffer.getvalue()
    run.file(PREDICTIONS).write_bytes(content)
    assert read_predictions(run) is None
    assert confident_mistakes(run) == []
    assert cell_examples(run, 0, 0) == []


def test_not_evaluated_yet_gives_nothing(run: Run):
    assert read_predictions(run) is None
    assert confident_mistakes(run) == []
    assert cell_examples(run, 0, 1) == []


def test_confident_mistakes_come_most_confident_first(run: Run):
    evaluate_run(run)
    mistakes = confident_mistakes(run)
    y_true, y_pred = expected_labels()
    assert sorted(m["index"] for m in mistakes) == np.flatnonzero(y_true != y_pred).tolist()
    assert [m["index"] for m in mistakes] == [8, 2, 9]  # (0,230,10) > (200,0,60) > (60,0,90)
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert mistakes[0] | {"confidence": 0} == {
        "index": 8,
        "true": 2,
        "predicted": 1,
        "true_class": "red",
        "predicted_class": "green",
        "confidence": 0,
    }
    assert [m["index"] for m in confident_mistakes(run, limit=1)] == [8]
    assert confident_mistakes(run, limit=0) == []


def test_cell_examples_list_one_cell_most_confident_first(run: Run):
    evaluate_run(run)
    assert cell_examples(run, 0, 0) == [0, 1]  # (0,0,250) is surer than (10,20,120)
    assert cell_examples(run, 1, 1) == [3, 4, 5]
    assert cell_examples(run, 2, 2) == [6, 7]
    assert cell_examples(run, 2, 1) == [8]
    assert cell_examples(run, 1, 0) == []
    assert cell_examples(run, 1, 1, limit=2) == [3, 4]
    assert cell_examples(run, 0, 9) == []  # no such class


@pytest.mark.parametrize(
    ("matrix", "cell"),
    [
        ([[5, 1, 4], [0, 7, 3], [2, 6, 2]], (2, 1)),  # the most common mistake, not the diagonal
        ([[9, 0, 0], [3, 1, 0], [0, 3, 8]], (1, 0)),  # a tie goes to the first cell, row by row
        ([[0, 0], [0, 0]], (0, 0)),  # nothing at all: the first cell
        ([[4, 0], [0, 6]], (1, 1)),  # no mistakes: the largest diagonal cell
        ([[3]], (0, 0)),
    ],
)
def test_largest_confusion_is_the_most_common_mistake(matrix: list, cell: tuple[int, int]):
    assert largest_confusion(matrix) == cell
    assert largest_confusion(np.array(matrix)) == cell


def test_largest_confusion_of_the_stored_matrix(run: Run):
    report = evaluate_run(run)
    assert largest_confusion(report.confusion_matrix) == (0, 2)  # a tie: blue->red comes first


@pytest.mark.parametrize("matrix", [[1, 2, 3], [[1, 2], [3, 4], [5, 6]], []])
def test_largest_confusion_wants_a_square_matrix(matrix: list):
    with pytest.raises(ValueError, match="square"):
        largest_confusion(matrix)


def test_test_time_flip_averages_each_image_with_its_mirror():
    import keras

    from cnn_core.predict import run_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    images = np.random.default_rng(0).integers(0, 256, (10, 4, 6, 3), dtype=np.uint8)
    plain = run_model(model, images, batch_size=4)
    mirrored = run_model(model, images[:, :, ::-1].copy(), batch_size=4)
    both = run_model(model, images, batch_size=4, flip=True)
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-6)
    assert not np.allclose(both, plain)  # the mirror does change what a dense layer sees


def test_test_time_shift_averages_over_copies_shifted_with_mirrored_borders():
    import keras

    from cnn_core.predict import run_model, views

    image = np.arange(5 * 6, dtype=np.uint8).reshape(1, 5, 6, 1)
    plain, down_right, up_left = views(image, shift=1)
    assert plain is image
    # moved down-right by one: row 0 and column 0 are the reflection of row 1 and column 1
    np.testing.assert_array_equal(down_right[0, 1:, 1:, 0], image[0, :-1, :-1, 0])
    np.testing.assert_array_equal(down_right[0, 0, 1:, 0], image[0, 1, :-1, 0])
    np.testing.assert_array_equal(up_left[0, :-1, :-1, 0], image[0, 1:, 1:, 0])
    np.testing.assert_array_equal(up_left[0, -1, :-1, 0], image[0, -2, 1:, 0])
    six = views(image, flip=True, shift=2)
    assert len(six) == 6 and all(v.shape == image.shape and v.flags.c_contiguous for v in six)
    np.testing.assert_array_equal(six[1], image[:, :, ::-1])
    assert len(views(image, shift=9)) == 3  # more than the image allows: its largest, 4 rows

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6, 3), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    images = np.random.default_rng(0).integers(0, 256, (10, 4, 6, 3), dtype=np.uint8)
    expected = np.mean(
        [run_model(model, v, batch_size=4) for v in views(images, flip=True, shift=1)], axis=0
    )
    both = run_model(model, images, batch_size=4, flip=True, shift=1)
    np.testing.assert_allclose(both, expected, rtol=1e-5)
    assert not np.allclose(both, run_model(model, images, batch_size=4, flip=True))


def test_a_run_with_test_time_flip_is_evaluated_and_predicts_with_it(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
):
    import cnn_core.predict as predict

    flipped = create_run(
        TINY,
        TrainConfig(test_time_flip=True, test_time_shift=2),
        data_source=str(data),
        root=tmp_path / "r",
    )
    colour_model().save(flipped.file(MODEL))
    atomic_write_json(flipped.file(DATASET), {"source": str(data), "class_names": CLASSES})
    seen: list[tuple] = []
    real = predict.run_model

    def recording(*args, **kwargs):
        seen.append((kwargs.get("flip", False), kwargs.get("shift", 0)))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "run_model", recording)
    monkeypatch.setattr(predict, "run_model", recording)
    report = evaluate_run(flipped)
    assert seen == [(True, 2)] and report.accuracy == evaluate_run(flipped, force=True).accuracy
    photo = next((data / "test").rglob("*.png")).read_bytes()
    predict.predict_images(flipped, [("red.png", photo)])
    assert seen[-1] == (True, 2)
