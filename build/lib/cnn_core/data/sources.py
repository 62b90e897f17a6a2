"""Dataset sources: what a source string names, a cheap look at it before a run, and loading it.

A source is ``cifar10`` (Keras downloads and caches it), the path to the official
``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py`` folder, or a folder (or a
``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive of one) holding one folder of images per class,
optionally inside split folders (``train/<class>/*`` and ``test/<class>/*``; `layout` has the
rules). `load_dataset` decodes each image once and caches the result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tarfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_core import images, settings
from cnn_core.balance import limited_rows
from cnn_core.data.archives import (
    Member,
    Payload,
    Spool,
    Unread,
    archive_kind,
    describe_archive,
    iter_archive,
    member_parts,
)
from cnn_core.data.cache import archive_identity, cache_file, read_cache, write_cache
from cnn_core.data.cifar import (
    BATCH_NAMES,
    CIFAR10_CLASSES,
    MAX_BATCH_BYTES,
    META,
    TEST_BATCH,
    from_batches,
    keras_cifar10_folder,
    load_keras_cifar10,
    parse_batch,
    parse_meta,
)
from cnn_core.data.dataset import (
    EXPECTED,
    Dataset,
    Decoding,
    Progress,
    check_size,
    first_line,
    ignored,
)
from cnn_core.data.decode import fit
from cnn_core.data.layout import (
    Listing,
    batch_folder,
    check_folders,
    find_root,
    from_tree,
    read_file,
    walk_folder,
)
from cnn_core.data.limits import Meter
from cnn_core.errors import DataError, UserError

log = logging.getLogger("cnn_core.datasets")

# ----------------------------------------------------------------------------- public entry points


def load_dataset(
    source: str | os.PathLike[str] | None = None,
    *,
    image_size: tuple[int, int] = (32, 32),
    channels: int = 3,
    cache: bool = True,
    progress: Progress | None = None,
    test_split: float = 0.2,
    limit: int | None = None,
) -> Dataset:
    """Load a dataset source as uint8 arrays of shape (N, *image_size, channels).

    `source=None` means `settings.data_source()`. `progress(done, total)` is called as images are
    decoded or resized. `test_split` is the fraction of each class held out for testing when the
    class folders come without a test folder (seeded: the same files give the same split).
    `limit`: a quick try's dataset, `limit` training images and the same share of the validation
    and test images, chosen per class before anything is decoded (`balance.limited_rows`).
    Raises `DataError` with a one-sentence explanation when the source cannot be used.
    """
    size = check_size(image_size)
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 (greyscale) or 3 (RGB), not {channels!r}.")
    if not isinstance(test_split, int | float) or not 0 < test_split < 1:
        raise DataError(f"test_split must be a fraction between 0 and 1, not {test_split!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a whole number of images (1 or more), not {limit!r}.")
    display = settings.data_source() if source is None else os.fspath(source)
    text = display.strip()
    started = time.perf_counter()
    if text.lower() == "cifar10":
        dataset = limit_arrays(load_keras_cifar10(display), limit)
        dataset = fit(dataset, size=size, channels=channels, progress=progress)
        dataset = _counted(dataset)
        log.info("loaded %s in %.1f s", display, time.perf_counter() - started)
        return dataset

    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"The dataset source {text} does not exist; give {EXPECTED}.")
    split: dict[str, object] = {"test_split": float(test_split)}
    split.update({"limit": limit} if limit is not None else {})
    how = Decoding(size, channels, progress, float(test_split), limit)
    if path.is_dir():
        listing = walk_folder(path)
        identity = {"kind": "folder", "path": str(path.resolve()), "listing": listing.digest()}

        def build(pixels_at: Path | None) -> Dataset:
            return _load_folder(path, listing, display, replace(how, cache=pixels_at))

    elif path.is_file():
        archive = archive_kind(path)
        identity = archive_identity(path, archive)

        def build(pixels_at: Path | None) -> Dataset:
            return _load_archive(path, archive, display, replace(how, cache=pixels_at))

    else:
        raise DataError(f"{text} is neither a folder nor a file; give {EXPECTED}.")

    identity = {**identity, **split}  # why: another test_split or limit is another dataset
    cache_path = cache_file(identity, size=size, channels=channels, limit=limit) if cache else None
    if cache_path is not None:
        cached = read_cache(cache_path, source=display, size=size, channels=channels)
        if cached is not None:
            log.info("loaded %s from cache %s in %.2f s", display, cache_path, _since(started))
            return cached
    dataset = build(cache_path)  # the pixels are decoded straight into the cache's files
    if cache_path is not None:
        write_cache(cache_path, dataset)
        # why: the memory-mapped copy costs no RAM; the decoded arrays are freed on return
        cached = read_cache(cache_path, source=display, size=size, channels=channels)
        dataset = cached if cached is not None else dataset
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
    # A user's own images: a folder or archive of image folders, not CIFAR-10 (as batches, or
    # a folder of its ten classes); what a Transfer preset is for. An archive's classes are not
    # listed here, so an image-folder archive of CIFAR-10 counts as one too.
    own_images: bool = False


def inspect_source(
    source: str | os.PathLike[str] | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int = 3,
    test_split: float = 0.2,
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
            "", "no dataset source", problem=f"No dataset source given; give {EXPECTED}."
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
                problem=f"The dataset source {text} does not exist; give {EXPECTED}.",
            )
        if path.is_dir():
            return _inspect_folder(path, resolved)
        if path.is_file():
            return _inspect_file(
                path, resolved, image_size=image_size, channels=channels, test_split=test_split
            )
    except UserError as exc:  # the source, or a limit setting, that cannot be used
        return SourceInfo(resolved, f"{text} (not a usable dataset source)", problem=str(exc))
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        return SourceInfo(
            text,
            f"{text} (unreadable)",
            problem=f"{text} cannot be read ({reason}); check the path and its permissions.",
        )
    return SourceInfo(
        resolved,
        f"{text} (not a folder or file)",
        problem=f"{text} is neither a folder nor a file; give {EXPECTED}.",
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


def _inspect_keras_cifar10() -> SourceInfo:
    folder = keras_cifar10_folder()
    if (folder / TEST_BATCH).is_file():
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
    """The top levels only: down through single wrapper folders to the split or class folders."""
    files: dict[tuple[str, ...], int] = {}

    def folders_in(parts: tuple[str, ...]) -> list[str]:
        try:
            entries = [e for e in os.scandir(path.joinpath(*parts)) if not ignored(e.name)]
        except PermissionError:
            raise DataError(
                f"The folder {path.joinpath(*parts)} cannot be read (permission denied); check "
                "its permissions."
            ) from None
        names = {e.name for e in entries}
        if {TEST_BATCH, BATCH_NAMES[0]} & names and len(parts) <= 1:
            raise _Batches(path.joinpath(*parts))
        folders = sorted(e.name for e in entries if _is_folder(e))
        files[parts] = len(entries) - len(folders)
        return folders

    try:
        root, roles = find_root(folders_in, where=str(path))
    except _Batches as found:
        return SourceInfo(resolved, f"CIFAR-10 batches in {found.args[0]}")
    inner = f" ({'/'.join(root)})" if root else ""
    if roles:
        own = _not_cifar10(folders_in((*root, roles["train"])))  # roles always have train
        return SourceInfo(resolved, f"image folders in {path}{inner}", own_images=own)
    classes = folders_in(root)
    if len(classes) >= 2:
        description = f"class folders in {path}{inner} (no split: one is made)"
        return SourceInfo(resolved, description, own_images=_not_cifar10(classes))
    found = f"{files.get(root, 0)} file(s) and no folders"
    where = f"{path.joinpath(*root)}" if root else f"{path}"
    return SourceInfo(
        resolved,
        f"folder {path} (no class folders)",
        problem=f"The folder {where} has no train/ and test/ folders and no class folders (found "
        f"{found}); put the images in one folder per class, e.g. cat/ and dog/, optionally inside "
        "train/ and test/ folders.",
    )


def _not_cifar10(classes: list[str]) -> bool:
    return sorted(classes) != sorted(CIFAR10_CLASSES)


class _Batches(Exception):  # noqa: N818 - a finding, not an error: CIFAR-10 batch files are here
    pass


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # links too: loading follows those that point inside
    except OSError:
        return False


def _inspect_file(
    path: Path,
    resolved: str,
    *,
    image_size: tuple[int, int] | None,
    channels: int,
    test_split: float,
) -> SourceInfo:
    if images.has_dataset_suffix(path.name) or _looks_like_image(path):
        return SourceInfo(
            resolved,
            f"{path} (a single image)",
            problem=f"{path} is a single image, not a dataset; give the folder (or a .zip or "
            ".tar.gz) holding one folder of images per class. To classify one photo, use "
            "Predict.",
        )
    description = describe_archive(path)
    if archive_kind(path) == "zip" and not description.startswith("CIFAR-10"):
        _check_zip_folders(path)
    own = not description.startswith("CIFAR-10")
    if image_size is None:
        return SourceInfo(resolved, description, own_images=own)
    identity = {**archive_identity(path, archive_kind(path)), "test_split": float(test_split)}
    cache = cache_file(identity, size=check_size(image_size), channels=channels)
    return SourceInfo(resolved, description, cached=cache.is_file(), own_images=own)


def _check_zip_folders(path: Path) -> None:
    """A zip's directory is read whole, cheaply: refuse one that has no class folders at all."""
    with zipfile.ZipFile(path) as archive:
        infos = [(member_parts(info.filename), info.is_dir()) for info in archive.infolist()]
    if any(parts and parts[-1] in (*BATCH_NAMES, TEST_BATCH) for parts, _ in infos):
        return
    dirs = [parts for parts, is_dir in infos if parts and is_dir]
    files = [parts for parts, is_dir in infos if parts and not is_dir]
    check_folders(dirs, files, where=str(path))


def _looks_like_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.format is not None
    except Exception:  # why: whatever Pillow cannot open is not an image
        return False


def _load_folder(
    path: Path,
    listing: Listing,
    display: str,
    how: Decoding,
) -> Dataset:
    where = str(path)
    batch_dir = batch_folder(listing)
    has_images = any(images.has_dataset_suffix(parts[-1]) for parts, *_ in listing.files)
    if batch_dir is not None and not has_images:  # as in archives: image folders win
        parsed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        class_names = None
        for parts, file, file_size, _ in listing.files:
            name = parts[-1]
            if parts[:-1] != batch_dir or name not in (*BATCH_NAMES, TEST_BATCH, META):
                continue
            if file_size > MAX_BATCH_BYTES:
                raise DataError(f"{file} is too large to be a CIFAR-10 batch file.")
            data = read_file(Path(file))
            if name == META:
                class_names = parse_meta(data, label=file)
            else:
                parsed[name] = parse_batch(data, label=file)
        return _from_batches(parsed, class_names, display, how, where=where)
    members: list[tuple[tuple[str, ...], Payload]] = [
        (parts, file) for parts, file, *_ in listing.files
    ]
    members += [  # links to files outside the folder: counted and listed, never read
        (parts, Unread(f"a symbolic link to {target}, outside the dataset folder"))
        for parts, target in (listing.outside_files or {}).items()
    ]
    return from_tree(members, listing.dirs, display, how, where=where, outside=listing.outside)


def _load_archive(
    path: Path,
    kind: str,
    display: str,
    how: Decoding,
) -> Dataset:
    where = str(path)
    meter = Meter(where, kind="archive")
    with Spool(where, meter) as spool:  # the image files, until decoded; deleted after
        members: list[tuple[tuple[str, ...], Payload]] = []
        has_images = False  # whether image folders are here, which win over batch files
        dirs: set[tuple[str, ...]] = set()
        parsed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        class_names = None
        bad_batches: list[DataError] = []  # fatal only if this turns out to be a batches archive
        for member in iter_archive(path, kind, meter):
            name = member.parts[-1]
            label = f"{path}:{'/'.join(member.parts)}"
            try:
                if member.is_dir:
                    dirs.add(member.parts)
                elif name in (*BATCH_NAMES, TEST_BATCH) and member.head is not None:
                    parsed[name] = parse_batch(member.read(), label=label)  # now: arrays only
                elif name == META and member.head is not None:
                    class_names = parse_meta(member.read(), label=label)
                else:  # every other file: an image or not, by its content
                    members.append((member.parts, _payload(member, spool)))
                    has_images |= not isinstance(members[-1][1], Unread)
            except DataError as exc:
                bad_batches.append(exc)
        if (parsed or bad_batches) and not has_images:
            if bad_batches:
                raise bad_batches[0]
            return _from_batches(parsed, class_names, display, how, where=where)
        return from_tree(members, dirs, display, how, where=where)


NOT_AN_IMAGE = Unread("not an image, by its content")  # one object for all such files


def _payload(member: Member, spool: Spool) -> Payload:
    """Where an archive file is kept for decoding (the spool) when it starts like an image,
    whatever its name; else why not. Why by content: a member that cannot be an image (200,000
    one-byte "photos", say) then costs no spool, no decoding and no row of pixels."""
    if member.head is None:
        return Unread(member.problem)
    if images.looks_like_image(member.head):
        return spool.keep(member)
    return NOT_AN_IMAGE


def limit_arrays(dataset: Dataset, limit: int | None) -> Dataset:
    """A dataset of arrays (CIFAR-10's batches) cut as `limited_rows` chooses, with a note."""
    if limit is None or limit >= len(dataset.y_train):
        return dataset
    rows = limited_rows({"train": dataset.y_train, "test": dataset.y_test}, limit)
    train, test = rows["train"], rows["test"]
    note = (
        f"limit {limit}: {len(train)} of {len(dataset.y_train)} training images are used (and "
        f"{len(test)} of {len(dataset.y_test)} test images), chosen per class; the same limit "
        "picks the same images."
    )
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[train],
        y_train=dataset.y_train[train],
        x_test=dataset.x_test[test],
        y_test=dataset.y_test[test],
        warnings=(*dataset.warnings, note),
    )


def _from_batches(
    parsed: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: tuple[str, ...] | None,
    display: str,
    how: Decoding,
    *,
    where: str,
) -> Dataset:
    """CIFAR-10's batches (from a folder or an archive), limited and fitted to the input size."""
    dataset = limit_arrays(from_batches(parsed, class_names, display, where=where), how.limit)
    return _counted(fit(dataset, size=how.size, channels=how.channels, progress=how.progress))


def _counted(dataset: Dataset) -> Dataset:
    """CIFAR-10's arrays: every image found is used."""
    found = len(dataset.y_train) + len(dataset.y_test)
    return dataclasses.replace(dataset, found=found, layout="CIFAR-10 batches")


def _since(started: float) -> float:
    return time.perf_counter() - started
