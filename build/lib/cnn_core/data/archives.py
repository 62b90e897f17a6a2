"""Tar and zip archives, streamed one member at a time and never extracted, so a hostile member
path cannot write anywhere; links, devices and oversized members are never read.

The files that could be images are copied, as they stream, into one temporary spool file in the
cache folder (`Spool`) and travel to decoding as (spool, offset, size): an archive of photos is
never held in memory. Every member is counted and metered against the source limits (`limits`)
while it streams, before its bytes are held.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

from cnn_core import settings
from cnn_core.data.cifar import BATCH_NAMES, META, TEST_BATCH
from cnn_core.data.dataset import EXPECTED, ignored
from cnn_core.data.limits import Limits, Meter
from cnn_core.errors import DataError

MAX_MEMBER_BYTES = 50 * 2**20  # archive members bigger than this are skipped, never read
HEAD = 32  # bytes read first from every member, enough to tell an image by its content
COPY_BLOCK = 2**20  # bytes copied at a time from a member into the spool
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")

# ------------------------------------------------------------------------------ archive sources


class Spooled(NamedTuple):
    """Where an archive member's bytes were copied: a span of the spool file."""

    path: str
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.size)


class Unread(NamedTuple):
    """Stands in for the bytes of an archive member that could not be read."""

    reason: str


# An image file's bytes (tests, CIFAR-10), path (folders) or span of a spool (archives).
Payload = bytes | str | Spooled | Unread


class Member(NamedTuple):
    """One archive member as it streams past: what `head` and `stream` hold is only valid until
    the next member is asked for."""

    parts: tuple[str, ...]
    head: bytes | None  # its first bytes; None: not read (a folder, too big, or unreadable)
    stream: IO[bytes] | None = None  # the rest of its bytes
    is_dir: bool = False
    problem: str = ""  # why a file was not read

    def read(self) -> bytes:
        """The whole member, in memory (CIFAR-10's batch files; each under MAX_MEMBER_BYTES)."""
        return (self.head or b"") + (self.stream.read() if self.stream else b"")


class Spool:
    """One temporary file in the cache folder holding the members kept for decoding, deleted on
    leaving the `with` block whatever happens."""

    def __init__(self, where: str, meter: Meter) -> None:
        self.where = where
        self.meter = meter
        self.path = ""
        self._file: IO[bytes] | None = None

    def __enter__(self) -> Spool:
        folder = settings.cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, self.path = tempfile.mkstemp(prefix="unpacking-", suffix=".spool", dir=folder)
        except OSError as exc:
            raise self._no_room(folder, exc) from None
        self._file = os.fdopen(handle, "wb")
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            if self._file is not None:
                self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def keep(self, member: Member) -> Spooled | Unread:
        """Copy the rest of `member` into the spool; Unread if it turns out damaged."""
        assert self._file is not None, "a Spool is used inside its with block"
        offset = self._file.tell()
        block = member.head or b""
        try:
            while block:
                self._write(block)
                block = member.stream.read(COPY_BLOCK) if member.stream is not None else b""
        except (zipfile.BadZipFile, zlib.error) as exc:  # a zip member's CRC, checked at its end
            self._file.seek(offset)
            self._file.truncate()
            return Unread(str(exc) or type(exc).__name__)
        self._write(b"")  # flush: decoding reads the spool from other processes
        return Spooled(self.path, offset, self._file.tell() - offset)

    def _write(self, block: bytes) -> None:
        """Write a block, or flush for b""; a full or unwritable disk is a `DataError`."""
        assert self._file is not None
        try:
            if block:
                self._file.write(block)
            else:
                self._file.flush()
        except OSError as exc:
            raise self._no_room(Path(self.path).parent, exc) from None

    def _no_room(self, folder: Path, exc: OSError) -> DataError:
        return DataError(
            f"The archive {self.where} cannot be unpacked into {folder} ({exc.strerror}); free "
            "some space there or set CNN_CORE_CACHE to a folder on a disk with room."
        )


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


CORRUPT = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError)


def iter_archive(path: Path, kind: str, meter: Meter | None = None) -> Iterator[Member]:
    """Every member of a tar or zip archive as it streams past, never extracted; each counted
    and metered by `meter` (the source limits, by default) before its bytes are read."""
    meter = meter or Meter(str(path), kind="archive", limits=Limits.from_settings())
    try:
        yield from _iter_zip(path, meter) if kind == "zip" else _iter_tar(path, meter)
    except CORRUPT as exc:
        raise _corrupt(path, exc) from None


def _corrupt(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"The archive {path} is corrupt or unreadable ({exc}); download or create it again."
    )


class _Guarded:
    """A tar member's stream: read by the caller between members, so a stream broken inside it
    is turned here into the corrupt-archive error that `iter_archive` gives."""

    def __init__(self, raw: IO[bytes] | None, path: Path) -> None:
        self.raw, self.path = raw, path

    def read(self, size: int = -1) -> bytes:
        try:
            return self.raw.read(size) if self.raw is not None else b""
        except CORRUPT as exc:
            raise _corrupt(self.path, exc) from None


class _Metered:
    """The archive file as tarfile reads it: every read is metered, so a compressed stream is
    refused as it inflates past a limit, not after (`_Stream.pos`: bytes inflated so far)."""

    def __init__(self, raw: IO[bytes], meter: Meter) -> None:
        self.raw, self.meter, self.packed = raw, meter, 0
        self.stream: object = None  # tarfile's stream, once open

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.packed += len(data)
        self.meter.reach(getattr(self.stream, "pos", 0), packed=self.packed)
        return data


def _iter_tar(path: Path, meter: Meter) -> Iterator[Member]:
    with open(path, "rb") as raw:
        metered = _Metered(raw, meter)
        # streaming: one pass, nothing extracted; fileobj, so that every read is metered
        with tarfile.open(fileobj=metered, mode="r|*") as archive:  # type: ignore[call-overload]
            metered.stream = archive.fileobj
            while (info := archive.next()) is not None:
                archive.members.clear()  # why: streaming mode otherwise keeps every header
                meter.reach(archive.offset, packed=metered.packed)  # inflated so far, all read
                meter.entry(info.name)
                meter.check(info.offset_data + info.size)  # declared: refused before inflating
                parts = member_parts(info.name)
                if parts is None:
                    pass
                elif info.isdir():
                    yield Member(parts, None, is_dir=True)
                elif info.issym() or info.islnk():  # never followed; counted and listed
                    yield Member(parts, None, problem=f"a link to {info.linkname}, never followed")
                elif not info.isreg():
                    pass  # devices, fifos: nothing a photo could be
                elif info.size > MAX_MEMBER_BYTES:
                    yield Member(parts, None, problem=f"larger than {MAX_MEMBER_BYTES // 2**20} MB")
                else:
                    stream = _Guarded(archive.extractfile(info), path)
                    yield Member(parts, stream.read(HEAD), stream)  # type: ignore[arg-type]
            if archive.fileobj.tell() < archive.offset + tarfile.BLOCKSIZE:
                # Why: tarfile ends quietly where a header is missing or cut short; a whole
                # archive ends with a block of zeros, so one that stops at a member's end was cut.
                raise tarfile.ReadError("it ends in the middle")


def _iter_zip(path: Path, meter: Meter) -> Iterator[Member]:
    meter.expect(_declared_entries(path))  # why first: zipfile holds every entry it reads
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        declared, packed = 0, path.stat().st_size  # why the file's size: entries may overlap
        for info in infos:  # the central directory: every check before a byte is inflated
            meter.entry(info.filename)
            declared += info.file_size
            meter.check(declared, packed=packed)
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
                stream = _Counted(archive.open(info), meter)
                head = stream.read(HEAD)
            except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as exc:
                # One damaged or encrypted member: skip it like an unreadable image.
                yield Member(parts, None, problem=str(exc) or type(exc).__name__)
                continue
            with stream.raw:
                yield Member(parts, head, stream)  # type: ignore[arg-type]


def _declared_entries(path: Path) -> int:
    """The entry count in a zip's end record (zipfile's own reader), 0 where it has none."""
    with open(path, "rb") as handle:
        end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]
    return int(end[zipfile._ECD_ENTRIES_TOTAL]) if end else 0  # type: ignore[attr-defined]


class _Counted:
    """A zip member's stream, metered as it inflates: zipfile stops at the declared size, which
    the central directory's checks already bound, and this counts what really came out."""

    def __init__(self, raw: IO[bytes], meter: Meter) -> None:
        self.raw, self.meter = raw, meter

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.meter.add(len(data))
        return data


def describe_archive(path: Path) -> str:
    kind = archive_kind(path)
    if kind == "zip":
        # why first: zipfile reads every entry of the directory; a zip of millions is refused
        Meter(str(path), kind="archive").expect(_declared_entries(path))
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
