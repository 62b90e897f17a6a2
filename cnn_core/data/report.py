"""The dataset health report: what a loaded dataset holds, and what to do about what is wrong.

Images per class and split, how unbalanced the classes are, the files that were found but not
used, the layout that was recognised, and advice in the user's words. It reads only the loaded
`Dataset` (plain data out, for the CLI's `data --json` and the Train page); it decodes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cnn_core.balance import IMBALANCE_HINT, class_counts, imbalance_ratio
from cnn_core.data.dataset import Dataset

FEW_IMAGES = 20  # fewer training images than this in a class: too few to learn it well


@dataclasses.dataclass(frozen=True)
class DatasetReport:
    """Facts about one dataset at one input size, and advice; JSON in and out as plain data."""

    source: str
    layout: str  # what was recognised, e.g. "train/ and test/ class folders"
    image_shape: tuple[int, int, int]  # the model's input: what every image was resized to
    class_names: tuple[str, ...]
    counts: dict[str, tuple[int, ...]]  # split ("train", "validation", "test") -> per class
    found: int  # files found; found = used + skipped
    used: int
    skipped: int  # files found but not used (not images, or unreadable)
    imbalance: float  # training images: the largest class over the smallest
    warnings: tuple[str, ...]  # what loading said, one line each (the skipped files by path)
    advice: tuple[str, ...]  # what to do, one sentence each

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["counts"] = {split: list(n) for split, n in self.counts.items()}
        return data


def dataset_report(data: Dataset) -> DatasetReport:
    """The report of a loaded dataset."""
    k = len(data.class_names)
    counts = {"train": tuple(int(n) for n in class_counts(data.y_train, k))}
    if data.y_val is not None:
        counts["validation"] = tuple(int(n) for n in class_counts(data.y_val, k))
    counts["test"] = tuple(int(n) for n in class_counts(data.y_test, k))
    used = sum(sum(n) for n in counts.values())
    ratio = imbalance_ratio(data.y_train, k)
    return DatasetReport(
        source=data.source,
        layout=data.layout,
        image_shape=tuple(int(d) for d in data.x_train.shape[1:]),  # type: ignore[arg-type]
        class_names=tuple(data.class_names),
        counts=counts,
        found=max(data.found, used + data.skipped),
        used=used,
        skipped=data.skipped,
        imbalance=round(ratio, 2),
        warnings=tuple(data.warnings),
        advice=tuple(_advice(data.class_names, counts, ratio, data.skipped)),
    )


def _advice(
    names: tuple[str, ...], counts: dict[str, tuple[int, ...]], ratio: float, skipped: int
) -> list[str]:
    advice = []
    if ratio > IMBALANCE_HINT:
        advice.append(
            f"The classes are unbalanced ({ratio:.1f}:1 between the largest and the smallest in "
            'training): turn on "Balance the classes" (class_weight "balanced"), or add images '
            "of the small classes."
        )
    few = [name for name, n in zip(names, counts["train"], strict=True) if 0 < n < FEW_IMAGES]
    if few:
        shown = ", ".join(few[:5]) + (", ..." if len(few) > 5 else "")
        advice.append(
            f"{len(few)} class(es) have fewer than {FEW_IMAGES} training images ({shown}): a "
            "network learns little from so few; add more, or expect those classes to be missed."
        )
    untested = [name for name, n in zip(names, counts["test"], strict=True) if n == 0]
    if untested and sum(counts["test"]):
        advice.append(
            f"No test images for {', '.join(untested[:5])}: the evaluation cannot say how well "
            "those classes are recognised; put some in their test folders."
        )
    if skipped:
        advice.append(
            f"{skipped} file(s) were found but not used (see the list): convert them to JPEG or "
            "PNG, or remove them, so that nothing you meant to train on is left out."
        )
    return advice


def sample_indices(labels: np.ndarray, num_classes: int, *, per_class: int = 4) -> list[int]:
    """The first `per_class` images of each class, class by class: a sample grid's order."""
    labels = np.asarray(labels)
    chosen: list[int] = []
    for c in range(num_classes):
        chosen += [int(i) for i in np.flatnonzero(labels == c)[:per_class]]
    return chosen


def check_dataset(
    source: str, *, image_size: tuple[int, int], channels: int = 3, per_class: int = 4
) -> tuple[DatasetReport, list[tuple[str, np.ndarray]]]:
    """Load a source (decoded once, then cached) and report on it, with a few training images
    of each class at the model's size: what the Train page shows before a run starts."""
    from cnn_core.data.sources import load_dataset

    data = load_dataset(source, image_size=image_size, channels=channels)
    k = len(data.class_names)
    samples = [
        (data.class_names[int(data.y_train[i])], np.array(data.x_train[i]))
        for i in sample_indices(data.y_train, k, per_class=per_class)
    ]
    return dataset_report(data), samples
