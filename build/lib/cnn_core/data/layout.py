"""Where the images are: a folder tree listed once, and the class folders found in it, for folders
and archives alike.

The class folders sit in split folders (train/ and test/, val/ or valid/ beside them, training/ and
testing/, in any letter case) or, without a split, directly in the dataset's folder; that folder
may be inside any number of single wrapper folders (archive/My Dataset/...). Class folders without
a split get a seeded, stratified test split. Class names are compared in Unicode NFC. Every file in
a class folder is decoded by its content; this module only decides which file belongs where.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np

from cnn_core import images
from cnn_core.balance import limited_rows, stratified_split
from cnn_core.data.archives import Payload, Spooled, Unread
from cnn_core.data.cifar import BATCH_NAMES, TEST_BATCH
from cnn_core.data.dataset import MAX_LISTED_WARNINGS, Dataset, Decoding, ignored
from cnn_core.data.decode import decode_images
from cnn_core.data.limits import Meter
from cnn_core.data.pixels import Pixels
from cnn_core.errors import DataError
from cnn_core.images import DATASET_FORMATS

log = logging.getLogger("cnn_core.datasets")

# ------------------------------------------------------------------------------- folder sources


class Listing(NamedTuple):
    """Every visible file (relative parts, path, size, mtime) and folder under a source folder,
    and the symbolic links in it that point outside it (relative parts -> target), never read:
    to folders (`outside`) and to files (`outside_files`)."""

    files: list[tuple[tuple[str, ...], str, int, int]]
    dirs: set[tuple[str, ...]]
    outside: dict[tuple[str, ...], str] | None = None
    outside_files: dict[tuple[str, ...], str] | None = None

    def digest(self) -> str:
        h = hashlib.sha256()
        for parts, _, size, mtime in self.files:
            h.update(f"f\0{'/'.join(parts)}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
        for parts in sorted(self.dirs):
            h.update(f"d\0{'/'.join(parts)}\n".encode("utf-8", "surrogateescape"))
        links = {**(self.outside or {}), **(self.outside_files or {})}
        for parts, target in sorted(links.items()):
            h.update(f"l\0{'/'.join(parts)}\0{target}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()


def walk_folder(root: Path) -> Listing:
    """List the tree with `os.scandir` (the second, cached load of a big folder is mostly this).

    Symbolic links are followed only when they point inside `root`, each target once (so a link
    to its own parent cannot loop); links pointing outside are listed in `outside`, never read.
    Every entry is counted against the source limits (`limits`) as it is listed.
    """
    meter = Meter(str(root), kind="folder")
    files: list[tuple[tuple[str, ...], str, int, int]] = []
    dirs: set[tuple[str, ...]] = set()
    outside: dict[tuple[str, ...], str] = {}
    outside_files: dict[tuple[str, ...], str] = {}
    top = root.resolve()
    followed: set[Path] = set()  # link targets already walked
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
            parts = (*rel, entry.name)
            meter.entry("/".join(parts))
            try:
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if not target.is_relative_to(top):  # why: never read outside the dataset
                        (outside if target.is_dir() else outside_files)[parts] = str(target)
                        continue
                    if target.is_dir():
                        if target in followed or Path(folder).resolve().is_relative_to(target):
                            continue  # a second link to one folder, or a loop
                        followed.add(target)
                        dirs.add(parts)
                        pending.append((str(target), parts))
                        continue
                elif entry.is_dir(follow_symlinks=False):
                    dirs.add(parts)
                    pending.append((entry.path, parts))
                    continue
                info = entry.stat()
            except OSError:
                continue  # vanished, or a dangling link: not a file we could read anyway
            if stat.S_ISREG(info.st_mode):
                meter.add(info.st_size)
                files.append((parts, entry.path, info.st_size, info.st_mtime_ns))
    files.sort()
    return Listing(files, dirs, outside, outside_files)


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

SPLIT_NAMES = {  # folder names, NFC and case-folded, and the split each one is
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}
MAX_WRAPPERS = 8  # single folders around a dataset (archive/My Dataset/train/...) looked through
TEST_SPLIT_SEED = 20_260_012  # fixed: the same files always give the same test split
LISTED_PATHS = 5  # paths named in one-line notes
MAX_KEPT_FAILURES = 1000  # messages kept for files not read; the rest are only counted


def nfc(name: str) -> str:
    """A name in Unicode NFC, so folders copied from macOS (NFD) compare equal to the rest."""
    return unicodedata.normalize("NFC", name)


def split_roles(folders: Sequence[str], *, where: str) -> dict[str, str]:
    """{"train": name, "test": name, "val": name} for the split folders among `folders` when
    there is a training folder and a test or validation folder beside it; else empty."""
    roles: dict[str, str] = {}
    for name in sorted(folders):
        role = SPLIT_NAMES.get(nfc(name).casefold())
        if role is None:
            continue
        if role in roles:
            raise DataError(
                f"{where} has both {roles[role]}/ and {name}/ folders, two names for the same "
                f"split; merge them into one {role} folder."
            )
        roles[role] = name
    return roles if "train" in roles and roles.keys() & {"test", "val"} else {}


def find_root(
    children: Callable[[tuple[str, ...]], Sequence[str]], *, where: str
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Below any single wrapper folders, the folder that holds the split folders (its roles) or
    the class folders (no roles). `children(parts)` lists the folders in a folder. The one rule
    for folders and archives, for loading and for the cheap look before a run."""
    root: tuple[str, ...] = ()
    for _ in range(MAX_WRAPPERS):
        folders = children(root)
        roles = split_roles(folders, where=where)
        if roles or len(folders) != 1:
            return root, roles
        root = (*root, folders[0])  # a wrapper (or a lone train/ holding the class folders)
    return root, split_roles(children(root), where=where)


def folder_index(
    dirs: Iterable[tuple[str, ...]], files: Iterable[tuple[str, ...]]
) -> dict[tuple[str, ...], list[str]]:
    """Folder (relative parts) -> the names of the folders in it, sorted; from the folders and
    the files' paths (archives need not list folders)."""
    all_dirs = set(dirs)
    for parts in files:
        all_dirs.update(parts[:i] for i in range(1, len(parts)))
    children: dict[tuple[str, ...], list[str]] = {}
    for d in sorted(all_dirs):
        children.setdefault(d[:-1], []).append(d[-1])
    return children


def check_folders(
    dirs: Iterable[tuple[str, ...]], files: Sequence[tuple[str, ...]], *, where: str
) -> None:
    """Refuse, as `from_tree` would, a tree with no split or class folders, from its names alone
    (the cheap look at a zip, whose whole directory is read without decompressing anything)."""
    children = folder_index(dirs, files)
    root, roles = find_root(lambda parts: children.get(parts, []), where=where)
    if not roles and not children.get(root):
        raise _no_class_folders(root, children, list(files), where=where)


def from_tree(
    members: Sequence[tuple[tuple[str, ...], Payload]],
    dirs: set[tuple[str, ...]],
    display: str,
    how: Decoding,
    *,
    where: str,
    outside: Mapping[tuple[str, ...], str] | None = None,
) -> Dataset:
    """Find the class folders among `members` (relative parts, payload), split or not, and decode.

    The test split (of class folders without one) and `how.limit` are chosen before decoding;
    the images are decoded in the dataset's final order into `Pixels`: .npy files beside the
    cache's .npz `how.cache`, or arrays in RAM when it is None.

    `outside`: symbolic links (relative parts -> target) that point outside the dataset; one where
    a class folder or image is expected is refused."""
    outside = outside or {}
    if not any(_could_be_image(parts, payload) for parts, payload in members):
        example = f", none of them images, e.g. {'/'.join(members[0][0])}" if members else ""
        raise DataError(
            f"No images found in {where} (found {len(members)} file(s){example}); put photos "
            f"({images.format_names(DATASET_FORMATS)}) in one folder per class, e.g. cat/ and "
            "dog/, optionally inside train/ and test/."
        )
    children = folder_index(set(dirs) | set(outside), [parts for parts, _ in members])
    root, roles = find_root(lambda parts: children.get(parts, []), where=where)
    groups = {role: (*root, roles[role]) for role in ("train", "val", "test") if role in roles}
    if not groups:
        groups = {"all": root}
    if roles and "test" not in roles:  # train/ and val/ only: val/ is the test set
        groups = {"train": groups["train"], "test": groups["val"]}
    _refuse_outside_links(outside, groups.values(), where=where)

    class_names = _class_names(members, children, root, roles, groups, where=where)
    chosen, loose = _assign_files(members, root, groups, class_names, roles, where=where)

    items = [item for group in groups for item in chosen[group]]  # one pass, one set of workers
    labels = np.array([label for _, label, _ in items], dtype=np.int64)
    readable = np.array([not isinstance(p, Unread) for _, _, p in items], dtype=bool)
    sizes = [len(chosen[group]) for group in groups]
    group_of = np.repeat(np.arange(len(groups)), sizes)
    candidates = {  # items that may be images, per group: what the split and the limit choose from
        group: np.flatnonzero(readable & (group_of == g)) for g, group in enumerate(groups)
    }
    unread_count = sum(isinstance(p, Unread) for _, _, p in items)
    unread = [  # why the first few only: a bomb of 200,000 non-images would be 200,000 strings
        f"{name} was not read ({p.reason})."
        for name, _, p in itertools.islice(
            (item for item in items if isinstance(item[2], Unread)), MAX_KEPT_FAILURES
        )
    ]
    classes = _Classes(class_names, groups, root, where)
    _refuse_unreadable_classes(candidates, labels, classes, unread)
    if "all" in candidates:
        plan, split_notes = _split_off_test(
            candidates["all"], labels[candidates["all"]], class_names, how.test_split, where=where
        )
    else:
        plan, split_notes = candidates, _split_notes(roles)
    left_out = 0
    if how.limit is not None:
        plan, limit_note, left_out = _apply_limit(plan, labels, how.limit)
        split_notes += [limit_note] if limit_note else []
    notes = [
        *split_notes,
        *(
            f"{count} image(s) directly in {'/'.join(groups[group][len(root) :]) or where}/ are "
            "not in a class folder and were ignored."
            for group, count in loose.items()
            if count
        ),
    ]

    # Decode in the final order (train, validation, test), each chunk stored as it finishes.
    splits = [group for group in ("train", "val", "test") if group in plan]
    order = np.concatenate([plan[group] for group in splits])
    counts = {f"x_{group}": len(plan[group]) for group in splits}
    pixels = Pixels(counts, (*how.size, how.channels), how.cache)
    try:
        ok, failures, facts = decode_images(
            [items[i][2] for i in order],
            [items[i][0] for i in order],
            size=how.size,
            channels=how.channels,
            progress=how.progress,
            put=pixels.put,
        )
        spans = dict(zip(splits, _slices(plan, splits), strict=True))
        _refuse_undecoded_classes(spans, order, ok, labels, classes, failures)
        arrays = pixels.finish(ok)
    except BaseException:
        pixels.discard()
        raise
    if pixels.note:
        notes.append(f"Not cached: {pixels.note}; the images are held in memory.")
    failures = sorted([*failures, *unread])
    skipped = len(failures) + unread_count - len(unread)
    for message in failures[:MAX_LISTED_WARNINGS]:
        log.warning("skipped %s", message)
    if skipped > MAX_LISTED_WARNINGS:
        log.warning("skipped %d more unreadable files", skipped - MAX_LISTED_WARNINGS)
    used = order[ok]
    bounds = np.cumsum([0, *(int(ok[span].sum()) for span in spans.values())])
    part = {group: slice(int(bounds[i]), int(bounds[i + 1])) for i, group in enumerate(splits)}
    names = [items[i][0] for i in used]
    y = labels[used]
    found = len(items) - left_out
    val = "val" in plan
    return Dataset(
        x_train=arrays["x_train"],
        y_train=y[part["train"]],
        x_test=arrays["x_test"],
        y_test=y[part["test"]],
        class_names=class_names,
        source=display,
        skipped=skipped,
        warnings=(*notes, *_summarise(failures, skipped=skipped, found=found)),
        found=found,
        layout=_describe_layout(root, roles, how.test_split),
        train_files=tuple(names[part["train"]]),
        test_files=tuple(names[part["test"]]),
        x_val=arrays["x_val"] if val else None,
        y_val=y[part["val"]] if val else None,
        val_files=tuple(names[part["val"]]) if val else None,
        facts=facts[ok],
    )


def _class_names(
    members: Sequence[tuple[tuple[str, ...], Payload]],
    children: Mapping[tuple[str, ...], list[str]],
    root: tuple[str, ...],
    roles: dict[str, str],
    groups: dict[str, tuple[str, ...]],
    *,
    where: str,
) -> tuple[str, ...]:
    """The class folders' names (NFC), the same in every split folder, at least two of them."""
    classes = {
        group: sorted({nfc(name) for name in children.get(prefix, [])})
        for group, prefix in groups.items()
    }
    first = next(iter(groups))
    if not classes[first] and roles:
        split = roles["train"]
        loose_files = sum(1 for parts, _ in members if parts[:-1] == groups[first])
        raise DataError(
            f"The {split}/ folder in {where} has no class folders (found {loose_files} file(s) "
            f"directly in it); put its images in one folder per class, e.g. {split}/cat/ and "
            f"{split}/dog/, and the same in the other split folders."
        )
    if not classes[first]:
        raise _no_class_folders(root, children, [p for p, _ in members], where=where)
    for group in groups:
        _check_same_classes(classes, first, group, groups, where=where)
    class_names = tuple(classes[first])
    if len(class_names) < 2:
        folder = "/".join(groups[first]) or where
        raise DataError(
            f"{where} has {len(class_names)} class folder ({class_names[0]}/ in {folder}); a "
            "classifier needs at least two, one folder of images per class."
        )
    return class_names


def _assign_files(
    members: Sequence[tuple[tuple[str, ...], Payload]],
    root: tuple[str, ...],
    groups: dict[str, tuple[str, ...]],
    class_names: tuple[str, ...],
    roles: dict[str, str],
    *,
    where: str,
) -> tuple[dict[str, list[tuple[str, int, Payload]]], dict[str, int]]:
    """Each split group's files (relative name, label, payload) and its count of images lying
    loose beside the class folders; a class folder without a file is refused."""
    index = {name: i for i, name in enumerate(class_names)}
    # Every file in a class folder, any depth, whatever its name: opened by content below.
    chosen: dict[str, list[tuple[str, int, Payload]]] = {group: [] for group in groups}
    loose: dict[str, int] = dict.fromkeys(groups, 0)
    by_folder = {prefix: group for group, prefix in groups.items()}
    for parts, payload in sorted(members, key=lambda item: (tuple(map(nfc, item[0])), item[0])):
        for cut in (len(root) + 1, len(root)):
            group = by_folder.get(parts[:cut])
            if group is not None:
                break
        else:
            continue  # outside the split folders (a README beside them, say)
        if len(parts) == cut + 1:
            loose[group] += images.has_dataset_suffix(parts[-1])  # not in a class folder
            continue
        relative = "/".join(parts[len(root) :])
        chosen[group].append((relative, index[nfc(parts[cut])], payload))
    for group, items in chosen.items():
        counts = np.bincount([label for _, label, _ in items], minlength=len(class_names))
        for i in np.flatnonzero(counts == 0):
            folder = "/".join((*groups[group][len(root) :], class_names[i]))
            raise DataError(
                f"The class folder {folder} in {where} has no images; add images to it or "
                "remove it" + (f" from every split folder ({_folders(groups)})." if roles else ".")
            )
    return chosen, loose


class _Classes(NamedTuple):
    """Where a tree's class folders are, for messages that name one."""

    names: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]  # split -> its folder's parts
    root: tuple[str, ...]
    where: str  # the source, as the user gave it

    def refuse(self, group: str, label: int, failures: Sequence[str]) -> NoReturn:
        folder = "/".join((*self.groups.get(group, self.root)[len(self.root) :], self.names[label]))
        example = next((f for f in sorted(failures) if f.startswith(f"{folder}/")), "")
        example = f" ({example})" if example else ""  # why none: past the MAX_KEPT_FAILURES kept
        raise DataError(
            f"None of the images in {folder} in {self.where} could be read{example}; "
            f"replace them with {images.format_names(DATASET_FORMATS)} images."
        )


def _refuse_unreadable_classes(
    candidates: Mapping[str, np.ndarray],
    labels: np.ndarray,
    classes: _Classes,
    failures: Sequence[str],
) -> None:
    """Before decoding: refuse a class none of whose files in a split folder could be read."""
    for group, rows in candidates.items():
        counts = np.bincount(labels[rows], minlength=len(classes.names))
        if (counts == 0).any():
            classes.refuse(group, int(np.flatnonzero(counts == 0)[0]), failures)


def _refuse_undecoded_classes(
    spans: Mapping[str, slice],
    order: np.ndarray,
    ok: np.ndarray,
    labels: np.ndarray,
    classes: _Classes,
    failures: Sequence[str],
) -> None:
    """After decoding: refuse a class none of whose images in a split folder decoded. `spans`:
    where each split's items are in the decoding `order`; class folders without a split ("all")
    are judged on their train and test parts together."""
    tried: dict[str, np.ndarray] = {}
    decoded: dict[str, np.ndarray] = {}
    zero = np.zeros(len(classes.names), dtype=np.int64)
    for split, span in spans.items():
        group = "all" if "all" in classes.groups else split
        rows = order[span]
        tried[group] = tried.get(group, zero) + np.bincount(labels[rows], minlength=len(zero))
        done = np.bincount(labels[rows[ok[span]]], minlength=len(zero))
        decoded[group] = decoded.get(group, zero) + done
    for group in tried:
        lost = np.flatnonzero((tried[group] > 0) & (decoded[group] == 0))
        if len(lost):
            classes.refuse(group, int(lost[0]), failures)


def _slices(plan: Mapping[str, np.ndarray], splits: Sequence[str]) -> list[slice]:
    """Where each split's items sit in the decoding order."""
    bounds = np.cumsum([0, *(len(plan[group]) for group in splits)])
    return [slice(int(bounds[i]), int(bounds[i + 1])) for i in range(len(splits))]


def _apply_limit(
    plan: dict[str, np.ndarray], labels: np.ndarray, limit: int
) -> tuple[dict[str, np.ndarray], str | None, int]:
    """`plan` cut to `limit` training images and the same share of the others (`limited_rows`);
    a note saying so, and how many candidates were left out."""
    chosen = limited_rows({group: labels[rows] for group, rows in plan.items()}, limit)
    out = {group: plan[group][chosen[group]] for group in plan}
    left_out = sum(len(plan[g]) - len(out[g]) for g in plan)
    if not left_out:
        return plan, None, 0
    others = " and ".join(
        f"{len(out[g])} of {len(plan[g])} {'validation' if g == 'val' else 'test'} images"
        for g in ("val", "test")
        if g in plan
    )
    note = (
        f"limit {limit}: {len(out['train'])} of {len(plan['train'])} training images are used "
        f"(and {others}), chosen per class before decoding; the same limit picks the same files."
    )
    return out, note, left_out


def _could_be_image(parts: tuple[str, ...], payload: Payload) -> bool:
    """Cheaply: named as an image, or (a file without such a name) starting like one."""
    if isinstance(payload, Unread):
        return False
    if images.has_dataset_suffix(parts[-1]) or isinstance(payload, Spooled):  # spooled: sniffed
        return True
    if isinstance(payload, bytes):
        return images.looks_like_image(payload[:32])
    try:
        with open(payload, "rb") as f:
            return images.looks_like_image(f.read(32))
    except OSError:
        return True  # why: decoding will say what is wrong with it


def _split_off_test(
    rows: np.ndarray,
    row_labels: np.ndarray,
    class_names: tuple[str, ...],
    test_split: float,
    *,
    where: str,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The test split of class folders without one: seeded by a constant, so the same files
    always give the same split, and stratified, so every class with two images or more is in it."""
    kept, held = stratified_split(row_labels, test_split, seed=TEST_SPLIT_SEED)
    counts = np.bincount(row_labels, minlength=len(class_names))
    if not len(held):
        raise DataError(
            f"{where} has no train/ and test/ folders (found folders {_listed(class_names)}, "
            "each a class with fewer than 2 readable images); add at least 2 images to each class "
            "folder so a test split can be made, or give train/<class>/ and test/<class>/ folders."
        )
    notes = [
        f"Class folders without a split: a seeded, stratified {_percent(test_split)} test split "
        f"was made ({len(held)} of {len(rows)} images; the same files always give the same split)."
    ]
    single = [class_names[i] for i in np.flatnonzero(counts == 1)]
    if single:
        notes.append(
            f"{len(single)} class(es) have a single image, used for training only: "
            f"{', '.join(single[:LISTED_PATHS])}{', ...' if len(single) > LISTED_PATHS else ''}."
        )
    return {"train": rows[kept], "test": rows[held]}, notes


def _split_notes(roles: dict[str, str]) -> list[str]:
    if "val" not in roles:
        return []
    if "test" not in roles:
        return [f"There is no test folder, so {roles['val']}/ is used as the test set."]
    return [
        f"{roles['val']}/ is the validation set (used instead of a random validation split of "
        f"{roles['train']}/); {roles['test']}/ is the test set."
    ]


def _describe_layout(root: tuple[str, ...], roles: dict[str, str], test_split: float) -> str:
    inside = f" inside {'/'.join(root)}/" if root else ""
    if not roles:
        return (
            f"class folders without a split{inside}: a seeded, stratified "
            f"{_percent(test_split)} test split was made"
        )
    names = [f"{roles[r]}/" for r in ("train", "val", "test") if r in roles]
    listed = " and ".join(names) if len(names) < 3 else f"{names[0]}, {names[1]} and {names[2]}"
    return f"{listed} class folders{inside}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(f"{name}/" for name in names[:8])
    return shown + (", ..." if len(names) > 8 else "")


def _folders(groups: dict[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{prefix[-1]}/" for prefix in groups.values())


def _check_same_classes(
    classes: dict[str, list[str]],
    first: str,
    group: str,
    groups: dict[str, tuple[str, ...]],
    *,
    where: str,
) -> None:
    only_first = sorted(set(classes[first]) - set(classes[group]))
    only_here = sorted(set(classes[group]) - set(classes[first]))
    if only_first or only_here:
        a, b = groups[first][-1], groups[group][-1]
        raise DataError(
            f"The {a} and {b} folders in {where} have different classes (only in {a}: "
            f"{', '.join(only_first) or 'none'}; only in {b}: {', '.join(only_here) or 'none'}); "
            "give every split folder the same class folders."
        )


def _refuse_outside_links(
    outside: Mapping[tuple[str, ...], str],
    prefixes: Iterable[tuple[str, ...]],
    *,
    where: str,
) -> None:
    """A link to outside the dataset where class folders or images are: refused, never read."""
    for prefix in prefixes:
        for parts, target in sorted(outside.items()):
            if len(parts) > len(prefix) and parts[: len(prefix)] == prefix:
                raise DataError(
                    f"{'/'.join(parts)} in {where} is a symbolic link to {target}, outside the "
                    "dataset folder, and links are only followed inside it; copy or move that "
                    "folder into the dataset folder instead of linking to it."
                )


def _no_class_folders(
    root: tuple[str, ...],
    children: dict[tuple[str, ...], list[str]],
    files: list[tuple[str, ...]],
    *,
    where: str,
) -> DataError:
    """What was found where the class folders should be, and how to arrange them."""
    loose = sum(1 for parts in files if parts[:-1] == root)
    inside = f" inside {'/'.join(root)}/" if root else ""
    found = "no folders" + (f" and {loose} file(s)" if loose else "")
    return DataError(
        f"{where} has no train/ and test/ folders and no class folders (found {found}{inside}); "
        "put the images in one folder per class, e.g. cat/ and dog/, optionally inside train/ "
        "and test/ folders."
    )


def _summarise(failures: list[str], *, skipped: int, found: int) -> list[str]:
    """The count of files found, used and skipped, then the skipped ones by path (the first few)."""
    if not skipped:
        return []
    lines = [
        f"Found {found} file(s) in the class folders: {found - skipped} image(s) used, "
        f"{skipped} skipped (not images, or unreadable)."
    ]
    lines += failures[:MAX_LISTED_WARNINGS]
    if skipped > MAX_LISTED_WARNINGS:
        lines.append(f"... and {skipped - MAX_LISTED_WARNINGS} more.")
    return lines
