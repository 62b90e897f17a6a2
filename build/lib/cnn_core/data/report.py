"""The dataset health report: what a loaded dataset holds, and what to do about what is wrong.

Images per class and split, how unbalanced the classes are, the files that were found but not
used, the layout that was recognised, and advice in the user's words. It reads only the loaded
`Dataset` (plain data out, for the CLI's `data --json` and the Train page); it decodes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from cnn_core.balance import IMBALANCE_HINT, class_counts, imbalance_ratio
from cnn_core.data.dataset import Dataset
from cnn_core.data.decode import GREY_TOLERANCE

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
    native_size: tuple[int, int] | None = None  # the images' own median width and height
    smallest: tuple[int, int] | None = None  # the smallest image's own width and height
    aspect_ratio: float | None = None  # median width / height
    grey: int = 0  # images with no colour (all channels equal, near enough)
    duplicates: dict[str, int] = dataclasses.field(default_factory=dict)  # split -> extra copies
    leaked: tuple[str, ...] = ()  # test images identical to a training image (first few)
    leaks: int = 0  # how many test images are identical to a training image
    suggested_size: tuple[int, int] | None = None  # a larger model input, when photos are big

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["counts"] = {split: list(n) for split, n in self.counts.items()}
        for key in ("image_shape", "native_size", "smallest", "suggested_size", "leaked"):
            data[key] = list(data[key]) if data[key] is not None else None
        return data


def dataset_report(data: Dataset) -> DatasetReport:
    """The report of a loaded dataset. Exact duplicates are found by a digest of each file's
    bytes (of the pixels, for CIFAR-10's batches)."""
    k = len(data.class_names)
    counts = {"train": tuple(int(n) for n in class_counts(data.y_train, k))}
    if data.y_val is not None:
        counts["validation"] = tuple(int(n) for n in class_counts(data.y_val, k))
    counts["test"] = tuple(int(n) for n in class_counts(data.y_test, k))
    used = sum(sum(n) for n in counts.values())
    ratio = imbalance_ratio(data.y_train, k)
    looks = _looks(data)
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
        advice=tuple(_advice(data.class_names, counts, ratio, data.skipped) + looks["advice"]),
        **{key: value for key, value in looks.items() if key != "advice"},
    )


def _splits(data: Dataset) -> list[tuple[str, np.ndarray, tuple[str, ...]]]:
    """(split, pixels, file names) in the order of `data.facts`: train, validation, test."""
    parts = [("train", data.x_train, data.train_files)]
    if data.x_val is not None:
        parts.append(("validation", data.x_val, data.val_files or ()))
    parts.append(("test", data.x_test, data.test_files))
    return parts


def _looks(data: Dataset) -> dict[str, Any]:
    """Sizes, grey images, duplicates and train/test leaks, with the advice they call for."""
    parts = _splits(data)
    if data.facts is not None and len(data.facts) == sum(len(x) for _, x, _ in parts):
        facts = data.facts
        digests = [bytes(d) for d in facts["digest"]]
        grey = int(facts["grey"].sum())
    else:  # arrays without files (CIFAR-10's batches): what the model sees
        facts = None
        digests = [
            hashlib.blake2b(x[i].tobytes(), digest_size=8).digest()
            for _, x, _ in parts
            for i in range(len(x))
        ]
        grey = sum(int(_grey_rows(x).sum()) for _, x, _ in parts)
    found: dict[str, Any] = {"grey": grey, "advice": []}
    start, seen_in = 0, {}
    for split, x, files in parts:
        mine = digests[start : start + len(x)]
        named = [d for d in mine if d]
        found.setdefault("duplicates", {})[split] = len(named) - len(set(named))
        seen_in[split] = (mine, files)
        start += len(x)
    train_digests = {d for d in seen_in["train"][0] if d}
    test_digests, test_files = seen_in["test"]
    leaked = [i for i, d in enumerate(test_digests) if d and d in train_digests]
    found["leaks"] = len(leaked)
    found["leaked"] = tuple(test_files[i] if test_files else f"test image {i}" for i in leaked[:5])
    total = len(digests)
    h, w = data.x_train.shape[1:3]
    if facts is not None and total:
        widths, heights = facts["width"], facts["height"]
        native = (int(np.median(widths)), int(np.median(heights)))
        found["native_size"] = native
        found["smallest"] = (int(widths.min()), int(heights.min()))
        found["aspect_ratio"] = round(float(np.median(widths / np.maximum(heights, 1))), 3)
        side = min(native)
        if side >= 2 * max(h, w):
            suggested = int(min(side // 32 * 32, 224))
            if suggested > max(h, w):
                found["suggested_size"] = (suggested, suggested)
                found["advice"].append(
                    f"Your photos are about {native[0]}x{native[1]}; the model sees {w}x{h}: "
                    f"a larger input such as {suggested}x{suggested} keeps more of their detail "
                    "(slower to train)."
                )
    if 0 < grey < total and grey >= 0.05 * total:
        found["advice"].append(
            f"{grey:,} of the {total:,} images are grey and the others in colour: fine for a "
            "colour model, but check that colour does not tell the classes apart by accident."
        )
    copies = sum(found["duplicates"].values())
    if copies:
        where = ", ".join(f"{n} in {split}" for split, n in found["duplicates"].items() if n)
        found["advice"].append(
            f"{copies} image(s) are exact copies of another in the same split ({where}): they "
            "count twice; remove the copies."
        )
    if leaked:
        found["advice"].append(
            f"{len(leaked)} test image(s) are identical to training images (e.g. "
            f"{', '.join(found['leaked'][:3])}): the test accuracy will look better than it is; "
            "remove them from one side."
        )
    return found


def _grey_rows(x: np.ndarray) -> np.ndarray:
    """Which images of (N, H, W, C) uint8 have no colour (always, for one channel)."""
    if x.shape[-1] < 3 or len(x) == 0:
        return np.ones(len(x), dtype=bool)
    values = x.astype(np.int16)
    spread = values.max(axis=-1) - values.min(axis=-1)
    return spread.reshape(len(x), -1).max(axis=1) <= GREY_TOLERANCE


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
    source: str,
    *,
    image_size: tuple[int, int],
    channels: int = 3,
    per_class: int = 4,
    test_split: float = 0.2,
) -> tuple[DatasetReport, list[tuple[str, np.ndarray]]]:
    """Load a source (decoded once, then cached) and report on it, with a few training images
    of each class at the model's size: what the Train page shows before a run starts.
    `test_split`: as the run will split class folders that come without a test folder."""
    from cnn_core.data.sources import load_dataset

    data = load_dataset(source, image_size=image_size, channels=channels, test_split=test_split)
    k = len(data.class_names)
    samples = [
        (data.class_names[int(data.y_train[i])], np.array(data.x_train[i]))
        for i in sample_indices(data.y_train, k, per_class=per_class)
    ]
    return dataset_report(data), samples
