"""Tests for the dataset layouts `load_dataset` and `inspect_source` accept (issue 12, part 1):
class folders with or without a split, split folder names in any case, a validation folder,
wrapper folders, NFC class names, symbolic links, and what is refused. Tiny 8x8 PNGs in tmp_path,
as folders, .zip and .tar.gz archives.
"""

from __future__ import annotations

import os
import stat
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_core.datasets import Dataset, inspect_source, load_dataset
from cnn_core.errors import DataError

KINDS = ["folder", "zip", "tar.gz"]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNN_CORE_CACHE", str(cache))
    return cache


def colour(label: int) -> tuple[int, int, int]:
    return (60 * label + 10, 100, 250 - 60 * label)


def write_classes(folder: Path, counts: dict[str, int]) -> None:
    """`count` flat-colour 8x8 PNGs in folder/<class>/, one colour per class."""
    for label, (name, count) in enumerate(counts.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (8, 8), colour(label)).save(folder / name / f"{i:02d}.png")


def pack(folder: Path, kind: str) -> Path:
    """The folder itself, or a .zip / .tar.gz of what is inside it (its entries at the top)."""
    if kind == "folder":
        return folder
    archive = folder.with_name(f"{folder.name}.{kind}")
    entries = sorted(folder.rglob("*"))
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for path in entries:
                zf.write(path, path.relative_to(folder).as_posix())
    else:
        with tarfile.open(archive, "w:gz") as tar:
            for path in entries:
                tar.add(path, path.relative_to(folder).as_posix(), recursive=False)
    return archive


def labels_match_files(data: Dataset) -> None:
    """Every image's label is the class folder its file sits in; files and arrays line up."""
    for x, y, files in (
        (data.x_train, data.y_train, data.train_files),
        (data.x_test, data.y_test, data.test_files),
        (data.x_val, data.y_val, data.val_files),
    ):
        if x is None:
            continue
        assert len(x) == len(y) == len(files)
        for pixels, label, name in zip(x, y, files, strict=True):
            assert data.class_names[label] in name.split("/")[:-1]
            assert tuple(pixels[0, 0]) == colour(int(label))


# --------------------------------------------------------------------------- class folders only


@pytest.mark.parametrize("kind", KINDS)
def test_class_folders_without_a_split_get_a_stratified_test_split(
    tmp_path: Path, kind: str
) -> None:
    write_classes(tmp_path / "photos", {"cat": 10, "dog": 5, "frog": 2})
    data = load_dataset(pack(tmp_path / "photos", kind), image_size=(8, 8))
    assert data.class_names == ("cat", "dog", "frog")
    assert np.bincount(data.y_test).tolist() == [2, 1, 1]  # 20%, and one of every class
    assert np.bincount(data.y_train).tolist() == [8, 4, 1]
    assert set(data.train_files).isdisjoint(data.test_files)
    assert len(data.train_files) + len(data.test_files) == data.found == 17
    assert data.train_files[0] == "cat/00.png" or data.test_files[0].startswith("cat/")
    labels_match_files(data)
    assert "without a split" in data.layout and "20%" in data.layout
    assert any("stratified 20% test split" in line for line in data.warnings)
    assert data.x_val is None and data.val_files is None


def test_the_split_is_the_same_for_the_same_files_and_follows_test_split(tmp_path: Path) -> None:
    write_classes(tmp_path / "photos", {"cat": 10, "dog": 10})
    first = load_dataset(tmp_path / "photos", image_size=(8, 8), cache=False)
    again = load_dataset(tmp_path / "photos", image_size=(8, 8), cache=False)
    assert first.test_files == again.test_files
    cached = load_dataset(tmp_path / "photos", image_size=(8, 8))  # written to the cache
    assert cached.test_files == first.test_files
    half = load_dataset(tmp_path / "photos", image_size=(8, 8), test_split=0.5)  # not that cache
    assert np.bincount(half.y_test).tolist() == [5, 5]
    assert load_dataset(tmp_path / "photos", image_size=(8, 8)).test_files == first.test_files
    with pytest.raises(DataError, match="test_split must be a fraction between 0 and 1"):
        load_dataset(tmp_path / "photos", test_split=1.0)


# ----------------------------------------------------------------------------------- split names


@pytest.mark.parametrize(
    ("train", "test"),
    [("Train", "TEST"), ("training", "testing"), ("TRAINING", "Testing")],
)
def test_split_folder_names_in_any_case(tmp_path: Path, train: str, test: str) -> None:
    write_classes(tmp_path / "d" / train, {"cat": 3, "dog": 3})
    write_classes(tmp_path / "d" / test, {"cat": 1, "dog": 2})
    for kind in ("folder", "zip"):
        data = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8), cache=False)
        assert (len(data.y_train), len(data.y_test)) == (6, 3)
        assert data.test_files[0] == f"{test}/cat/00.png"
        assert data.layout == f"{train}/ and {test}/ class folders"
        labels_match_files(data)


@pytest.mark.parametrize("kind", KINDS)
def test_train_and_val_only_val_is_the_test_set(tmp_path: Path, kind: str) -> None:
    write_classes(tmp_path / "d" / "train", {"cat": 3, "dog": 3})
    write_classes(tmp_path / "d" / "val", {"cat": 1, "dog": 1})
    data = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8))
    assert data.test_files == ("val/cat/00.png", "val/dog/00.png")
    assert data.x_val is None
    assert any("val/ is used as the test set" in line for line in data.warnings)


@pytest.mark.parametrize("kind", KINDS)
def test_a_validation_folder_beside_test_is_the_validation_set(tmp_path: Path, kind: str) -> None:
    write_classes(tmp_path / "d" / "train", {"cat": 4, "dog": 4})
    write_classes(tmp_path / "d" / "valid", {"cat": 2, "dog": 1})
    write_classes(tmp_path / "d" / "test", {"cat": 1, "dog": 1})
    data = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8))
    assert data.x_val is not None and data.y_val is not None
    assert data.x_val.shape == (3, 8, 8, 3) and data.y_val.tolist() == [0, 0, 1]
    assert data.val_files == ("valid/cat/00.png", "valid/cat/01.png", "valid/dog/00.png")
    assert (len(data.y_train), len(data.y_test)) == (8, 2)
    assert data.layout == "train/, valid/ and test/ class folders"
    assert any("valid/ is the validation set" in line for line in data.warnings)
    labels_match_files(data)
    cached = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8))  # from the cache
    assert cached.val_files == data.val_files and np.array_equal(cached.x_val, data.x_val)


def test_the_trainer_uses_the_validation_folder(tmp_path: Path) -> None:
    from cnn_core.config import TrainConfig
    from cnn_core.train import split_data

    write_classes(tmp_path / "d" / "train", {"cat": 6, "dog": 6})
    write_classes(tmp_path / "d" / "validation", {"cat": 2, "dog": 2})
    write_classes(tmp_path / "d" / "test", {"cat": 1, "dog": 1})
    data = load_dataset(tmp_path / "d", image_size=(8, 8))
    x_train, y_train, x_val, y_val = split_data(data, TrainConfig(validation_split=0.5), seed=1)
    assert len(y_train) == 12 and x_val is data.x_val and y_val is data.y_val
    quick = load_dataset(tmp_path / "d", image_size=(8, 8), limit=5)  # chosen before decoding
    x_train, y_train, x_val, _ = split_data(quick, TrainConfig(limit=5), seed=1)
    assert len(x_train) == len(y_train) == 5 and len(x_val) == 2  # the same share: 5 of 12


# -------------------------------------------------------------------------------------- wrappers


@pytest.mark.parametrize("kind", KINDS)
def test_a_dataset_inside_wrapper_folders(tmp_path: Path, kind: str) -> None:
    inner = tmp_path / "dl" / "archive" / "My Dataset"
    write_classes(inner / "train", {"cat": 2, "dog": 2})
    write_classes(inner / "test", {"cat": 1, "dog": 1})
    (tmp_path / "dl" / "archive" / "README.txt").write_text("from Kaggle")
    source = pack(tmp_path / "dl", kind)
    data = load_dataset(source, image_size=(8, 8))
    assert (len(data.y_train), len(data.y_test)) == (4, 2)
    assert data.layout == "train/ and test/ class folders inside archive/My Dataset/"
    assert data.warnings == ()
    assert inspect_source(source).problem is None


def test_class_folders_without_a_split_inside_wrappers(tmp_path: Path) -> None:
    write_classes(tmp_path / "dl" / "a" / "b" / "photos", {"cat": 5, "dog": 5})
    for kind in ("folder", "tar.gz"):
        data = load_dataset(pack(tmp_path / "dl", kind), image_size=(8, 8), cache=False)
        assert data.class_names == ("cat", "dog") and len(data.y_test) == 2
        assert data.test_files[0].startswith("cat/")


# ------------------------------------------------------------------------- names and links


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_class_names_are_compared_in_nfc(tmp_path: Path, kind: str) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    write_classes(tmp_path / "d" / "train", {nfc: 2, "thé": 2})
    write_classes(tmp_path / "d" / "test", {nfd: 1, "thé": 1})  # copied from a Mac
    data = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8))
    assert data.class_names == (nfc, "thé")
    assert data.y_test.tolist() == [0, 1]


def test_linked_class_folders_inside_the_dataset_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_classes(root / "pool", {"cat": 3, "dog": 3})
    write_classes(root / "train", {"dog": 3})
    (root / "train" / "cat").symlink_to(root / "pool" / "cat", target_is_directory=True)
    (root / "pool" / "cat" / "loop").symlink_to(root / "pool", target_is_directory=True)
    write_classes(root / "test", {"cat": 1, "dog": 1})
    data = load_dataset(root, image_size=(8, 8))
    assert data.class_names == ("cat", "dog")
    assert data.train_files[:3] == ("train/cat/00.png", "train/cat/01.png", "train/cat/02.png")
    assert inspect_source(root).problem is None


def test_a_class_folder_linked_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    write_classes(tmp_path / "elsewhere", {"cat": 2})
    root = tmp_path / "d"
    write_classes(root / "train", {"dog": 2})
    write_classes(root / "test", {"cat": 1, "dog": 1})
    (root / "train" / "cat").symlink_to(tmp_path / "elsewhere" / "cat", target_is_directory=True)
    with pytest.raises(DataError, match=r"train/cat in .* is a symbolic link to .*elsewhere.*"):
        load_dataset(root, image_size=(8, 8))


def test_a_file_linked_outside_the_dataset_is_counted_not_read(tmp_path: Path) -> None:
    write_classes(tmp_path / "elsewhere", {"cat": 1})
    root = tmp_path / "d"
    write_classes(root, {"cat": 3, "dog": 3})
    os.symlink(tmp_path / "elsewhere" / "cat" / "00.png", root / "cat" / "linked.png")
    data = load_dataset(root, image_size=(8, 8))
    assert (data.found, data.skipped) == (7, 1)
    assert any("cat/linked.png was not read (a symbolic link to" in w for w in data.warnings)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_links_in_archives_are_counted_and_listed_not_followed(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "d"
    write_classes(root, {"cat": 3, "dog": 3})
    archive = pack(root, kind)
    if kind == "zip":  # zipfile.write follows links: the link entry is written by hand
        link = zipfile.ZipInfo("cat/secret.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        with zipfile.ZipFile(archive, "a") as zf:
            zf.writestr(link, "/etc/passwd")
    else:
        os.symlink("/etc/passwd", root / "cat" / "secret.png")
        archive = pack(root, kind)
    data = load_dataset(archive, image_size=(8, 8))
    assert (data.found, data.skipped, len(data.y_train) + len(data.y_test)) == (7, 1, 6)
    assert any("cat/secret.png was not read (a" in w and "link" in w for w in data.warnings)


# -------------------------------------------------------------------------------------- refusals


def refusals(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    flat = tmp_path / "flat"
    write_classes(tmp_path, {"flat": 3})  # images, no class folders
    single = tmp_path / "single"
    write_classes(single, {"cat": 3})  # one class folder
    twice = tmp_path / "twice"
    write_classes(twice / "train", {"cat": 2, "dog": 2})
    write_classes(twice / "Train", {"cat": 2, "dog": 2})
    write_classes(twice / "test", {"cat": 1, "dog": 1})
    lonely = tmp_path / "lonely"
    write_classes(lonely, {"cat": 1, "dog": 1, "frog": 1})
    unsorted = tmp_path / "unsorted"
    write_classes(unsorted, {"Training": 2, "Testing": 2})  # photos straight in the split folders
    return {
        "flat": (flat, r"no class folders \(found no folders and 3 file\(s\)\); put the images"),
        "single": (single, r"no class folders \(found no folders and 3 file\(s\) inside cat/\)"),
        "twice": (twice, r"has both Train/ and train/ folders, two names for the same split"),
        "lonely": (lonely, r"found folders cat/, dog/, frog/, each a class with fewer than 2"),
        "unsorted": (unsorted, r"The Training/ folder in .* has no class folders \(found 2 file"),
    }


@pytest.mark.parametrize("kind", ["folder", "zip"])
@pytest.mark.parametrize("case", ["flat", "single", "twice", "lonely", "unsorted"])
def test_what_cannot_be_read_says_what_was_found(tmp_path: Path, case: str, kind: str) -> None:
    folder, words = refusals(tmp_path)[case]
    with pytest.raises(DataError, match=words):
        load_dataset(pack(folder, kind), image_size=(8, 8))
    if case in ("flat", "single", "twice"):  # the cheap look refuses these too
        assert inspect_source(pack(folder, kind)).problem is not None


# ------------------------------------------------------------------------- the look before a run


def test_the_look_before_a_run_accepts_every_layout_that_loads(tmp_path: Path) -> None:
    write_classes(tmp_path / "plain", {"cat": 2, "dog": 2})
    write_classes(tmp_path / "cased" / "Training", {"cat": 2, "dog": 2})
    write_classes(tmp_path / "cased" / "Testing", {"cat": 1, "dog": 1})
    write_classes(tmp_path / "wrapped" / "a" / "b" / "train", {"cat": 2, "dog": 2})
    write_classes(tmp_path / "wrapped" / "a" / "b" / "val", {"cat": 1, "dog": 1})
    for name in ("plain", "cased", "wrapped"):
        info = inspect_source(tmp_path / name)
        assert info.problem is None, info.problem
        load_dataset(tmp_path / name, image_size=(8, 8))
    assert "no split" in inspect_source(tmp_path / "plain").description
    assert inspect_source(tmp_path / "wrapped").description.endswith("(a/b)")
