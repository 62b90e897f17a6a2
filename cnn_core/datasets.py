"""Dataset sources: CIFAR-10 (downloaded or the official archive) and trees of image folders.

A source is a string: ``cifar10`` (Keras downloads and caches it), the path to the official
``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py`` folder, or a folder (or a
``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive of one) holding ``train/<class>/*`` and
``test/<class>/*`` image files, at its top or inside one top-level folder. `load_dataset` turns any
of them into a `Dataset` of uint8 arrays at the model's input size, decoding each image once and
caching the result on disk (under `settings.cache_dir()`), keyed by the source's identity.

Untrusted input is handled defensively: archives are read in memory and never extracted, so a
hostile member path cannot write anywhere; CIFAR-10 batches are pickles, read with an unpickler
that builds numpy arrays and nothing else; images go through `images.open_image`.

This module does not shuffle, split off validation data, scale pixels to floats or augment; that
is the trainer's job. Importing it does not import Keras or TensorFlow.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import dataclasses
import glob
import hashlib
import io
import json
import logging
import lzma
import multiprocessing
import os
import pickle
import re
import stat
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from cnn_core import images, settings
from cnn_core.errors import DataError, ImageError

log = logging.getLogger(__name__)

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
CACHE_VERSION = 1  # bump when the cached arrays' meaning changes
MAX_MEMBER_BYTES = 50 * 2**20  # archive members bigger than this are skipped, never read
MAX_MEMBERS = 2_000_000  # more entries than this is not a dataset we can hold in memory
MAX_ARCHIVE_BYTES = 4 * 2**30  # members are held in memory until decoded: refuse zip bombs
MAX_BATCH_BYTES = 100 * 2**20  # an official CIFAR-10 batch is 31 MB
MAX_LISTED_WARNINGS = 20  # per-file warnings kept; the rest are summarised in one line

_BATCH_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
_TEST_BATCH = "test_batch"
_META = "batches.meta"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")
_EXPECTED = (
    "'cifar10', a folder with train/<class>/ and test/<class>/ image folders, a .tar.gz or .zip "
    "archive of one, or the official cifar-10-python.tar.gz"
)
_CHUNK = 1000  # images per worker task: small enough for steady progress, big enough to amortise
_PARALLEL_MIN_IMAGES = 4000  # below this, starting worker processes costs more than it saves

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
    skipped: int = 0  # unreadable files skipped while decoding
    warnings: tuple[str, ...] = ()  # one line each, for the user


# ----------------------------------------------------------------------------- public entry points


def load_dataset(
    source: str | os.PathLike[str] | None = None,
    *,
    image_size: tuple[int, int] = (32, 32),
    channels: int = 3,
    cache: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Load a dataset source as uint8 arrays of shape (N, *image_size, channels).

    `source=None` means `settings.data_source()`. `progress(done, total)` is called as images are
    decoded or resized. Raises `DataError` with a one-sentence explanation when the source cannot
    be used.
    """
    size = _check_size(image_size)
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 (greyscale) or 3 (RGB), not {channels!r}.")
    display = settings.data_source() if source is None else os.fspath(source)
    text = display.strip()
    started = time.perf_counter()
    if text.lower() == "cifar10":
        dataset = _fit(
            _load_keras_cifar10(display), size=size, channels=channels, progress=progress
        )
        log.info("loaded %s in %.1f s", display, time.perf_counter() - started)
        return dataset

    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"The dataset source {text} does not exist; give {_EXPECTED}.")
    if path.is_dir():
        listing = _walk_folder(path)
        identity = {"kind": "folder", "path": str(path.resolve()), "listing": listing.digest()}

        def build() -> Dataset:
            return _load_folder(
                path, listing, display, size=size, channels=channels, progress=progress
            )

    elif path.is_file():
        archive = _archive_kind(path)
        identity = _archive_identity(path, archive)

        def build() -> Dataset:
            return _load_archive(
                path, archive, display, size=size, channels=channels, progress=progress
            )

    else:
        raise DataError(f"{text} is neither a folder nor a file; give {_EXPECTED}.")

    cache_file = _cache_file(identity, size=size, channels=channels) if cache else None
    if cache_file is not None:
        cached = _read_cache(cache_file, source=display, size=size, channels=channels)
        if cached is not None:
            log.info("loaded %s from cache %s in %.2f s", display, cache_file, _since(started))
            return cached
    dataset = build()
    if cache_file is not None:
        _write_cache(cache_file, dataset)
    log.info("loaded %s in %.1f s", display, _since(started))
    return dataset


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What a dataset source is, found cheaply before loading it (for the Train page and runs)."""

    source: str  # as a run records it: "cifar10", or the absolute, resolved path
    description: str  # one line for display: what it is and where
    problem: str | None = None  # why it cannot be a dataset and how to fix it; None if it can
    needs_network: bool = False  # CIFAR-10 not yet in Keras' download cache
    cached: bool | None = None  # decoded before (loads in about a second); None: not known here


def inspect_source(
    source: str | os.PathLike[str] | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int = 3,
) -> SourceInfo:
    """Look at a source without loading it: its top level, or an archive's first entries. With
    `image_size`, also whether an archive was decoded at that size before (`cached`).

    Never raises. A source it finds no problem with may still fail to load (an empty class
    folder deep inside, say); one it refuses would certainly fail.
    """
    display = settings.data_source() if source is None else os.fspath(source)
    text = display.strip()
    if not text:
        return SourceInfo(
            "", "no dataset source", problem=f"No dataset source given; give {_EXPECTED}."
        )
    if text.lower() == "cifar10":
        return _inspect_keras_cifar10()
    path = Path(text).expanduser()
    try:
        resolved = str(path.resolve())
        if not path.exists():
            return SourceInfo(
                resolved,
                f"{text} (not found)",
                problem=f"The dataset source {text} does not exist; give {_EXPECTED}.",
            )
        if path.is_dir():
            return _inspect_folder(path, resolved)
        if path.is_file():
            return _inspect_file(path, resolved, image_size=image_size, channels=channels)
    except DataError as exc:
        return SourceInfo(resolved, f"{text} (not a usable dataset source)", problem=str(exc))
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or _first_line(exc)
        return SourceInfo(
            text,
            f"{text} (unreadable)",
            problem=f"{text} cannot be read ({reason}); check the path and its permissions.",
        )
    return SourceInfo(
        resolved,
        f"{text} (not a folder or file)",
        problem=f"{text} is neither a folder nor a file; give {_EXPECTED}.",
    )


def check_source(source: str | os.PathLike[str] | None = None) -> str:
    """The source as a run records it (absolute and resolved); a `DataError` if it cannot be a
    dataset, so that no run is created for it."""
    info = inspect_source(source)
    if info.problem:
        raise DataError(info.problem)
    return info.source


def describe_source(source: str | os.PathLike[str] | None = None) -> str:
    """A short description of a source for display, e.g. "image folders in /x (cifar10-jpeg)"."""
    return inspect_source(source).description


def keras_cifar10_folder() -> Path:
    """Where Keras' CIFAR-10 loader keeps the extracted batches once downloaded."""
    from cnn_core.backends import keras_home

    return keras_home() / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"


def _inspect_keras_cifar10() -> SourceInfo:
    folder = keras_cifar10_folder()
    if (folder / _TEST_BATCH).is_file():
        return SourceInfo(
            "cifar10", f"CIFAR-10, already downloaded by Keras ({folder.parent})", cached=True
        )
    return SourceInfo(
        "cifar10",
        "CIFAR-10, not downloaded yet: Keras downloads it when training starts (170 MB, "
        f"once; kept in {folder.parent})",
        needs_network=True,
        cached=False,
    )


def _inspect_folder(path: Path, resolved: str) -> SourceInfo:
    try:
        entries = [e for e in os.scandir(path) if not _ignored(e.name)]
    except PermissionError:
        raise DataError(
            f"The folder {path} cannot be read (permission denied); check its permissions."
        ) from None
    names = {e.name for e in entries}
    folders = sorted(e.name for e in entries if e.is_dir())
    if {_TEST_BATCH, _BATCH_NAMES[0]} & names:
        return SourceInfo(resolved, f"CIFAR-10 batches in {path}")
    if {"train", "test"} <= set(folders):
        return SourceInfo(resolved, f"image folders in {path}")
    for inner in folders:
        inner_names = {e.name for e in os.scandir(path / inner)}
        if {_TEST_BATCH, _BATCH_NAMES[0]} & inner_names:
            return SourceInfo(resolved, f"CIFAR-10 batches in {path / inner}")
        if len(folders) == 1 and {"train", "test"} <= inner_names:
            return SourceInfo(resolved, f"image folders in {path} ({inner})")
    found = ", ".join(f"{name}/" for name in folders[:8]) or "no folders"
    return SourceInfo(
        resolved,
        f"folder {path} (no train/ and test/ folders)",
        problem=f"The folder {path} has no train/ and test/ folders (found {found}); expected "
        "train/<class>/ and test/<class>/ image folders at its top or inside one top-level folder.",
    )


def _inspect_file(
    path: Path, resolved: str, *, image_size: tuple[int, int] | None, channels: int
) -> SourceInfo:
    if images.has_image_suffix(path.name) or _looks_like_image(path):
        return SourceInfo(
            resolved,
            f"{path} (a single image)",
            problem=f"{path} is a single image, not a dataset; give the folder (or a .zip or "
            ".tar.gz) holding train/<class>/ and test/<class>/ image folders. To classify one "
            "photo, use Predict.",
        )
    description = _describe_archive(path)
    if image_size is None:
        return SourceInfo(resolved, description)
    identity = _archive_identity(path, _archive_kind(path))
    cache = _cache_file(identity, size=_check_size(image_size), channels=channels)
    return SourceInfo(resolved, description, cached=cache.is_file())


def _looks_like_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.format is not None
    except Exception:  # why: whatever Pillow cannot open is not an image
        return False


def _archive_identity(path: Path, kind: str) -> dict[str, object]:
    """What the decoded cache of an archive is keyed by: it is decoded again when it changes."""
    info = path.stat()
    return {
        "kind": kind,
        "path": str(path.resolve()),
        "bytes": info.st_size,
        "mtime_ns": info.st_mtime_ns,
    }


# ---------------------------------------------------------------------------- CIFAR-10 via Keras


def _load_keras_cifar10(display: str) -> Dataset:
    """CIFAR-10 through Keras' downloader, which checks the archive's hash and caches it."""
    try:
        from cnn_core._keras import keras  # lazily: importing this module must not start TF

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as exc:  # why: download failures surface as many types
        raise DataError(
            f"CIFAR-10 could not be downloaded ({_first_line(exc)}); on a machine with a network, "
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


def _unpickle(data: bytes, *, label: str) -> object:
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # why: a hostile or damaged pickle can fail anywhere
        raise DataError(
            f"{label} is not a CIFAR-10 batch file ({_first_line(exc)}); "
            f"use the official cifar-10-python.tar.gz from {CIFAR10_URL}."
        ) from None


def _field(batch: dict[object, object], key: str) -> object:
    return batch.get(key.encode(), batch.get(key))


def _parse_batch(data: bytes, *, label: str) -> tuple[np.ndarray, np.ndarray]:
    """One data_batch_N or test_batch as (images (N, 32, 32, 3) view, labels (N,) int64)."""
    batch = _unpickle(data, label=label)
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


def _parse_meta(data: bytes, *, label: str) -> tuple[str, ...]:
    meta = _unpickle(data, label=label)
    names = _field(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise DataError(f"{label} has no label_names list; use the official batches.meta file.")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def _from_batches(
    parsed: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: tuple[str, ...] | None,
    display: str,
    *,
    where: str,
) -> Dataset:
    """Assemble parsed batches (by file name) into a Dataset, checking that all six are there."""
    missing = [n for n in (*_BATCH_NAMES, _TEST_BATCH) if n not in parsed]
    if missing:
        raise DataError(
            f"{where} is missing the CIFAR-10 batch files {', '.join(missing)}; use the complete "
            f"official cifar-10-python.tar.gz from {CIFAR10_URL}."
        )
    names = class_names or CIFAR10_CLASSES
    x_train = np.concatenate([parsed[n][0] for n in _BATCH_NAMES])  # one contiguous uint8 copy
    y_train = np.concatenate([parsed[n][1] for n in _BATCH_NAMES])
    x_test = np.ascontiguousarray(parsed[_TEST_BATCH][0])
    y_test = parsed[_TEST_BATCH][1]
    for y in (y_train, y_test):
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(
                f"{where} has labels outside 0..{len(names) - 1}; use the official CIFAR-10 files."
            )
    return Dataset(x_train, y_train, x_test, y_test, names, display)


# ------------------------------------------------------------------------------- folder sources


class _Listing(NamedTuple):
    """Every visible file (relative parts, path, size, mtime) and folder under a source folder."""

    files: list[tuple[tuple[str, ...], str, int, int]]
    dirs: set[tuple[str, ...]]

    def digest(self) -> str:
        h = hashlib.sha256()
        for parts, _, size, mtime in self.files:
            h.update(f"f\0{'/'.join(parts)}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
        for parts in sorted(self.dirs):
            h.update(f"d\0{'/'.join(parts)}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


def _ignored(name: str) -> bool:
    """Hidden entries (.DS_Store, ._x.jpg, .git) and macOS archive litter."""
    return name.startswith(".") or name == "__MACOSX"


def _walk_folder(root: Path) -> _Listing:
    """List the tree with `os.scandir` (the second, cached load of a big folder is mostly this)."""
    files: list[tuple[tuple[str, ...], str, int, int]] = []
    dirs: set[tuple[str, ...]] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    while pending:
        folder, rel = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc.strerror)
            continue
        for entry in entries:
            if _ignored(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):  # why: a linked folder could loop
                    dirs.add((*rel, entry.name))
                    pending.append((entry.path, (*rel, entry.name)))
                    continue
                info = entry.stat()
            except OSError:
                continue  # vanished, or a dangling link: not a file we could read anyway
            if stat.S_ISREG(info.st_mode):
                files.append(((*rel, entry.name), entry.path, info.st_size, info.st_mtime_ns))
    files.sort()
    return _Listing(files, dirs)


def _batch_folder(listing: _Listing) -> tuple[str, ...] | None:
    """Where the official batch files are: the folder itself or its one sub-folder, if anywhere."""
    by_parent: dict[tuple[str, ...], set[str]] = {}
    for parts, *_ in listing.files:
        by_parent.setdefault(parts[:-1], set()).add(parts[-1])
    for parent in sorted(by_parent, key=len):
        if len(parent) <= 1 and {_TEST_BATCH, _BATCH_NAMES[0]} & by_parent[parent]:
            return parent
    return None


def _load_folder(
    path: Path,
    listing: _Listing,
    display: str,
    *,
    size: tuple[int, int],
    channels: int,
    progress: Progress | None,
) -> Dataset:
    where = str(path)
    batch_dir = _batch_folder(listing)
    has_images = any(images.has_image_suffix(parts[-1]) for parts, *_ in listing.files)
    if batch_dir is not None and not has_images:  # as in archives: image folders win
        parsed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        class_names = None
        for parts, file, file_size, _ in listing.files:
            name = parts[-1]
            if parts[:-1] != batch_dir or name not in (*_BATCH_NAMES, _TEST_BATCH, _META):
                continue
            if file_size > MAX_BATCH_BYTES:
                raise DataError(f"{file} is too large to be a CIFAR-10 batch file.")
            data = _read_file(Path(file))
            if name == _META:
                class_names = _parse_meta(data, label=file)
            else:
                parsed[name] = _parse_batch(data, label=file)
        dataset = _from_batches(parsed, class_names, display, where=where)
        return _fit(dataset, size=size, channels=channels, progress=progress)
    members = [(parts, file) for parts, file, *_ in listing.files]
    return _from_tree(
        members, listing.dirs, display, where=where, size=size, channels=channels, progress=progress
    )


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}); check its permissions.") from None


# ------------------------------------------------------------------------------ archive sources


class _Member(NamedTuple):
    parts: tuple[str, ...]
    data: bytes | None  # None: not read (a folder, too big, or unreadable)
    is_dir: bool = False
    problem: str = ""  # why a file was not read


class _Unread(NamedTuple):
    """Stands in for the bytes of an archive member that could not be read."""

    reason: str


Payload = bytes | str | _Unread  # an image file's bytes (archives) or path (folders)


def _archive_kind(path: Path) -> str:
    """ "zip" or "tar" by content; a DataError for anything else."""
    try:
        if zipfile.is_zipfile(path):
            return "zip"
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}); check its permissions.") from None
    except (EOFError, zlib.error, lzma.LZMAError):  # a compressed stream cut short or garbled
        raise DataError(
            f"The archive {path} is corrupt or cut short; download or create it again."
        ) from None
    if path.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise DataError(
            f"The archive {path} is corrupt or not a tar/zip archive; download or create it again."
        )
    raise DataError(f"{path} is not a recognised dataset source; give {_EXPECTED}.")


def _member_parts(name: str) -> tuple[str, ...] | None:
    """An archive member's path as parts, or None for hidden, macOS or path-escaping entries."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return None  # absolute: no dataset archive needs one, so it is not trusted
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts or any(p == ".." or _ignored(p) for p in parts):
        return None
    return parts


def _iter_archive(path: Path, kind: str) -> Iterator[_Member]:
    """Every member of a tar or zip archive, read into memory one at a time, never extracted."""
    corrupt = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError)
    total = 0
    try:
        for member in _iter_zip(path) if kind == "zip" else _iter_tar(path):
            total += len(member.data or b"")
            if total > MAX_ARCHIVE_BYTES:
                raise DataError(
                    f"The archive {path} unpacks to more than {MAX_ARCHIVE_BYTES // 2**30} GB, "
                    "too much to hold in memory; extract it and pass the folder instead."
                )
            yield member
    except corrupt as exc:
        raise DataError(
            f"The archive {path} is corrupt or unreadable ({exc}); download or create it again."
        ) from None


def _too_many(path: Path) -> DataError:
    return DataError(
        f"The archive {path} has more than {MAX_MEMBERS:,} entries, too many to load in memory; "
        "use a smaller dataset."
    )


def _iter_tar(path: Path) -> Iterator[_Member]:
    with tarfile.open(path, mode="r|*") as archive:  # streaming: one pass, nothing extracted
        count = 0
        while (info := archive.next()) is not None:
            count += 1
            if count > MAX_MEMBERS:
                raise _too_many(path)
            parts = _member_parts(info.name)
            if parts is None:
                pass
            elif info.isdir():
                yield _Member(parts, None, is_dir=True)
            elif not info.isreg():
                pass  # links, devices, fifos: never followed
            elif info.size > MAX_MEMBER_BYTES:
                yield _Member(parts, None, problem=f"larger than {MAX_MEMBER_BYTES // 2**20} MB")
            else:
                stream = archive.extractfile(info)
                yield _Member(parts, stream.read() if stream else b"")
            archive.members.clear()  # why: streaming mode otherwise keeps every header in memory


def _iter_zip(path: Path) -> Iterator[_Member]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _too_many(path)
        for info in infos:
            parts = _member_parts(info.filename)
            if parts is None:
                continue
            if info.is_dir():
                yield _Member(parts, None, is_dir=True)
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                yield _Member(parts, None, problem=f"larger than {MAX_MEMBER_BYTES // 2**20} MB")
                continue
            try:
                member = _Member(parts, archive.read(info))
            except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as exc:
                # One damaged or encrypted member: skip it like an unreadable image.
                member = _Member(parts, None, problem=str(exc) or type(exc).__name__)
            yield member


def _load_archive(
    path: Path,
    kind: str,
    display: str,
    *,
    size: tuple[int, int],
    channels: int,
    progress: Progress | None,
) -> Dataset:
    where = str(path)
    members: list[tuple[tuple[str, ...], Payload]] = []
    dirs: set[tuple[str, ...]] = set()
    parsed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    class_names = None
    bad_batches: list[DataError] = []  # fatal only if this turns out to be a batches archive
    for member in _iter_archive(path, kind):
        name = member.parts[-1]
        label = f"{path}:{'/'.join(member.parts)}"
        try:
            if member.is_dir:
                dirs.add(member.parts)
            elif name in (*_BATCH_NAMES, _TEST_BATCH) and member.data is not None:
                parsed[name] = _parse_batch(member.data, label=label)  # now: keep arrays only
            elif name == _META and member.data is not None:
                class_names = _parse_meta(member.data, label=label)
            elif images.has_image_suffix(name):
                data = member.data
                members.append((member.parts, _Unread(member.problem) if data is None else data))
        except DataError as exc:
            bad_batches.append(exc)
    if (parsed or bad_batches) and not members:
        if bad_batches:
            raise bad_batches[0]
        dataset = _from_batches(parsed, class_names, display, where=where)
        return _fit(dataset, size=size, channels=channels, progress=progress)
    return _from_tree(
        members, dirs, display, where=where, size=size, channels=channels, progress=progress
    )


# ---------------------------------------------------------------------------- image-folder trees


def _from_tree(
    members: Sequence[tuple[tuple[str, ...], Payload]],
    dirs: set[tuple[str, ...]],
    display: str,
    *,
    where: str,
    size: tuple[int, int],
    channels: int,
    progress: Progress | None,
) -> Dataset:
    """Find train/ and test/ class folders among `members` (relative parts, payload) and decode."""
    all_dirs = set(dirs)
    for parts, _ in members:
        all_dirs.update(parts[:i] for i in range(1, len(parts)))
    pictures = [
        (parts, payload) for parts, payload in members if images.has_image_suffix(parts[-1])
    ]
    if not pictures:
        raise DataError(
            f"No images found in {where}; put JPEG, PNG, GIF, BMP or WebP files "
            f"({' '.join(images.IMAGE_SUFFIXES)}) in train/<class>/ and test/<class>/ folders."
        )
    root = _tree_root(all_dirs, [parts for parts, _ in members], where=where)
    depth = len(root)

    split_classes: dict[str, list[str]] = {}
    loose: dict[str, int] = {"train": 0, "test": 0}
    for split in ("train", "test"):
        prefix = (*root, split)
        split_classes[split] = sorted(
            d[depth + 1] for d in all_dirs if len(d) == depth + 2 and d[: depth + 1] == prefix
        )
    train_only = sorted(set(split_classes["train"]) - set(split_classes["test"]))
    test_only = sorted(set(split_classes["test"]) - set(split_classes["train"]))
    if train_only or test_only:
        raise DataError(
            f"The train and test folders in {where} have different classes (only in train: "
            f"{', '.join(train_only) or 'none'}; only in test: {', '.join(test_only) or 'none'}); "
            "give both the same class folders."
        )
    class_names = tuple(split_classes["train"])
    if len(class_names) < 2:
        raise DataError(
            f"{where} has {len(class_names)} class folder(s) in train/; a classifier needs at "
            "least two, one folder per class."
        )
    index = {name: i for i, name in enumerate(class_names)}

    chosen: dict[str, list[tuple[str, int, Payload]]] = {"train": [], "test": []}
    for parts, payload in sorted(pictures, key=lambda item: item[0]):
        if len(parts) <= depth + 1 or parts[:depth] != root or parts[depth] not in chosen:
            continue  # outside train/ and test/
        split = parts[depth]
        if len(parts) == depth + 2:
            loose[split] += 1  # an image directly in train/, not in a class folder
            continue
        relative = "/".join(parts[depth:])
        chosen[split].append((relative, index[parts[depth + 1]], payload))

    for split in ("train", "test"):
        counts = np.bincount([label for _, label, _ in chosen[split]], minlength=len(class_names))
        empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise DataError(
                f"The class folder {split}/{empty[0]} in {where} has no images; add JPEG, PNG, "
                "GIF, BMP or WebP files to it or remove it from both train/ and test/."
            )

    notes = [
        f"{count} image(s) directly in {split}/ are not in a class folder and were ignored."
        for split, count in loose.items()
        if count
    ]
    items = chosen["train"] + chosen["test"]  # one decoding pass, so one set of workers
    readable = [i for i, item in enumerate(items) if not isinstance(item[2], _Unread)]
    x, ok, failures = _decode_images(
        [items[i][2] for i in readable],
        [items[i][0] for i in readable],
        size=size,
        channels=channels,
        progress=progress,
    )
    failures += [
        f"{name} was not read ({p.reason})." for name, _, p in items if isinstance(p, _Unread)
    ]
    kept = np.array(readable, dtype=np.int64)[ok]  # indexes into items of the decoded images
    x = x[ok] if not ok.all() else x
    labels = np.array([items[i][1] for i in kept], dtype=np.int64)
    is_train = kept < len(chosen["train"])
    for split, rows in (("train", is_train), ("test", ~is_train)):
        counts = np.bincount(labels[rows], minlength=len(class_names))
        if (counts == 0).any():
            empty = class_names[int(np.flatnonzero(counts == 0)[0])]
            example = next((f for f in failures if f.startswith(f"{split}/{empty}/")), "")
            raise DataError(
                f"None of the images in {split}/{empty} in {where} could be read ({example}); "
                "replace them with JPEG, PNG, GIF, BMP or WebP files."
            )
    n_train = int(is_train.sum())
    for message in failures[:MAX_LISTED_WARNINGS]:
        log.warning("skipped %s", message)
    if len(failures) > MAX_LISTED_WARNINGS:
        log.warning("skipped %d more unreadable files", len(failures) - MAX_LISTED_WARNINGS)
    summary = _summarise(failures)
    return Dataset(
        x_train=x[:n_train],  # views of one array: no copy
        y_train=labels[:n_train],
        x_test=x[n_train:],
        y_test=labels[n_train:],
        class_names=class_names,
        source=display,
        skipped=len(failures),
        warnings=(*notes, *summary),
    )


def _summarise(failures: list[str]) -> list[str]:
    if not failures:
        return []
    lines = [f"Skipped {len(failures)} unreadable image file(s)."]
    lines += failures[:MAX_LISTED_WARNINGS]
    if len(failures) > MAX_LISTED_WARNINGS:
        lines.append(f"... and {len(failures) - MAX_LISTED_WARNINGS} more.")
    return lines


def _tree_root(
    all_dirs: set[tuple[str, ...]], files: list[tuple[str, ...]], *, where: str
) -> tuple[str, ...]:
    """The folder holding train/ and test/: the top itself, or its only top-level folder."""
    top = sorted(d[0] for d in all_dirs if len(d) == 1)
    if "train" in top and "test" in top:
        return ()
    if len(top) == 1 and (top[0], "train") in all_dirs and (top[0], "test") in all_dirs:
        return (top[0],)
    shown = ", ".join(f"{d}/" for d in top[:8]) + (", ..." if len(top) > 8 else "")
    loose = sum(1 for parts in files if len(parts) == 1)
    found = f"folders {shown}" if top else "no folders"
    found += f" and {loose} file(s)" if loose else ""
    raise DataError(
        f"{where} has no train/ and test/ folders (found {found}); expected train/<class>/ and "
        "test/<class>/ image folders at its top or inside one top-level folder."
    )


# ------------------------------------------------------------------------------------- decoding


def _decode_chunk(
    payloads: Sequence[bytes | str], names: Sequence[str], size: tuple[int, int], channels: int
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode a run of images (in a worker process); rows that fail stay zero and are reported."""
    out = np.zeros((len(payloads), *size, channels), dtype=np.uint8)
    errors: list[tuple[int, str]] = []
    for i, (payload, name) in enumerate(zip(payloads, names, strict=True)):
        try:
            with images.open_image(payload, name=name) as picture:
                out[i] = images.to_array(picture, size=size, channels=channels)
        except ImageError as exc:
            errors.append((i, str(exc)))
    return out, errors


def _fork_context() -> multiprocessing.context.BaseContext | None:
    """Worker processes by fork on Linux; elsewhere None (decode in this process).

    Why fork: spawn and forkserver re-run the caller's main script in every worker, which breaks
    any script without an ``if __name__ == "__main__"`` guard. The workers run only Pillow and
    numpy, so forking a process that also holds threads (Streamlit, TensorFlow) is safe for them.
    """
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork")


def _worker_count(n: int) -> int:
    if n < _PARALLEL_MIN_IMAGES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, -(-n // _CHUNK)))


def _decode_images(
    payloads: Sequence[bytes | str],
    names: Sequence[str],
    *,
    size: tuple[int, int],
    channels: int,
    progress: Progress | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode every payload to (N, H, W, C) uint8; returns the array, an ok mask and messages."""
    n = len(payloads)
    x = np.zeros((n, *size, channels), dtype=np.uint8)
    ok = np.ones(n, dtype=bool)
    errors: list[tuple[int, str]] = []
    starts = list(range(0, n, _CHUNK))
    done = 0

    def store(start: int, result: tuple[np.ndarray, list[tuple[int, str]]]) -> None:
        nonlocal done
        rows, failed = result
        x[start : start + len(rows)] = rows
        for offset, message in failed:
            ok[start + offset] = False
            errors.append((start + offset, message))
        done += len(rows)
        if progress is not None:
            progress(done, n)

    def chunk(start: int) -> tuple[Sequence[bytes | str], Sequence[str], tuple[int, int], int]:
        return payloads[start : start + _CHUNK], names[start : start + _CHUNK], size, channels

    workers = _worker_count(n)
    context = _fork_context()
    if workers > 1 and context is not None:
        try:
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_decode_chunk, *chunk(s)): s for s in starts}
                for future in concurrent.futures.as_completed(futures):
                    store(futures[future], future.result())
            starts = []
        except (OSError, ValueError, concurrent.futures.process.BrokenProcessPool) as exc:
            # Why not fatal: some sandboxes forbid processes; decoding here is only slower.
            log.warning("decoding in one process (worker processes failed: %s)", exc)
            x[:] = 0
            ok[:] = True
            errors.clear()
            done = 0
    for start in starts:
        store(start, _decode_chunk(*chunk(start)))
    return x, ok, [message for _, message in sorted(errors)]


def _fit(
    dataset: Dataset, *, size: tuple[int, int], channels: int, progress: Progress | None
) -> Dataset:
    """Resize and/or grey a dataset loaded at its native size (CIFAR-10's 32x32 RGB)."""
    splits = []
    total = len(dataset.x_train) + len(dataset.x_test)
    done = 0
    for x in (dataset.x_train, dataset.x_test):
        if x.shape[1:] == (*size, channels):
            splits.append(x)
            done += len(x)
            continue
        out = np.empty((len(x), *size, channels), dtype=np.uint8)
        for i, picture in enumerate(x):
            out[i] = images.to_array(Image.fromarray(picture), size=size, channels=channels)
            if progress is not None and (i + 1) % _CHUNK == 0:
                progress(done + i + 1, total)
        done += len(x)
        splits.append(out)
    if progress is not None:
        progress(total, total)
    return dataclasses.replace(dataset, x_train=splits[0], x_test=splits[1])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _check_size(image_size: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be (height, width), not {image_size!r}.") from None
    if height < 1 or width < 1:
        raise DataError(f"image_size must be positive, not {image_size!r}.")
    return height, width


def _since(started: float) -> float:
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------- cache


def _cache_file(identity: dict[str, object], *, size: tuple[int, int], channels: int) -> Path:
    """`<name>-<path hash>-<HxWxC>-<identity hash>.npz` under the cache folder."""
    source_path = str(identity["path"])
    key = json.dumps(
        {"version": CACHE_VERSION, "size": list(size), "channels": channels, **identity},
        sort_keys=True,
    )
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source_path).name)[:40] or "data"
    where = hashlib.sha256(source_path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    what = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return settings.cache_dir() / f"{slug}-{where}-{size[0]}x{size[1]}x{channels}-{what}.npz"


def _read_cache(path: Path, *, source: str, size: tuple[int, int], channels: int) -> Dataset | None:
    """The cached dataset, or None when there is none or it is damaged (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            x_train, y_train = stored["x_train"], stored["y_train"]
            x_test, y_test = stored["x_test"], stored["y_test"]
            class_names = tuple(str(name) for name in stored["class_names"])
            skipped = int(stored["skipped"])
            notes = tuple(str(line) for line in stored["warnings"])
        for x, y in ((x_train, y_train), (x_test, y_test)):
            if x.dtype != np.uint8 or x.shape[1:] != (*size, channels) or y.dtype != np.int64:
                raise ValueError("unexpected array types or shapes")
            if y.shape != (len(x),) or (len(y) and (y.min() < 0 or y.max() >= len(class_names))):
                raise ValueError("labels do not match the images")
    except Exception as exc:  # why: any damage means "rebuild", never a failure
        log.warning("ignoring damaged cache file %s (%s); rebuilding it", path, exc)
        return None
    return Dataset(x_train, y_train, x_test, y_test, class_names, source, skipped, notes)


def _write_cache(path: Path, dataset: Dataset) -> None:
    """Write atomically (temp file, then rename) and drop older versions of the same source."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(  # uncompressed: loading is a plain read, far faster than decoding again
                    f,
                    x_train=dataset.x_train,
                    y_train=dataset.y_train,
                    x_test=dataset.x_test,
                    y_test=dataset.y_test,
                    class_names=np.array(dataset.class_names, dtype=str),
                    skipped=np.int64(dataset.skipped),
                    warnings=np.array(dataset.warnings, dtype=str),
                )
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        stem = path.name.rsplit("-", 1)[0]  # same source and size, older contents
        for stale in path.parent.glob(f"{glob.escape(stem)}-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("not caching the decoded dataset in %s (%s)", path.parent, exc)


# ----------------------------------------------------------------------------------- describing


def _describe_folder(path: Path) -> str:
    entries = [e for e in os.scandir(path) if not _ignored(e.name)]
    names = {e.name for e in entries}
    folders = sorted(e.name for e in entries if e.is_dir())
    if {_TEST_BATCH, _BATCH_NAMES[0]} & names:
        return f"CIFAR-10 batches in {path}"
    if {"train", "test"} <= set(folders):
        return f"image folders in {path}"
    if len(folders) == 1:
        inner = path / folders[0]
        inner_names = {e.name for e in os.scandir(inner)}
        if {"train", "test"} <= inner_names:
            return f"image folders in {path} ({folders[0]})"
        if {_TEST_BATCH, _BATCH_NAMES[0]} & inner_names:
            return f"CIFAR-10 batches in {inner}"
    return f"folder {path} (no train/ and test/ folders)"


def _describe_archive(path: Path) -> str:
    kind = _archive_kind(path)
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            first = [info.filename for info in archive.infolist()[:20]]
    else:
        first = []
        with tarfile.open(path, mode="r|*") as archive:
            for info in archive:
                first.append(info.name)
                if len(first) >= 20:
                    break
    parts = [p for p in (_member_parts(name) for name in first) if p]
    if any(p[-1] in (_TEST_BATCH, *_BATCH_NAMES, _META) for p in parts):
        return f"CIFAR-10 archive {path}"
    tops = sorted({p[0] for p in parts if len(p) > 1})
    inner = f" ({tops[0]})" if len(tops) == 1 and tops[0] not in ("train", "test") else ""
    return f"image-folder archive {path}{inner}"
