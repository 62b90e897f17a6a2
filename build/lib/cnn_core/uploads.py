"""Dataset archives uploaded through the dashboard, saved to disk where a run can find them again.

`save_upload` copies a file-like object (Streamlit's `UploadedFile`, an open file) in chunks into
a temporary file in `settings.uploads_dir()`, hashing as it goes; it refuses the upload when it
grows past the limit, is not a zip or tar archive by content or cannot be read to its end (each
member is read once, as loading will, one at a time), and otherwise renames it to
`<uploads>/<first 16 hex digits of its SHA-256>/<its own name>`. The same content uploaded twice is
one file. Nothing is ever extracted: the saved archive is a dataset source like any other, checked
and read by `cnn_core.datasets`.

This module does not know about Streamlit, layouts or images; it only stores bytes safely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from cnn_core import settings
from cnn_core.data.archives import archive_kind, iter_archive
from cnn_core.errors import DataError

CHUNK_BYTES = 2**20  # one chunk in memory at a time, whatever the upload's size
HASH_DIGITS = 16  # of the SHA-256: a folder name that no two different archives share
MAX_NAME_CHARS = 100
_UNSAFE = re.compile(r"[^\w.\- ()+]")  # kept: letters, digits, _ . - space ( ) +


@dataclasses.dataclass(frozen=True)
class SavedUpload:
    """An uploaded archive as stored: give `path` as the dataset source."""

    path: Path  # absolute: <uploads>/<hash>/<name>
    name: str  # the name it was uploaded with, for display
    size: int  # bytes


def save_upload(
    stream: BinaryIO,
    *,
    name: str,
    max_bytes: int | None = None,
    folder: Path | None = None,
) -> SavedUpload:
    """Store an uploaded dataset archive and return where it is.

    `max_bytes` defaults to `settings.max_dataset_upload_mb()` MB and `folder` to
    `settings.uploads_dir()`. Raises `DataError` when the upload is too large, is not a zip or
    tar archive (by content, whatever its name), cannot be read to its end or cannot be written;
    nothing is left behind then.
    """
    limit = settings.max_dataset_upload_mb() * 2**20 if max_bytes is None else max_bytes
    folder = (settings.uploads_dir() if folder is None else Path(folder)).expanduser().resolve()
    shown = Path(name.replace("\\", "/")).name or "the upload"
    size = getattr(stream, "size", None)  # Streamlit's UploadedFile knows it: refuse before copying
    if isinstance(size, int) and size > limit:
        raise _too_big(shown, size, limit)
    if hasattr(stream, "seek"):
        stream.seek(0)  # a page rerun hands over the same object again

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name_of_part = tempfile.mkstemp(dir=folder, prefix=".part-")
    except OSError as exc:
        raise _unwritable(shown, folder, exc) from None
    part = Path(name_of_part)
    try:
        with os.fdopen(fd, "wb") as handle:
            digest, total = _copy(stream, handle, label=shown, limit=limit, folder=folder)
        try:
            kind = archive_kind(part)
        except DataError:
            raise DataError(
                f"The upload {shown} is not a .zip, .tar or .tar.gz archive, or one cut short (its "
                "content was checked, not its name); pack the dataset's folders into one and "
                "upload that."
            ) from None
        target = folder / digest[:HASH_DIGITS] / _safe_name(shown)
        existing = _stored(target.parent)
        if existing is not None:  # the same content again: keep the first copy, its name too
            return SavedUpload(existing, shown, existing.stat().st_size)
        _read_through(part, kind, label=shown)  # the stored copy above was read through before
        target.parent.mkdir(exist_ok=True)
        os.replace(part, target)  # atomic: a reader sees the whole archive or none
    except OSError as exc:
        raise _unwritable(shown, folder, exc) from None
    finally:
        part.unlink(missing_ok=True)
    return SavedUpload(target, shown, total)


def _copy(
    stream: BinaryIO, out: BinaryIO, *, label: str, limit: int, folder: Path
) -> tuple[str, int]:
    """Copy in chunks, hashing; a DataError as soon as the copy passes `limit`."""
    hasher = hashlib.sha256()
    total = 0
    while chunk := stream.read(CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise _too_big(label, total, limit, at_least=True)
        hasher.update(chunk)
        try:
            out.write(chunk)
        except OSError as exc:
            raise _unwritable(label, folder, exc) from None
    if total == 0:
        raise DataError(f"The upload {label} is empty (0 bytes); upload the archive again.")
    return hasher.hexdigest(), total


def _read_through(path: Path, kind: str, *, label: str) -> None:
    """Read every member once, as loading will: a broken archive is refused now, not at Start
    (a look at its first entries, all that `inspect_source` does, misses a cut-short end)."""
    try:
        for _ in iter_archive(path, kind):
            pass
    except DataError as exc:
        raise DataError(str(exc).replace(str(path), label)) from None


def _stored(folder: Path) -> Path | None:
    """The archive already saved in a content folder, if there is one."""
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return files[0] if files else None


def _safe_name(name: str) -> str:
    """A file name that is safe on any file system and still reads like the original."""
    safe = _UNSAFE.sub("_", name).lstrip(". ")[-MAX_NAME_CHARS:]
    return safe or "dataset"


def _too_big(label: str, size: int, limit: int, *, at_least: bool = False) -> DataError:
    more = "more than " if at_least else ""
    return DataError(
        f"The upload {label} is {more}{size / 2**20:,.1f} MB, over the {limit / 2**20:,.0f} MB "
        "limit for a dataset archive; give a folder on this machine as the source instead, or "
        "raise CNN_CORE_MAX_DATASET_UPLOAD_MB."
    )


def _unwritable(label: str, folder: Path, exc: OSError) -> DataError:
    reason = exc.strerror or type(exc).__name__
    return DataError(
        f"The upload {label} could not be saved in {folder} ({reason}); free some space there, "
        "or set CNN_CORE_CACHE to a folder on a larger disk."
    )
