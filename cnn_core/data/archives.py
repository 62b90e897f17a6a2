"""Tar and zip archives, read in memory one member at a time and never extracted, so a hostile
member path cannot write anywhere; links, devices and oversized members are never read."""

from __future__ import annotations

import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from cnn_core.data.cifar import BATCH_NAMES, META, TEST_BATCH
from cnn_core.data.dataset import EXPECTED, ignored
from cnn_core.errors import DataError

MAX_MEMBER_BYTES = 50 * 2**20  # archive members bigger than this are skipped, never read
MAX_MEMBERS = 2_000_000  # more entries than this is not a dataset we can hold in memory
MAX_ARCHIVE_BYTES = 4 * 2**30  # members are held in memory until decoded: refuse zip bombs
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")

# ------------------------------------------------------------------------------ archive sources


class Member(NamedTuple):
    parts: tuple[str, ...]
    data: bytes | None  # None: not read (a folder, too big, or unreadable)
    is_dir: bool = False
    problem: str = ""  # why a file was not read


class Unread(NamedTuple):
    """Stands in for the bytes of an archive member that could not be read."""

    reason: str


Payload = bytes | str | Unread  # an image file's bytes (archives) or path (folders)


def archive_kind(path: Path) -> str:
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
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise DataError(
            f"The archive {path} is corrupt or not a tar/zip archive; download or create it again."
        )
    raise DataError(f"{path} is not a recognised dataset source; give {EXPECTED}.")


def member_parts(name: str) -> tuple[str, ...] | None:
    """An archive member's path as parts, or None for hidden, macOS or path-escaping entries."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return None  # absolute: no dataset archive needs one, so it is not trusted
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts or any(p == ".." or ignored(p) for p in parts):
        return None
    return parts


def iter_archive(path: Path, kind: str) -> Iterator[Member]:
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


def _iter_tar(path: Path) -> Iterator[Member]:
    with tarfile.open(path, mode="r|*") as archive:  # streaming: one pass, nothing extracted
        count = 0
        while (info := archive.next()) is not None:
            count += 1
            if count > MAX_MEMBERS:
                raise _too_many(path)
            parts = member_parts(info.name)
            if parts is None:
                pass
            elif info.isdir():
                yield Member(parts, None, is_dir=True)
            elif info.issym() or info.islnk():  # never followed; counted and listed as skipped
                yield Member(parts, None, problem=f"a link to {info.linkname}, never followed")
            elif not info.isreg():
                pass  # devices, fifos: nothing a photo could be
            elif info.size > MAX_MEMBER_BYTES:
                yield Member(parts, None, problem=f"larger than {MAX_MEMBER_BYTES // 2**20} MB")
            else:
                stream = archive.extractfile(info)
                yield Member(parts, stream.read() if stream else b"")
            archive.members.clear()  # why: streaming mode otherwise keeps every header in memory
        if archive.fileobj.tell() < archive.offset + tarfile.BLOCKSIZE:
            # Why: tarfile ends quietly where a header is missing or cut short; a whole archive
            # ends with a block of zeros, so one that stops at a member's end was cut short.
            raise tarfile.ReadError("it ends in the middle")


def _iter_zip(path: Path) -> Iterator[Member]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _too_many(path)
        for info in infos:
            parts = member_parts(info.filename)
            if parts is None:
                continue
            if info.is_dir():
                yield Member(parts, None, is_dir=True)
                continue
            if stat.S_ISLNK(info.external_attr >> 16):  # never followed; counted as skipped
                yield Member(parts, None, problem="a symbolic link, never followed")
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                yield Member(parts, None, problem=f"larger than {MAX_MEMBER_BYTES // 2**20} MB")
                continue
            try:
                member = Member(parts, archive.read(info))
            except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as exc:
                # One damaged or encrypted member: skip it like an unreadable image.
                member = Member(parts, None, problem=str(exc) or type(exc).__name__)
            yield member


def describe_archive(path: Path) -> str:
    kind = archive_kind(path)
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
    parts = [p for p in (member_parts(name) for name in first) if p]
    if any(p[-1] in (TEST_BATCH, *BATCH_NAMES, META) for p in parts):
        return f"CIFAR-10 archive {path}"
    tops = sorted({p[0] for p in parts if len(p) > 1})
    inner = f" ({tops[0]})" if len(tops) == 1 and tops[0] not in ("train", "test") else ""
    return f"image-folder archive {path}{inner}"
