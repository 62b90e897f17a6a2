"""The test images a run's evaluation was computed on, loaded again to show them.

`choose_test_set` says which images those are, as a small frozen value a caller can cache on: the
data source, the model's input size, and the run's own `test_split` and `limit` (the split it
was trained with, so no image shown was seen in training; the limit only for the run's own
source), the same choice `evaluate.evaluate_run` makes. `load_test_images` loads them;
`load_test_set` the whole dataset that choice names (the evaluation itself uses it).

This module draws nothing and knows nothing of Streamlit; Keras is never imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_core.datasets import Dataset, load_dataset
from cnn_core.runs import Run


@dataclass(frozen=True)
class TestSet:
    """Which test images to load: hashable, so a dashboard can cache the loaded images on it."""

    __test__ = False  # why: pytest would collect a class named Test* imported into a test file

    source: str  # the data source the evaluation used
    image_size: tuple[int, int]  # (height, width): the model's input
    channels: int  # 1 or 3
    test_split: float  # the run's own: the split it was trained with
    limit: int | None  # the run's quick-try limit, for its own source only


def choose_test_set(run: Run, source: str) -> TestSet:
    """The test images of `source` that an evaluation of `run` on it used.

    Raises `RunError` (a `UserError`) when the run's spec.json or config.json cannot be read.
    """
    height, width, channels = run.spec().input_shape
    config = run.config()
    own = source == run.dataset().get("source")  # a run's limit picks its own test images only
    return TestSet(
        source=source,
        image_size=(int(height), int(width)),
        channels=int(channels),
        test_split=config.test_split,
        limit=config.limit if own else None,
    )


def load_test_images(test_set: TestSet) -> np.ndarray:
    """The test images as uint8 (N, H, W, C). Raises `DataError` when the source cannot be used."""
    return load_test_set(test_set).x_test


def load_test_set(test_set: TestSet) -> Dataset:
    """The dataset `test_set` names, split and limited as the run was. Raises `DataError`."""
    return load_dataset(
        test_set.source,
        image_size=test_set.image_size,
        channels=test_set.channels,
        test_split=test_set.test_split,
        limit=test_set.limit,
    )
