"""CIFAR-10: Keras' own downloader, and the official batches read with a restricted unpickler.

The official archive's batches are pickles; `unpickle_arrays` builds numpy arrays and nothing
else, so a hostile file can never run code. Keras is imported only to download.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnn_core.data.dataset import Dataset, first_line
from cnn_core.errors import DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
MAX_BATCH_BYTES = 100 * 2**20  # an official CIFAR-10 batch is 31 MB
BATCH_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCH = "test_batch"
META = "batches.meta"


def keras_cifar10_folder() -> Path:
    """Where Keras' CIFAR-10 loader keeps the extracted batches once downloaded."""
    from cnn_core.backends import keras_home

    return keras_home() / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"


# ---------------------------------------------------------------------------- CIFAR-10 via Keras


def load_keras_cifar10(display: str) -> Dataset:
    """CIFAR-10 through Keras' downloader, which checks the archive's hash and caches it."""
    try:
        from cnn_core._keras import keras  # lazily: importing this module must not start TF

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as exc:  # why: download failures surface as many types
        raise DataError(
            f"CIFAR-10 could not be downloaded ({first_line(exc)}); on a machine with a network, "
            f"get the official cifar-10-python.tar.gz from {CIFAR10_URL}, copy it to this one "
            "and give its path as the dataset source (an image-folder copy such as "
            "cifar10-jpeg.tar.gz works too)."
        ) from None
    return Dataset(
        x_train=_channels_last(np.asarray(x_train, dtype=np.uint8)),
        y_train=np.asarray(y_train).reshape(-1).astype(np.int64),
        x_test=_channels_last(np.asarray(x_test, dtype=np.uint8)),
        y_test=np.asarray(y_test).reshape(-1).astype(np.int64),
        class_names=CIFAR10_CLASSES,
        source=display,
    )


def _channels_last(x: np.ndarray) -> np.ndarray:
    """Keras returns (N, 3, 32, 32) when its image_data_format is channels_first."""
    if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


# ------------------------------------------------------------------- official CIFAR-10 batches


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as Python 3 pickles of bytes use it, limited to harmless latin-1."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError("only latin-1 encoding of text is allowed")
    return text.encode("latin1")


def _numpy_reconstruct() -> Callable[..., np.ndarray]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, bytes and numpy arrays; refuses every other global.

    Plain `pickle.load` runs whatever code a file names; a CIFAR-10 batch needs only these.
    """

    def find_class(self, module: str, name: str) -> object:
        reconstruct = _numpy_reconstruct()
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): _latin1_encode,
        }
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed") from None


def unpickle_arrays(data: bytes, *, label: str) -> object:
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # why: a hostile or damaged pickle can fail anywhere
        raise DataError(
            f"{label} is not a CIFAR-10 batch file ({first_line(exc)}); "
            f"use the official cifar-10-python.tar.gz from {CIFAR10_URL}."
        ) from None


def _field(batch: dict[object, object], key: str) -> object:
    return batch.get(key.encode(), batch.get(key))


def parse_batch(data: bytes, *, label: str) -> tuple[np.ndarray, np.ndarray]:
    """One data_batch_N or test_batch as (images (N, 32, 32, 3) view, labels (N,) int64)."""
    batch = unpickle_arrays(data, label=label)
    not_batch = DataError(
        f"{label} is not a CIFAR-10 batch file (no 'data' array of N x 3072 bytes with N "
        f"labels); use the official cifar-10-python.tar.gz from {CIFAR10_URL}."
    )
    if not isinstance(batch, dict):
        raise not_batch
    pixels, labels = _field(batch, "data"), _field(batch, "labels")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise not_batch
    if pixels.shape[1] != 3 * 32 * 32 or not isinstance(labels, list | np.ndarray):
        raise not_batch
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(pixels) or (len(y) and y.dtype.kind not in "iu"):
        raise not_batch
    # Rows hold three 32x32 planes, R then G then B; the model wants (32, 32, RGB).
    return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int64)


def parse_meta(data: bytes, *, label: str) -> tuple[str, ...]:
    meta = unpickle_arrays(data, label=label)
    names = _field(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise DataError(f"{label} has no label_names list; use the official batches.meta file.")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def from_batches(
    parsed: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: tuple[str, ...] | None,
    display: str,
    *,
    where: str,
) -> Dataset:
    """Assemble parsed batches (by file name) into a Dataset, checking that all six are there."""
    missing = [n for n in (*BATCH_NAMES, TEST_BATCH) if n not in parsed]
    if missing:
        raise DataError(
            f"{where} is missing the CIFAR-10 batch files {', '.join(missing)}; use the complete "
            f"official cifar-10-python.tar.gz from {CIFAR10_URL}."
        )
    names = class_names or CIFAR10_CLASSES
    x_train = np.concatenate([parsed[n][0] for n in BATCH_NAMES])  # one contiguous uint8 copy
    y_train = np.concatenate([parsed[n][1] for n in BATCH_NAMES])
    x_test = np.ascontiguousarray(parsed[TEST_BATCH][0])
    y_test = parsed[TEST_BATCH][1]
    for y in (y_train, y_test):
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(
                f"{where} has labels outside 0..{len(names) - 1}; use the official CIFAR-10 files."
            )
    return Dataset(x_train, y_train, x_test, y_test, names, display)
