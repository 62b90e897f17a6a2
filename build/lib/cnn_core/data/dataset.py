"""What every dataset source becomes: uint8 arrays at the model's input size, and the words
shared by the modules that make one. Nothing here reads a file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cnn_core.errors import DataError

MAX_LISTED_WARNINGS = 20  # per-file warnings kept; the rest are summarised in one line
EXPECTED = (
    "'cifar10', a folder with one folder of images per class (optionally inside train/ and test/ "
    "folders), a .tar.gz or .zip archive of one, or the official cifar-10-python.tar.gz"
)

WINDOWS_LITTER = ("thumbs.db", "desktop.ini")  # hidden files Explorer leaves in photo folders

Progress = Callable[[int, int], None]


@dataclasses.dataclass(
    frozen=True, eq=False
)  # eq=False: comparing arrays field by field is ambiguous
class Dataset:
    """Images and labels ready for training, all uint8 images at one size."""

    x_train: np.ndarray  # uint8 (N, H, W, C)
    y_train: np.ndarray  # int64 (N,), indexes class_names
    x_test: np.ndarray  # uint8 (M, H, W, C)
    y_test: np.ndarray  # int64 (M,)
    class_names: tuple[str, ...]
    source: str  # the source as given, for display
    skipped: int = 0  # files in the class folders not used: not images, or unreadable
    warnings: tuple[str, ...] = ()  # one line each, for the user
    found: int = 0  # files found in the class folders (or images in the batches): used + skipped
    layout: str = ""  # what was found, one line: "train/ and test/ class folders"
    train_files: tuple[str, ...] = ()  # relative paths, in the order of x_train (none for CIFAR)
    test_files: tuple[str, ...] = ()  # relative paths, in the order of x_test
    x_val: np.ndarray | None = None  # uint8 (V, H, W, C) from a validation folder; None: none
    y_val: np.ndarray | None = None  # int64 (V,)
    val_files: tuple[str, ...] | None = None  # relative paths, in the order of x_val
    facts: np.ndarray | None = None  # decode.FACTS of every image: train, then val, then test


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How a tree of images becomes a `Dataset`: the one bundle the loaders pass down."""

    size: tuple[int, int]  # (height, width) every image is resized to
    channels: int  # 1 (greyscale) or 3 (RGB)
    progress: Progress | None = None  # called (done, total) as images are decoded
    test_split: float = 0.2  # share of each class held out when there is no test folder
    limit: int | None = None  # a quick try: this many training images, chosen per class
    cache: Path | None = None  # where the decoded pixels go (.npy beside it); None: in RAM


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_size(image_size: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be (height, width), not {image_size!r}.") from None
    if height < 1 or width < 1:
        raise DataError(f"image_size must be positive, not {image_size!r}.")
    return height, width


def ignored(name: str) -> bool:
    """Hidden entries (.DS_Store, ._x.jpg, .git), macOS archive litter and Windows' hidden
    thumbnail caches."""
    return name.startswith(".") or name == "__MACOSX" or name.lower() in WINDOWS_LITTER
