"""Two file habits, each in one place: writing atomically and reading within a bound.

`atomic_write_*` and `atomic_path` write so that a reader sees the old file or the new one, never
half of one (a temp file beside the target, then `os.replace`); a killed writer leaves its temp
file behind, named with its pid so that `remove_dead_writers_files` knows it as litter.
`read_bounded` reads a file only if it is a regular file (not a FIFO that would block, not a
device that never ends) of at most a given size. Nothing here knows what the files hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # a FIFO opens at once


class UnsafeFileError(OSError):
    """A file that is not a regular file of its own (a FIFO, a device, a link) or too big."""


class NotRegularFileError(UnsafeFileError):
    """A folder, FIFO, device or (when links are refused) a link, where a file was expected."""

    def __init__(self, message: str, *, folder: bool = False) -> None:
        super().__init__(message)
        self.folder = folder  # a folder: callers word that case on its own


class FileTooLargeError(UnsafeFileError):
    """A file over the size its reader accepts."""

    def __init__(self, message: str, *, size: int, cap: int) -> None:
        super().__init__(message)
        self.size, self.cap = size, cap


# --- atomic writes ----------------------------------------------------------------------------


def _temp_name(path: Path, suffix: str) -> str:
    # The writer's pid in the name: what a killed writer leaves is known as litter.
    return f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp{suffix}"


@contextlib.contextmanager
def atomic_path(path: Path, *, suffix: str = "") -> Iterator[Path]:
    """A temp path beside `path` to write to (for writers that take a path, such as Keras' save);
    renamed to `path` when the block ends without error, deleted otherwise. `suffix`: an ending
    the writer insists on (".keras", ".weights.h5")."""
    path = Path(path)
    tmp = path.with_name(_temp_name(path, suffix))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A temp folder beside `path` to fill; when the block ends without error it becomes `path`,
    replacing a folder already there, so that `path` holds the old contents or the new, never
    half of either. Deleted otherwise."""
    path = Path(path)
    folder = path.with_name(_temp_name(path, ""))
    folder.mkdir()
    try:
        yield folder
        if not path.exists():
            os.replace(folder, path)
            return
        old = path.with_name(_temp_name(path, ".old"))
        os.replace(path, old)
        try:
            os.replace(folder, path)
        except OSError:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], Any], *, sync: bool = True) -> None:
    """Call `write` on a temp file beside `path`, flush it to disk (unless not `sync`: a cache
    that can be rebuilt), then rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half;
    `sync`: on disk before the rename (see `atomic_write_with`)."""
    atomic_write_with(path, lambda handle: handle.write(data), sync=sync)


def atomic_write_text(path: Path, text: str, *, sync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), sync=sync)


def atomic_write_json(path: Path, data: Any, *, sync: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n", sync=sync)


def remove_dead_writers_files(folder: Path, *, alive: Callable[[int], bool]) -> None:
    """Delete temporary files whose writer (the pid in their name) is not `alive`: a killed
    process leaves its half-written file behind, never in place of the real one."""
    for path in Path(folder).glob(".*.tmp*"):
        match = re.search(r"\.(\d+)\.", path.name)
        if match and not alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()


# --- bounded reads ----------------------------------------------------------------------------


def open_regular(path: Path, *, follow_links: bool = False) -> int:
    """A read-only descriptor of `path` if it is a regular file, never a FIFO or a device (and,
    unless `follow_links`, never a link): opening one of those could block or read without end.
    Raises OSError (`NotRegularFileError` for the refused kinds)."""
    flags = _OPEN_FLAGS if follow_links else _OPEN_FLAGS | os.O_NOFOLLOW  # a link fails: ELOOP
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(
                f"{Path(path).name} is not a regular file", folder=stat.S_ISDIR(mode)
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(
    path: Path, cap: int, *, start: int = 0, partial: bool = False, follow_links: bool = False
) -> bytes:
    """The file's bytes from `start`, if it is a regular file of at most `cap` bytes from there,
    or with `partial` its first `cap` bytes from there. Raises OSError: `NotRegularFileError`,
    `FileTooLargeError` (refused before reading when its size says so), or the system's."""
    fd = open_regular(path, follow_links=follow_links)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if not partial and size - start > cap:
            raise _too_large(path, size, cap)
        if start:
            handle.seek(start)
        data = handle.read(cap + 1)  # +1: a file that grew since fstat() still fails the cap
    if partial:
        return data[:cap]
    if len(data) > cap:
        raise _too_large(path, start + len(data), cap)
    return data


def _too_large(path: Path, size: int, cap: int) -> FileTooLargeError:
    return FileTooLargeError(f"{Path(path).name} is over {cap >> 20} MB", size=size, cap=cap)


def is_regular(path: Path) -> bool:
    """Whether `path` itself (not what a link points to) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
