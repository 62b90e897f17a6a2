"""Predictions on pictures: a finished run's model applied to images a user uploads or points at.

`load_run_model` loads `<run>/model.keras` (only from a run directory, never an arbitrary path) and
keeps the last few models in memory, keyed by the file's identity, so a dashboard that predicts on
every upload does not reload the model each time. `predict_images` decodes each picture safely
(`images.open_image`), resizes it to the model's input and classifies all good pictures in one
call; a picture that cannot be read gets its own one-line error and does not stop the others.

This is not the test-set evaluation (`cnn_core.evaluate`) and knows nothing about training.
Keras is imported when a model is loaded, not when this module is imported.
"""

from __future__ import annotations

import os
import stat
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_core.data.pixels import RowReader
from cnn_core.errors import ImageError, UserError
from cnn_core.images import DEFAULT_MAX_BYTES, open_image, to_array
from cnn_core.layers import format_shape
from cnn_core.runs import Run, RunError

if TYPE_CHECKING:
    import keras
    from PIL import Image

CACHE_SIZE = 4  # models kept in memory; the tutorial model is about 1.3 MB, a ResNet tens of MB
CHUNK = 64  # pictures per model call: bounds memory for big inputs, costs nothing for small ones
MAX_CONFIG_BYTES = 32 * 2**20  # config.json or metadata.json unpacked; a ResNet-50's is ~0.2 MB
MAX_MEMBERS = 10_000  # files in a .keras archive; Keras writes three, plus a few assets
# Keras stores members uncompressed, so a real model unpacks to about its own size; a member
# that claims to be far larger than what it is stored in is a bomb (2.7 MB unpacked to 3.6 GB).
MAX_UNPACKED_RATIO = 4

_cache: OrderedDict[tuple[str, int, int], keras.Model] = OrderedDict()
_cache_lock = threading.Lock()  # Streamlit runs each session's script in its own thread


# ------------------------------------------------------------------------------------- the model


def load_run_model(run: Run) -> keras.Model:
    """The run's trained model, loaded once per version of `model.keras` and then reused.

    Raises `RunError` (a `UserError`) when the run has no model yet or its file cannot be loaded.
    """
    if not isinstance(run, Run):  # why: never load a model file from a path the user typed
        raise TypeError(f"load_run_model takes a runs.Run, not {type(run).__name__}")
    path = run.model_path
    if path.exists() and not path.is_file():  # a FIFO would hang the loader (links: below)
        raise RunError(
            f"run {run.name}: model.keras is not a regular file (a FIFO or a device); "
            "delete it and train the run again."
        )
    key = _model_key(run)
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model

    if not zipfile.is_zipfile(path):  # why: Keras reports a damaged zip as "File not found"
        raise RunError(
            f"run {run.name}: model.keras is damaged (not a complete .keras archive, "
            f"{key[2]:,} bytes); train the run again."
        )
    check_model_archive(run, size=key[2])

    from cnn_core._keras import keras

    try:
        from cnn_core import (
            fast_augment,  # noqa: F401 - registers our layers for loading
            pretrained,  # noqa: F401
        )

        model = keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)
    except Exception as exc:  # why: a damaged zip or foreign file can fail in any layer's code
        raise RunError(
            f"run {run.name}: model.keras cannot be loaded ({_first_line(exc)}); the file is "
            "damaged or incomplete: train the run again."
        ) from None
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise RunError(
            f"run {run.name}: model.keras is not an image classifier with one input and one "
            "output of class probabilities; train the run again."
        )
    with _cache_lock:
        if _model_key(run, missing_ok=True) == key:  # why: the file may be replaced mid-load
            model = _cache.setdefault(key, model)
            _cache.move_to_end(key)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return model


def check_model_archive(run: Run, *, size: int) -> None:
    """Refuse a model.keras whose members would unpack to more than the limits, before Keras
    reads any of it: Keras reads config.json whole into memory and parses it.

    Declared sizes are enough: Python's zipfile never returns more bytes than a member declares.
    """
    try:
        with zipfile.ZipFile(run.model_path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RunError(
            f"run {run.name}: model.keras is damaged ({_first_line(exc)}); train the run again."
        ) from None
    if len(members) > MAX_MEMBERS:
        raise RunError(
            f"run {run.name}: model.keras holds {len(members):,} files, over the limit of "
            f"{MAX_MEMBERS:,} for a model; train the run again."
        )
    for member in members:
        if member.filename in ("config.json", "metadata.json") and (
            member.file_size > MAX_CONFIG_BYTES
        ):
            raise RunError(
                f"run {run.name}: model.keras's {member.filename} unpacks to "
                f"{member.file_size:,} bytes, over the limit of {MAX_CONFIG_BYTES:,}; the file "
                "is not a model this program saved: train the run again."
            )
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNPACKED_RATIO * size + MAX_CONFIG_BYTES:
        raise RunError(
            f"run {run.name}: model.keras unpacks to {unpacked:,} bytes, over the limit of "
            f"{MAX_UNPACKED_RATIO} times its {size:,} bytes on disk; the file is not a model this "
            "program saved: train the run again."
        )


def clear_model_cache() -> None:
    """Forget every loaded model (tests, or to free memory)."""
    with _cache_lock:
        _cache.clear()


def _model_key(run: Run, *, missing_ok: bool = False) -> tuple[str, int, int]:
    """(resolved path, mtime_ns, size) of the run's model file: a new file gets a new key."""
    path = run.model_path
    try:
        info = path.stat()
        resolved = str(path.resolve())
    except FileNotFoundError:
        if missing_ok:
            return ("", 0, 0)
        raise RunError(
            f"run {run.name} has no trained model yet (state: {run.status().state}); train it "
            "or wait for it to finish."
        ) from None
    except OSError as exc:
        raise RunError(f"run {run.name}: model.keras cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise RunError(f"run {run.name}: model.keras is not a regular file; train the run again.")
    if Path(resolved).parent != run.path.resolve():  # a link out of the run: not the run's model
        raise RunError(
            f"run {run.name}: model.keras links to a file outside the run; train the run again."
        )
    return (resolved, info.st_mtime_ns, info.st_size)


def output_size(model: keras.Model) -> int:
    """How many classes the model scores."""
    return int(model.outputs[0].shape[-1])


def test_time_views(run: Run) -> dict[str, Any]:
    """How the run predicts, as `run_model`'s keywords: `flip` (each image and its mirror, the
    `test_time_flip` setting) and `shift` (copies shifted that many pixels, `test_time_shift`);
    neither for a run whose configuration cannot be read (its model still predicts)."""
    try:
        config = run.config()
    except UserError:
        return {"flip": False, "shift": 0}
    return {"flip": config.test_time_flip, "shift": config.test_time_shift}


def views(chunk: np.ndarray, *, flip: bool = False, shift: int = 0) -> list[np.ndarray]:
    """The copies of uint8 images `chunk` (N, H, W, C) a model predicts on with test-time
    augmentation: the images, their mirrors with `flip`, and with `shift` each of those moved
    `shift` pixels down-right and up-left, the uncovered border filled by reflection (as the
    training augmentation's shifts are). Contiguous arrays: Keras wants them."""
    out = [chunk]
    if flip:
        out.append(np.ascontiguousarray(chunk[:, :, ::-1]))
    height, width = chunk.shape[1:3]
    shift = min(int(shift), height - 1, width - 1)  # reflection needs a border inside the image
    if shift > 0:
        pad = ((0, 0), (shift, shift), (shift, shift), (0, 0))
        for image in list(out):
            padded = np.pad(image, pad, mode="reflect")
            out.append(np.ascontiguousarray(padded[:, :height, :width]))  # moved down-right
            out.append(np.ascontiguousarray(padded[:, 2 * shift :, 2 * shift :]))  # up-left
    return out


def run_model(
    model: keras.Model,
    x: np.ndarray,
    *,
    batch_size: int = CHUNK,
    flip: bool = False,
    shift: int = 0,
) -> np.ndarray:
    """Class probabilities (N, classes) as float32 for uint8 images `x`, in inference mode;
    with `flip` or `shift` (the run's `test_time_views`), the mean over each image's `views`.

    `predict_on_batch` runs Keras' compiled predict step (always in inference mode) without the
    per-call set-up of `model.predict`, which costs tens of milliseconds, and without the eager
    dispatch of calling the model; `bench.inference` times what users see (BENCHMARKS.md: one
    32x32 photo 1.42 ms with decoding, the 10,000 test images 0.98 s).
    """
    if len(x) == 0:
        return np.zeros((0, output_size(model)), dtype=np.float32)
    read = RowReader(x)  # a cached (memory-mapped) test set is read a batch at a time
    out = np.empty((len(x), output_size(model)), dtype=np.float32)
    try:
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            copies = views(read.span(start, stop), flip=flip, shift=shift)
            total = np.asarray(model.predict_on_batch(copies[0]), dtype=np.float32)
            for copy in copies[1:]:
                total = total + np.asarray(model.predict_on_batch(copy))
            out[start:stop] = total / len(copies)
    finally:
        read.close()
    return out


# ------------------------------------------------------------------------------- class names


class ClassNames(tuple[str, ...]):
    """The run's class names; `placeholder` is True when they are "class 0".. stand-ins."""

    placeholder: bool = False

    def __new__(cls, names: Sequence[str], *, placeholder: bool = False) -> ClassNames:
        made = super().__new__(cls, names)
        made.placeholder = placeholder
        return made


def class_names(run: Run) -> ClassNames:
    """The class names recorded in the run's dataset.json, in the model's output order.

    Where dataset.json has none (the trainer records them once it has loaded the data), the
    names are "class 0".."class N-1" for the model's N outputs and `.placeholder` is True, so a
    caller can say that the real names are unknown.
    """
    names = run.dataset().get("class_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return ClassNames(names)
    count = output_size(load_run_model(run))
    return ClassNames([f"class {i}" for i in range(count)], placeholder=True)


# ---------------------------------------------------------------------------------- prediction


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field is ambiguous
class Prediction:
    """What the model says about one picture, or why the picture could not be classified."""

    image: str  # the display name given with the picture
    top: tuple[tuple[str, float], ...] = ()  # (class, probability), most probable first
    error: str | None = None  # one line, when the picture could not be read or classified
    pixels: np.ndarray | None = None  # uint8 (H, W, C): the picture as the model sees it
    probabilities: np.ndarray | None = None  # float32 (classes,): every class, output order
    photo: Image.Image | None = None  # RGB, fitted in photo_size: the picture to show, if asked

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        return {
            "image": self.image,
            "top": [{"class": name, "probability": p} for name, p in self.top],
        }


def predict_images(
    run: Run,
    images: Sequence[tuple[str, bytes | os.PathLike[str]]],
    *,
    top: int = 5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    photo_size: int | None = None,
) -> list[Prediction]:
    """Classify pictures given as (display name, bytes or path) with the run's model.

    Returns one `Prediction` per picture, in order. A picture that is not a safe, readable image
    (or is larger than `max_bytes`) gets `error` set; the rest are classified together. `top` is
    clamped to 1..number of classes. With `photo_size`, each readable picture's `photo` is the
    picture itself, shrunk to fit `photo_size` x `photo_size` pixels, for showing: every picture
    is decoded once, for the model and the eye alike.
    Raises `RunError` when the run has no usable model.
    """
    model = load_run_model(run)
    height, width, channels = run.spec().input_shape
    expected = (height, width, channels)
    actual = tuple(model.inputs[0].shape[1:])
    if actual != expected:
        raise RunError(
            f"run {run.name}: spec.json describes {format_shape(expected)} inputs but model.keras "
            f"takes {format_shape(actual)}; the run's files do not belong together: train the run "
            "again."
        )
    names = class_names(run)
    if len(names) != output_size(model):
        raise RunError(
            f"run {run.name}: dataset.json lists {len(names)} classes but the model scores "
            f"{output_size(model)}; the run's files do not belong together: train it again."
        )
    k = max(1, min(int(top), len(names)))

    arrays: list[np.ndarray | None] = []
    errors: list[str | None] = []
    photos: list[Image.Image | None] = []
    for name, data in images:
        try:
            picture = open_image(data, name=name or None, max_bytes=max_bytes)
            arrays.append(to_array(picture, size=(height, width), channels=channels))
            errors.append(None)
        except ImageError as exc:
            picture = None
            arrays.append(None)
            errors.append(str(exc))
        if picture is not None and photo_size is not None:
            picture.thumbnail((photo_size, photo_size))  # in place, after the model's copy
        photos.append(picture if photo_size is not None else None)

    good = [i for i, array in enumerate(arrays) if array is not None]
    tta = test_time_views(run)
    probs = run_model(model, np.stack([arrays[i] for i in good]), **tta) if good else None
    row_of = {index: row for row, index in enumerate(good)}

    results: list[Prediction] = []
    for i, (name, _) in enumerate(images):
        if i not in row_of:
            results.append(Prediction(image=name, error=errors[i]))
            continue
        p = probs[row_of[i]]
        if not np.all(np.isfinite(p)):
            results.append(
                Prediction(
                    image=name,
                    error=f"the model's output for {name} is not a number; its training "
                    "diverged: train the run again with a lower learning rate.",
                    pixels=arrays[i],
                    photo=photos[i],
                )
            )
            continue
        order = np.argsort(-p, kind="stable")[:k]
        results.append(
            Prediction(
                image=name,
                top=tuple((names[j], float(p[j])) for j in order),
                pixels=arrays[i],
                probabilities=p,
                photo=photos[i],
            )
        )
    return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:200]
