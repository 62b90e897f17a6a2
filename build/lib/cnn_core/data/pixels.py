"""The pixel files of a decoded dataset: `Pixels` writes them, `RowReader` reads rows back.

Where decoding puts its images: one uint8 array per split, written row block by row block as
decode chunks finish, either straight into the cache's .npy files (so that a first decode never
holds the dataset in RAM) or, where there is no cache, into arrays in RAM.

Rows arrive in the dataset's final order (train, then validation, then test) at positions known
before decoding; rows that fail to decode are squeezed out at the end (`finish`), in place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cnn_core.errors import DataError

log = logging.getLogger("cnn_core.datasets")

DISK_MARGIN = 256 * 2**20  # free space left on the cache's disk after the decoded images
MOVE_ROWS = 256  # rows moved at a time when failed rows are squeezed out


def pixels_file(path: Path, name: str) -> Path:
    """The .npy of one split's pixels beside the cache's .npz: `<stem>.x_train.npy`."""
    return path.with_name(f"{path.stem}.{name}.npy")


def _header(shape: tuple[int, ...]) -> bytes:
    """The .npy header of a C-ordered uint8 array. Numpy pads it so the first axis can grow to 21
    digits at the same length, so a file's header can be rewritten in place for fewer rows."""
    out = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(np.uint8))
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


class Pixels:
    """The decoded images of a dataset, split by split, in the order they will be used.

    `counts` maps each split's name (`x_train`, `x_val`, `x_test`) to its number of rows, in
    order; `cache` is the cache's .npz path (the pixels go beside it, see `pixels_file`) or None
    for arrays in RAM. `put(start, rows)` stores rows `start...` of the whole sequence."""

    def __init__(
        self, counts: Mapping[str, int], row_shape: tuple[int, ...], cache: Path | None
    ) -> None:
        self.counts = dict(counts)
        self.row_shape = tuple(row_shape)
        self.row_bytes = int(np.prod(self.row_shape))
        self.starts = np.cumsum([0, *self.counts.values()]).tolist()
        self.cache = cache
        self.note: str | None = None  # why the images are held in RAM though a cache was asked for
        self.arrays: dict[str, np.ndarray] = {}
        self.files: dict[str, tuple[int, Path]] = {}  # split -> (descriptor, temp path)
        if cache is not None:
            self._open_files(cache)
        if not self.files:
            self.arrays = {
                name: np.zeros((n, *self.row_shape), dtype=np.uint8)
                for name, n in self.counts.items()
            }

    @property
    def total(self) -> int:
        return self.starts[-1]

    def _open_files(self, cache: Path) -> None:
        """Temp files beside the cache, at full size (sparse until written); when the disk is
        too small or cannot be written, the images go to RAM, and `note` says why."""
        needed = self.total * self.row_bytes
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(cache.parent).free
        except OSError as exc:
            self.note = f"the cache folder {cache.parent} cannot be used ({exc.strerror or exc})"
            return
        if free < needed + DISK_MARGIN:
            self.note = (
                f"the disk holding the cache folder {cache.parent} has {free / 1e9:.1f} GB free "
                f"and the decoded images need {needed / 1e9:.1f} GB"
            )
            return
        try:
            for name, n in self.counts.items():
                target = pixels_file(cache, name)
                fd, temp = tempfile.mkstemp(
                    dir=cache.parent, prefix=f".{target.name}.", suffix=".tmp"
                )
                self.files[name] = (fd, Path(temp))
                header = _header((n, *self.row_shape))
                os.pwrite(fd, header, 0)
                os.ftruncate(fd, len(header) + n * self.row_bytes)
        except OSError as exc:
            self.discard()
            self.note = f"the cache folder {cache.parent} cannot be written ({exc.strerror or exc})"

    def _where(self, row: int) -> tuple[str, int]:
        """The split holding row `row` of the sequence, and the row's index in it."""
        for i, name in enumerate(self.counts):
            if row < self.starts[i + 1]:
                return name, row - self.starts[i]
        raise IndexError(f"row {row} is past the {self.total} rows")

    def put(self, start: int, rows: np.ndarray) -> None:
        """Store `rows` as rows `start, start + 1, ...` of the sequence (splits in order)."""
        done = 0
        while done < len(rows):
            name, at = self._where(start + done)
            count = min(len(rows) - done, self.counts[name] - at)
            block = np.ascontiguousarray(rows[done : done + count], dtype=np.uint8)
            if name in self.arrays:
                self.arrays[name][at : at + count] = block
            else:
                self._write(name, at, block)
            done += count

    def _write(self, name: str, at: int, block: np.ndarray) -> None:
        fd, temp = self.files[name]
        offset = self._data_offset(name) + at * self.row_bytes
        try:
            view = memoryview(block).cast("B")
            while len(view):
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            folder = temp.parent
            self.discard()
            raise DataError(
                f"cannot write the decoded images to the cache folder {folder} "
                f"({exc.strerror or exc}); free some space there (they need "
                f"{self.total * self.row_bytes / 1e9:.1f} GB) or set CNN_CORE_CACHE to a folder "
                "on a larger disk."
            ) from None

    def _data_offset(self, name: str) -> int:
        return len(_header((self.counts[name], *self.row_shape)))

    def finish(self, keep: np.ndarray) -> dict[str, np.ndarray]:
        """Drop the rows whose `keep` is False (moving the later rows up, in place) and return
        each split's array: in RAM, or the .npy file memory-mapped read-only, renamed to its
        place beside the cache (the caller writes the .npz that names them last)."""
        keep = np.asarray(keep, dtype=bool)
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.counts):
            kept = np.flatnonzero(keep[self.starts[i] : self.starts[i + 1]])
            if name in self.arrays:
                out[name] = self._squeeze_array(self.arrays[name], kept)
            else:
                out[name] = self._finish_file(name, kept)
        self.arrays = {}
        return out

    @staticmethod
    def _squeeze_array(array: np.ndarray, kept: np.ndarray) -> np.ndarray:
        if len(kept) == len(array):
            return array
        for begin in range(0, len(kept), MOVE_ROWS):  # kept rows only ever move up: safe in place
            rows = kept[begin : begin + MOVE_ROWS]
            array[begin : begin + len(rows)] = array[rows]
        return array[: len(kept)]

    def _finish_file(self, name: str, kept: np.ndarray) -> np.ndarray:
        fd, temp = self.files.pop(name)
        target = pixels_file(self.cache, name)  # type: ignore[arg-type]
        try:
            base = self._data_offset(name)
            if len(kept) != self.counts[name]:
                for new, old, length in _runs(kept):
                    for step in range(0, length, MOVE_ROWS):  # rows only move up: forward is safe
                        count = min(MOVE_ROWS, length - step)
                        size, row = count * self.row_bytes, self.row_bytes
                        block = os.pread(fd, size, base + (old + step) * row)
                        os.pwrite(fd, block, base + (new + step) * row)
                header = _header((len(kept), *self.row_shape))
                if len(header) != base:  # pragma: no cover - numpy keeps the length
                    raise OSError(f"the .npy header changed length ({base} -> {len(header)})")
                os.pwrite(fd, header, 0)
                os.ftruncate(fd, base + len(kept) * self.row_bytes)
            os.close(fd)
            fd = -1
            os.replace(temp, target)
        except OSError as exc:
            if fd >= 0:
                _close(fd)
            temp.unlink(missing_ok=True)
            self.discard()
            raise DataError(
                f"cannot finish the decoded images in the cache folder {temp.parent} "
                f"({exc.strerror or exc}); free some space there or set CNN_CORE_CACHE to "
                "another folder."
            ) from None
        return np.load(target, mmap_mode="r", allow_pickle=False)

    def discard(self) -> None:
        """Close and delete the temp files (after a failure); nothing is left behind."""
        for fd, temp in self.files.values():
            _close(fd)
            temp.unlink(missing_ok=True)
        self.files = {}


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _runs(kept: np.ndarray) -> list[tuple[int, int, int]]:
    """(new start, old start, length) of each run of consecutive kept rows that moves."""
    kept = np.asarray(kept, dtype=np.int64)
    if not len(kept):
        return []
    breaks = np.flatnonzero(np.diff(kept) != 1) + 1
    starts = np.concatenate([[0], breaks])
    lengths = np.diff(np.concatenate([starts, [len(kept)]]))
    return [
        (int(s), int(kept[s]), int(n)) for s, n in zip(starts, lengths, strict=True) if kept[s] != s
    ]


class RowReader:
    """`x[rows]` as one plain array, for arrays in RAM or memory-mapped .npy files alike. From a
    file by positional reads: pages touched through the map count in this process's RSS and stay
    there until memory is short, so walking a dataset through the map would grow RSS to the whole
    file; read pages stay in the kernel's page cache, shared and dropped when needed."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.fd = None
        if isinstance(x, np.memmap) and isinstance(x.base, mmap.mmap) and x.flags.c_contiguous:
            self.fd = os.open(x.filename, os.O_RDONLY)
            self.offset, self.row_bytes = int(x.offset), x[0].nbytes if len(x) else 0

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self.fd is None:
            return np.asarray(self.x[rows])
        out = np.empty((len(rows), *self.x.shape[1:]), dtype=self.x.dtype)
        for i, row in enumerate(np.asarray(rows).tolist()):
            self._read_into(out[i], self.offset + row * self.row_bytes)
        return out

    def span(self, start: int, stop: int) -> np.ndarray:
        """`x[start:stop]` as one plain array, in one read from a file."""
        if self.fd is None:
            return np.asarray(self.x[start:stop])
        out = np.empty((max(0, stop - start), *self.x.shape[1:]), dtype=self.x.dtype)
        self._read_into(out, self.offset + start * self.row_bytes)
        return out

    def _read_into(self, out: np.ndarray, offset: int) -> None:
        if os.preadv(self.fd, [out], offset) != out.nbytes:
            raise OSError(f"the cached images file {self.x.filename} is shorter than it says.")
