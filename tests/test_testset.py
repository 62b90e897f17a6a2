"""Tests for `cnn_core.testset`: the Evaluate page shows the very test images the evaluation used,
including for a run trained with its own test split, and says when its predictions do not fit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from support import CLASSES, TINY, open_page

from cnn_core.config import TrainConfig
from cnn_core.evaluate import evaluate_run, matching_probabilities
from cnn_core.runs import DATASET, MODEL, Run, atomic_write_json, create_run
from cnn_core.settings import runs_root
from cnn_core.testset import choose_test_set, load_test_images


def class_folders(root: Path, per_class: int = 10) -> Path:
    """Class folders without a test/ folder: the test images are split off by test_split."""
    for n, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((8, 8, 3), 40 * n + i, np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def model_run(root: Path, data: Path, config: TrainConfig) -> Run:
    from cnn_core.builder import build_model

    run = create_run(TINY, config, data_source=str(data), root=root)
    build_model(TINY).save(run.file(MODEL))
    atomic_write_json(run.file(DATASET), {"source": str(data), "class_names": list(CLASSES)})
    return run


def test_the_test_images_are_the_runs_own_split_and_its_limit_only_for_its_own_source(
    tmp_path: Path,
):
    data = class_folders(tmp_path / "data")
    run = create_run(
        TINY, TrainConfig(test_split=0.5, limit=4), data_source=str(data), root=tmp_path
    )
    atomic_write_json(run.file(DATASET), {"source": str(data)})
    own = choose_test_set(run, str(data))
    assert (own.image_size, own.channels, own.test_split, own.limit) == ((8, 8), 3, 0.5, 4)
    assert choose_test_set(run, str(tmp_path / "other")).limit is None  # another source: all of it
    assert hash(own) == hash(choose_test_set(run, str(data)))  # a cache can key on it
    limited = load_test_images(own)
    assert limited.dtype == np.uint8 and limited.shape[1:] == (8, 8, 3)
    unlimited = load_test_images(replace(own, limit=None))
    assert len(limited) < len(unlimited)
    assert len(unlimited) == 15  # half of each class's 10, not the 20% split of the defaults


def test_the_evaluate_page_shows_the_images_of_a_run_with_its_own_test_split(tmp_path: Path):
    data = class_folders(tmp_path / "data")
    run = model_run(runs_root(), data, TrainConfig(epochs=1, test_split=0.5))
    report = evaluate_run(run)
    assert report.n == 15
    images = load_test_images(choose_test_set(run, str(data)))
    probabilities = matching_probabilities(run, images, count=report.n)
    assert probabilities is not None and probabilities.shape == (15, 3)
    assert probabilities.dtype == np.float32
    assert matching_probabilities(run, images[:-1], count=report.n) is None  # do not fit
    at = open_page("evaluate", run=run.name)
    assert not any("do not match" in w.value for w in at.warning)
    assert len(at.get("image")) > 0  # the cell's or the mistakes' images are drawn


def test_no_stored_predictions_means_nothing_to_show(tmp_path: Path):
    run = create_run(TINY, TrainConfig(), data_source="unused", root=tmp_path)
    assert matching_probabilities(run, np.zeros((3, 8, 8, 3), np.uint8), count=3) is None
