"""Where the images are: a folder tree listed once, and the train/ and test/ class folders found
in it (at its top or inside one top-level folder), for folders and archives alike."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnn_core import images
from cnn_core.data.archives import Payload, Unread
from cnn_core.data.cifar import BATCH_NAMES, TEST_BATCH
from cnn_core.data.dataset import MAX_LISTED_WARNINGS, Dataset, Progress, ignored
from cnn_core.data.decode import decode_images
from cnn_core.errors import DataError

log = logging.getLogger("cnn_core.datasets")

# ------------------------------------------------------------------------------- folder sources


class Listing(NamedTuple):
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


def walk_folder(root: Path) -> Listing:
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
            if ignored(entry.name):
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
    return Listing(files, dirs)


def batch_folder(listing: Listing) -> tuple[str, ...] | None:
    """Where the official batch files are: the folder itself or its one sub-folder, if anywhere."""
    by_parent: dict[tuple[str, ...], set[str]] = {}
    for parts, *_ in listing.files:
        by_parent.setdefault(parts[:-1], set()).add(parts[-1])
    for parent in sorted(by_parent, key=len):
        if len(parent) <= 1 and {TEST_BATCH, BATCH_NAMES[0]} & by_parent[parent]:
            return parent
    return None


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}); check its permissions.") from None


# ---------------------------------------------------------------------------- image-folder trees


def from_tree(
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
    readable = [i for i, item in enumerate(items) if not isinstance(item[2], Unread)]
    x, ok, failures = decode_images(
        [items[i][2] for i in readable],
        [items[i][0] for i in readable],
        size=size,
        channels=channels,
        progress=progress,
    )
    failures += [
        f"{name} was not read ({p.reason})." for name, _, p in items if isinstance(p, Unread)
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
