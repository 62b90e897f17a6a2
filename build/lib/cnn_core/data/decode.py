"""Decoding image files into one uint8 array, in worker processes when there are many.

Every file is opened by its content (`images.open_image`); one that cannot be read stays a zero
row, reported by name, and is dropped by the caller.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from cnn_core import images
from cnn_core.data.archives import Spooled
from cnn_core.data.dataset import Dataset, Progress
from cnn_core.errors import ImageError

log = logging.getLogger("cnn_core.datasets")

CHUNK = 1000  # images per worker task: small enough for steady progress, big enough to amortise
PARALLEL_MIN_IMAGES = 4000  # below this, starting worker processes costs more than it saves
ImageFile = bytes | str | Spooled  # an image file: its bytes, its path, or its span of a spool
# What decoding learns about each image besides its pixels, for the dataset's health report.
FACTS = np.dtype([("width", "<i4"), ("height", "<i4"), ("grey", "?"), ("digest", "S16")])
GREY_TOLERANCE = 8  # channels within this of each other everywhere: a grey picture

# ------------------------------------------------------------------------------------- decoding


def _decode_chunk(
    payloads: Sequence[ImageFile], names: Sequence[str], size: tuple[int, int], channels: int
) -> tuple[np.ndarray, list[tuple[int, str]], np.ndarray]:
    """Decode a run of images (in a worker process); rows that fail stay zero and are reported.
    Also returns each image's facts (`FACTS`): its own size, whether it is grey, a digest of its
    file's bytes."""
    out = np.zeros((len(payloads), *size, channels), dtype=np.uint8)
    facts = np.zeros(len(payloads), dtype=FACTS)
    errors: list[tuple[int, str]] = []
    for i, (payload, name) in enumerate(zip(payloads, names, strict=True)):
        try:
            raw = _raw(payload)
            source = payload if raw is None else raw
            with images.open_image(source, name=name, formats=images.DATASET_FORMATS) as picture:
                out[i] = images.to_array(picture, size=size, channels=channels)
                small = out[i] if channels == 3 else np.asarray(picture.resize((16, 16)))
                facts[i] = (*picture.size, _looks_grey(small), _digest(raw))
        except ImageError as exc:
            errors.append((i, str(exc)))
    return out, errors, facts


def _raw(payload: ImageFile) -> bytes | None:
    """The file's bytes, to digest; None for a file too big to read here (decoding says so)."""
    if isinstance(payload, Spooled):
        return payload.read()  # at most MAX_MEMBER_BYTES: larger members are never spooled
    if not isinstance(payload, str):
        return bytes(payload)
    try:
        if os.path.getsize(payload) > images.DEFAULT_MAX_BYTES:
            return None
        with open(payload, "rb") as handle:
            return handle.read()
    except OSError:
        return None  # opening it by path reports why, in the user's words


def _digest(raw: bytes | None) -> bytes:
    return hashlib.blake2b(raw, digest_size=8).hexdigest().encode() if raw is not None else b""


def _looks_grey(pixels: np.ndarray) -> bool:
    values = np.asarray(pixels, dtype=np.int16).reshape(-1, pixels.shape[-1])
    if values.shape[-1] < 3:
        return True
    spread = values[:, :3].max(axis=1) - values[:, :3].min(axis=1)
    return bool(spread.max() <= GREY_TOLERANCE)


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
    if n < PARALLEL_MIN_IMAGES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, -(-n // CHUNK)))


def decode_images(
    payloads: Sequence[ImageFile],
    names: Sequence[str],
    *,
    size: tuple[int, int],
    channels: int,
    progress: Progress | None,
    put: Callable[[int, np.ndarray], None],
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Decode every payload to (H, W, C) uint8 rows, handed to `put(start, rows)` a chunk at a
    time as chunks finish (in any order), and dropped: decoding holds no more than the chunks in
    flight. Returns an ok mask, messages and every image's `FACTS`."""
    n = len(payloads)
    facts = np.zeros(n, dtype=FACTS)
    ok = np.ones(n, dtype=bool)
    errors: list[tuple[int, str]] = []
    starts = list(range(0, n, CHUNK))
    done = 0

    def store(start: int, result: tuple[np.ndarray, list[tuple[int, str]], np.ndarray]) -> None:
        nonlocal done
        rows, failed, found = result
        put(start, rows)
        facts[start : start + len(rows)] = found
        for offset, message in failed:
            ok[start + offset] = False
            errors.append((start + offset, message))
        done += len(rows)
        if progress is not None:
            progress(done, n)

    def chunk(start: int) -> tuple[Sequence[ImageFile], Sequence[str], tuple[int, int], int]:
        return payloads[start : start + CHUNK], names[start : start + CHUNK], size, channels

    workers = _worker_count(n)
    context = _fork_context()
    if workers > 1 and context is not None:
        try:
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_decode_chunk, *chunk(s)): s for s in starts}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        # pop: a finished future holds its chunk, so kept ones would add up
                        store(futures.pop(future), future.result())
                        del future
                except BaseException as exc:
                    if not isinstance(exc, OSError | concurrent.futures.process.BrokenProcessPool):
                        pool.shutdown(wait=True, cancel_futures=True)  # stop now, not after all
                    raise
            starts = []
        except (OSError, ValueError, concurrent.futures.process.BrokenProcessPool) as exc:
            # Why not fatal: some sandboxes forbid processes; decoding here is only slower.
            log.warning("decoding in one process (worker processes failed: %s)", exc)
            facts[:] = 0
            ok[:] = True
            errors.clear()
            done = 0
    for start in starts:
        store(start, _decode_chunk(*chunk(start)))
    return ok, [message for _, message in sorted(errors)], facts


def fit(
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
            if progress is not None and (i + 1) % CHUNK == 0:
                progress(done + i + 1, total)
        done += len(x)
        splits.append(out)
    if progress is not None:
        progress(total, total)
    return dataclasses.replace(dataset, x_train=splits[0], x_test=splits[1])
