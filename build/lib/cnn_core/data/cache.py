"""The decoded-dataset cache: per source, size and content, one .npy of uint8 pixels per split
(read memory-mapped, so a cached dataset costs no RAM until batches are read) and one small .npz
beside them (labels, class names, file lists, facts). Every file is written atomically and the
.npz last, so it exists only when its pixels do; a damaged or missing file is rebuilt, never an
error."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from cnn_core import settings
from cnn_core.data.dataset import Dataset
from cnn_core.data.layout import walk_folder
from cnn_core.data.pixels import pixels_file
from cnn_core.errors import DataError
from cnn_core.files import atomic_write_with

log = logging.getLogger("cnn_core.datasets")

CACHE_VERSION = 4  # bump when the cached arrays' meaning changes (2: file lists, 3: facts, 4: .npy)


def archive_identity(path: Path, kind: str) -> dict[str, object]:
    """What the decoded cache of an archive is keyed by: it is decoded again when it changes."""
    info = path.stat()
    return {
        "kind": kind,
        "path": str(path.resolve()),
        "bytes": info.st_size,
        "mtime_ns": info.st_mtime_ns,
    }


def source_fingerprint(source: str) -> str | None:
    """A short digest that changes when a source's files change: a folder's listing (every
    file's path, size and modification time), an archive's size and modification time; the same
    for ``cifar10`` always (Keras checks its download's hash). None if it cannot be read."""
    text = str(source).strip()
    if text.lower() == "cifar10":
        return "cifar10"
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            identity: dict[str, object] = {"folder": walk_folder(path).digest()}
        elif path.is_file():
            identity = archive_identity(path, "file")
        else:
            return None
    except (OSError, DataError):  # unreadable, or past a source limit (`limits`)
        return None
    key = json.dumps(identity, sort_keys=True).encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:16]


def cache_file(
    identity: dict[str, object], *, size: tuple[int, int], channels: int, limit: int | None = None
) -> Path:
    """`<name>-<path hash>-<HxWxC>[l<limit>]-<identity hash>.npz` under the cache folder (a quick
    try's `limit` is in the name, so that it never replaces the whole dataset's cache)."""
    source_path = str(identity["path"])
    key = json.dumps(
        {"version": CACHE_VERSION, "size": list(size), "channels": channels, **identity},
        sort_keys=True,
    )
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source_path).name)[:40] or "data"
    where = hashlib.sha256(source_path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    what = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    shape = f"{size[0]}x{size[1]}x{channels}" + (f"l{limit}" if limit is not None else "")
    return settings.cache_dir() / f"{slug}-{where}-{shape}-{what}.npz"


def read_cache(path: Path, *, source: str, size: tuple[int, int], channels: int) -> Dataset | None:
    """The cached dataset, or None when there is none or it is damaged (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            x_train, y_train = pixels(path, "x_train"), stored["y_train"]
            x_test, y_test = pixels(path, "x_test"), stored["y_test"]
            class_names = tuple(str(name) for name in stored["class_names"])
            skipped = int(stored["skipped"])
            notes = tuple(str(line) for line in stored["warnings"])
            extras = _read_extras(stored, path)
        pairs = [(x_train, y_train), (x_test, y_test)]
        if extras.get("x_val") is not None:
            pairs.append((extras["x_val"], extras["y_val"]))
        for x, y in pairs:
            if x.dtype != np.uint8 or x.shape[1:] != (*size, channels) or y.dtype != np.int64:
                raise ValueError("unexpected array types or shapes")
            if y.shape != (len(x),) or (len(y) and (y.min() < 0 or y.max() >= len(class_names))):
                raise ValueError("labels do not match the images")
    except Exception as exc:  # why: any damage means "rebuild", never a failure
        log.warning("ignoring damaged cache file %s (%s); rebuilding it", path, exc)
        return None
    return Dataset(x_train, y_train, x_test, y_test, class_names, source, skipped, notes, **extras)


def pixels(path: Path, name: str) -> np.ndarray:
    """One split's pixels, memory-mapped read-only (pages are read when rows are)."""
    return np.load(pixels_file(path, name), mmap_mode="r", allow_pickle=False)


def _read_extras(stored: np.lib.npyio.NpzFile, path: Path) -> dict[str, object]:
    """The fields beside the arrays: files found, the layout, and which file is in which split."""
    extras: dict[str, object] = {
        "found": int(stored["found"]),
        "layout": str(stored["layout"]),
        "train_files": tuple(str(name) for name in stored["train_files"]),
        "test_files": tuple(str(name) for name in stored["test_files"]),
    }
    if "y_val" in stored.files:
        extras.update(x_val=pixels(path, "x_val"), y_val=stored["y_val"])
        extras["val_files"] = tuple(str(name) for name in stored["val_files"])
    if "facts" in stored.files:
        extras["facts"] = stored["facts"]
    return extras


def _extras(dataset: Dataset) -> dict[str, np.ndarray]:
    arrays = {
        "found": np.int64(dataset.found),
        "layout": np.array(dataset.layout, dtype=str),
        "train_files": np.array(dataset.train_files, dtype=str),
        "test_files": np.array(dataset.test_files, dtype=str),
    }
    if dataset.x_val is not None and dataset.y_val is not None:
        arrays["y_val"] = dataset.y_val
        arrays["val_files"] = np.array(dataset.val_files or (), dtype=str)
    if dataset.facts is not None:
        arrays["facts"] = dataset.facts
    return arrays


def write_cache(path: Path, dataset: Dataset) -> None:
    """Write atomically (temp file, then rename; the pixels first, the .npz that names them
    last) and drop older versions of the same source."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        splits = {"x_train": dataset.x_train, "x_test": dataset.x_test}
        if dataset.x_val is not None and dataset.y_val is not None:
            splits["x_val"] = dataset.x_val
        for name, array in splits.items():
            target = pixels_file(path, name)
            if _is_mapped_from(array, target):
                continue  # decoded straight into it (`Pixels`)
            atomic_write_with(
                target, lambda f, a=array: np.save(f, a, allow_pickle=False), sync=False
            )
        atomic_write_with(
            path,
            lambda f: np.savez(
                f,
                y_train=dataset.y_train,
                y_test=dataset.y_test,
                class_names=np.array(dataset.class_names, dtype=str),
                skipped=np.int64(dataset.skipped),
                warnings=np.array(dataset.warnings, dtype=str),
                **_extras(dataset),
            ),
            sync=False,
        )
        stem = path.name.rsplit("-", 1)[0]  # same source and size, older contents
        for stale in path.parent.glob(f"{glob.escape(stem)}-*"):
            if stale != path and not stale.name.startswith(f"{path.stem}."):
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("not caching the decoded dataset in %s (%s)", path.parent, exc)


def _is_mapped_from(array: np.ndarray, path: Path) -> bool:
    """Whether `array` is the whole of the .npy file `path`, memory-mapped."""
    filename = getattr(array, "filename", None)
    if not filename or not path.exists():
        return False
    try:
        whole = np.load(path, mmap_mode="r", allow_pickle=False)
        return os.path.samefile(filename, path) and whole.shape == array.shape
    except (OSError, ValueError):
        return False
