"""The dataset health report (`cnn-workbench data SOURCE`), on a tiny unbalanced image folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_core.data.report import dataset_report, sample_indices
from cnn_core.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def write_unbalanced(root: Path) -> Path:
    """cats 40 / dogs 5 for training, 4 / 2 for testing, and a note in the cats' folder."""
    for split, counts in (("train", {"cat": 40, "dog": 5}), ("test", {"cat": 4, "dog": 2})):
        for name, count in counts.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((8, 8, 3), 40 * (name == "dog") + i, np.uint8)).save(
                    folder / f"{i}.png"
                )
    (root / "train" / "cat" / "notes.txt").write_text("not a picture\n")
    return root


def test_the_report_counts_each_class_and_split_and_advises(tmp_path):
    data = load_dataset(write_unbalanced(tmp_path / "pets"), image_size=(8, 8))
    report = dataset_report(data)
    assert report.class_names == ("cat", "dog")
    assert report.counts["train"] == (40, 5) and report.counts["test"] == (4, 2)
    assert report.imbalance == 8.0 and report.used == 51
    assert report.found == report.used + report.skipped
    advice = " ".join(report.advice)
    assert "unbalanced (8.0:1" in advice and "Balance the classes" in advice
    assert "fewer than 20 training images (dog)" in advice
    assert json.loads(json.dumps(report.to_dict()))["counts"]["train"] == [40, 5]
    assert sample_indices(data.y_train, 2, per_class=2) == [0, 1, 40, 41]


def test_the_cli_prints_the_report_and_gives_it_as_json(tmp_path):
    source = write_unbalanced(tmp_path / "pets")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cnn_core", "data", str(source), "--size", "8", "8"]
    text = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    assert "cat" in text and "40" in text and "advice: The classes are unbalanced" in text
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env)
    report = json.loads(done.stdout.splitlines()[-1])["report"]
    assert report["counts"] == {"train": [40, 5], "test": [4, 2]}
    assert report["imbalance"] == 8.0


def test_sizes_grey_images_copies_and_train_test_leaks_are_found(tmp_path):
    """Photos of 96x64 for an 8x8 model; two grey ones; a file copied within train; a test
    image that is a training image's copy."""
    rng = np.random.default_rng(4)
    root = tmp_path / "photos"
    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
                if name == "dog" and i < 2 and split == "train":
                    pixels[:] = pixels[..., :1]  # grey
                Image.fromarray(pixels).save(folder / f"{i}.png")
    copy = (root / "train" / "cat" / "0.png").read_bytes()
    (root / "train" / "cat" / "copy-of-0.png").write_bytes(copy)
    (root / "test" / "cat" / "1.png").write_bytes((root / "train" / "cat" / "3.png").read_bytes())
    report = dataset_report(load_dataset(root, image_size=(8, 8)))
    assert report.native_size == (96, 64) and report.smallest == (96, 64)
    assert report.aspect_ratio == 1.5 and report.suggested_size == (64, 64)
    assert report.grey == 2
    assert report.duplicates == {"train": 1, "test": 0}
    assert report.leaks == 1 and report.leaked == ("test/cat/1.png",)
    advice = " ".join(report.advice)
    assert "about 96x64; the model sees 8x8" in advice and "64x64" in advice
    assert "exact copies" in advice
    assert "identical to training images (e.g. test/cat/1.png)" in advice
    again = dataset_report(load_dataset(root, image_size=(8, 8)))  # from the cache: the same
    assert again == report


def test_cifar_like_arrays_without_files_are_checked_by_their_pixels(tmp_path):
    from cnn_core.data.dataset import Dataset

    x = np.zeros((4, 8, 8, 3), np.uint8)
    x[1] = 200  # two distinct images, each twice: 0 == 2 == 3 (zeros), 1
    data = Dataset(x, np.array([0, 1, 0, 1]), x[:1].copy(), np.array([0]), ("a", "b"), "arrays")
    report = dataset_report(data)
    assert report.duplicates == {"train": 2, "test": 0} and report.leaks == 1
    assert report.native_size is None and report.grey == 5
