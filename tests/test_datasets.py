"""Tests for `cnn_core.datasets` on tiny sources written in tmp_path in the real formats: image
folders (plain, tar.gz, zip), the official CIFAR-10 pickled batches, and a stand-in for Keras'
downloader. No network; the cache lives in tmp_path.
"""

from __future__ import annotations

import io
import os
import pickle
import stat
import struct
import sys
import tarfile
import types
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import imported_frameworks

from cnn_core import images, settings
from cnn_core.data import archives, decode
from cnn_core.datasets import CIFAR10_CLASSES, Dataset, describe_source, load_dataset
from cnn_core.errors import DataError

CLASSES = ("cat", "dog", "frog")
N_TRAIN, N_TEST = 4, 2


pytestmark = pytest.mark.usefixtures("cache_in_tmp")  # some tests look into tmp_path/cache


def colour(label: int) -> tuple[int, int, int]:
    return (40 * label + 20, 100, 200 - 40 * label)


def write_image(
    path: Path, label: int, *, fmt: str = "PNG", size: tuple[int, int] = (12, 10)
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour(label)).save(path, fmt)


def make_tree(root: Path, *, classes: tuple[str, ...] = CLASSES, fmt: str = "PNG") -> Path:
    """train/<class>/ and test/<class>/ with one flat colour per class (PNG keeps it exact)."""
    suffix = ".jpg" if fmt == "JPEG" else f".{fmt.lower()}"
    for split, count in (("train", N_TRAIN), ("test", N_TEST)):
        for label, name in enumerate(classes):
            for i in range(count):
                write_image(root / split / name / f"{i:03d}{suffix}", label, fmt=fmt)
    return root


def make_tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def make_zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, Path(folder.name, path.relative_to(folder)).as_posix())
    return archive


def assert_tree_dataset(data: Dataset, *, shape: tuple[int, int, int] = (32, 32, 3)) -> None:
    assert data.class_names == CLASSES
    assert data.x_train.shape == (N_TRAIN * len(CLASSES), *shape)
    assert data.x_test.shape == (N_TEST * len(CLASSES), *shape)
    assert data.x_train.dtype == data.x_test.dtype == np.uint8
    assert data.y_train.dtype == data.y_test.dtype == np.int64
    assert np.bincount(data.y_train).tolist() == [N_TRAIN] * len(CLASSES)
    if shape[-1] == 3:
        for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
            expected = np.array([colour(int(label)) for label in y], dtype=np.uint8)
            assert (x == expected[:, None, None, :]).all()  # each image is its class's colour


# ----------------------------------------------------------------------------- image-folder trees


def test_image_folders_at_the_root(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    data = load_dataset(root)
    assert_tree_dataset(data)
    assert data.source == str(root)
    assert (data.skipped, data.warnings) == (0, ())


def test_image_folders_inside_one_top_level_folder_with_litter(tmp_path: Path) -> None:
    make_tree(tmp_path / "src" / "pets")
    (tmp_path / "src" / "README.txt").write_text("about")
    (tmp_path / "src" / ".DS_Store").write_bytes(b"\0")
    write_image(tmp_path / "src" / "__MACOSX" / "train" / "cat" / "._000.png", 0)
    (tmp_path / "src" / "pets" / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "src" / "pets" / "train" / "dog" / "._000.png").write_bytes(b"resource fork")
    data = load_dataset(str(tmp_path / "src"))
    assert_tree_dataset(data)
    assert data.skipped == 1  # notes.txt, in a class folder: counted and listed (issue 12)
    assert any("train/cat/notes.txt is not a" in line for line in data.warnings)


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_image_folder_archives(tmp_path: Path, kind: str) -> None:
    folder = make_tree(tmp_path / "pets")
    archive = tmp_path / f"pets.{kind}"
    (make_tar if kind == "tar.gz" else make_zip)(folder, archive)
    data = load_dataset(archive)
    assert_tree_dataset(data)
    expected = load_dataset(folder, cache=False)
    assert np.array_equal(data.x_train, expected.x_train)
    assert np.array_equal(data.y_test, expected.y_test)


def test_mixed_formats_and_upper_case_suffixes(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for split, count in (("train", 3), ("test", 1)):
        for label, fmt in enumerate(("JPEG", "GIF", "BMP", "WEBP")):
            for i in range(count):
                write_image(root / split / f"c{label}" / f"{i}.{fmt.upper()}", label, fmt=fmt)
    data = load_dataset(root, image_size=(16, 16))
    assert data.x_train.shape == (12, 16, 16, 3)
    assert data.class_names == ("c0", "c1", "c2", "c3")


def test_hostile_archive_members_are_never_written(tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "pets")
    png = (folder / "train" / "cat" / "000.png").read_bytes()
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        tar.add(folder, arcname="pets")
        for name in (
            "../escaped.png",
            "/tmp/absolute-escape.png",
            "pets/train/cat/../../../up.png",
        ):
            info = tarfile.TarInfo(name)
            info.size = len(png)
            tar.addfile(info, io.BytesIO(png))
        link = tarfile.TarInfo("pets/train/cat/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    data = load_dataset(tmp_path / "evil.tar")
    assert_tree_dataset(data)
    assert not (tmp_path / "escaped.png").exists()
    assert not Path("/tmp/absolute-escape.png").exists()


def test_zip_symlinks_and_traversal_are_ignored(tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "pets")
    archive = make_zip(folder, tmp_path / "pets.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        link = zipfile.ZipInfo("pets/train/cat/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("../outside.png", (folder / "train" / "cat" / "000.png").read_bytes())
    data = load_dataset(archive)
    assert_tree_dataset(data)
    assert data.skipped == 1  # the link: counted and listed, never followed
    assert any(
        "link.png was not read (a symbolic link, never followed)" in w for w in data.warnings
    )


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    folder = make_tree(tmp_path / "pets")
    big = folder / "train" / "cat" / "big.bmp"
    Image.new("RGB", (64, 64), colour(0)).save(big)  # 12 KB, far bigger than the PNGs
    archive = (make_tar if kind == "tar.gz" else make_zip)(folder, tmp_path / f"pets.{kind}")
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 4000)
    data = load_dataset(archive, cache=False)
    assert data.skipped == 1
    assert any("train/cat/big.bmp was not read" in line for line in data.warnings)
    with monkeypatch.context() as patch:
        patch.setenv("CNN_CORE_MAX_DATASET_GB", "0.000001")  # 1,000 bytes
        with pytest.raises(
            DataError, match=r"unpacks to more than 1e-06 GB \(the limit, CNN_CORE_MAX"
        ):
            load_dataset(archive, cache=False)
    monkeypatch.setenv("CNN_CORE_MAX_DATASET_FILES", "5")
    with pytest.raises(DataError, match="more than 5 entries"):
        load_dataset(archive, cache=False)


def test_images_outside_class_folders_are_noted(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    write_image(root / "train" / "stray.png", 0)
    data = load_dataset(root)
    assert_tree_dataset(data)
    assert data.warnings == (
        "1 image(s) directly in train/ are not in a class folder and were ignored.",
    )


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    good = (root / "train" / "dog" / "000.png").read_bytes()
    (root / "train" / "dog" / "broken.png").write_bytes(good[: len(good) // 2])
    (root / "test" / "cat" / "fake.jpg").write_text("<html>not a picture</html>")
    data = load_dataset(root)
    assert_tree_dataset(data)
    assert data.skipped == 2
    text = "\n".join(data.warnings)
    assert "train/dog/broken.png" in text
    assert "test/cat/fake.jpg" in text


def test_non_image_files_are_counted_and_listed(tmp_path: Path) -> None:
    """Issue 12: a file in a class folder that is not an image is never dropped silently."""
    root = make_tree(tmp_path / "tree")
    for name in ("notes.txt", "Thumbs.db", "labels.csv"):
        (root / "train" / "cat" / name).write_text("x")
    data = load_dataset(root)
    assert data.skipped == 2  # Thumbs.db is Windows' hidden thumbnail cache: ignored
    text = "\n".join(data.warnings)
    assert "train/cat/notes.txt" in text and "train/cat/labels.csv" in text
    assert "Thumbs.db" not in text


def test_resizing_and_greyscale(tmp_path: Path) -> None:
    data = load_dataset(make_tree(tmp_path / "tree"), image_size=(8, 6), channels=1)
    assert_tree_dataset(data, shape=(8, 6, 1))
    grey = np.asarray(Image.new("RGB", (1, 1), colour(2)).convert("L"))[0, 0]
    assert (data.x_train[data.y_train == 2] == grey).all()


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "tree")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_dataset("~/tree").source == "~/tree"


def test_default_source_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    monkeypatch.setenv("CNN_CORE_DATA", str(root))
    assert load_dataset().source == str(root)


def test_parallel_decoding_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "tree")
    serial = load_dataset(root, cache=False)
    monkeypatch.setattr(decode, "PARALLEL_MIN_IMAGES", 1)
    monkeypatch.setattr(decode, "CHUNK", 3)
    seen: list[tuple[int, int]] = []
    parallel = load_dataset(
        root, cache=False, progress=lambda done, total: seen.append((done, total))
    )
    assert np.array_equal(parallel.x_train, serial.x_train)
    assert np.array_equal(parallel.y_train, serial.y_train)
    assert np.array_equal(parallel.x_test, serial.x_test)
    assert seen[-1] == (18, 18)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_importing_does_not_import_keras() -> None:
    assert imported_frameworks("cnn_core.datasets", frameworks=("keras", "tensorflow")) == []


# ------------------------------------------------------------------------ official CIFAR batches


def cifar_batch(labels: list[int]) -> dict[bytes, object]:
    """A batch in the official layout: each row is a 32x32 R plane, then G, then B."""
    planes = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    planes[:, 0], planes[:, 1], planes[:, 2] = 10, 20, 30
    planes[:, 0, 0, 1] = 99  # one marked pixel: row 0, column 1, red
    return {
        b"batch_label": b"synthetic",
        b"labels": labels,
        b"data": planes.reshape(len(labels), -1),
    }


def write_cifar(folder: Path, *, first: object | None = None) -> Path:
    """The six batches and batches.meta; `first` replaces data_batch_1 (raw bytes: as they are)."""
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": cifar_batch([i % 10, (i + 1) % 10]) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch([0, 1, 9])
    if first is not None:
        batches["data_batch_1"] = first
    batches["batches.meta"] = {b"label_names": [name.encode() for name in CIFAR10_CLASSES]}
    for name, content in batches.items():
        raw = content if isinstance(content, bytes) else pickle.dumps(content, protocol=2)
        (folder / name).write_bytes(raw)
    (folder / "readme.html").write_text("<html></html>")
    return folder


def assert_cifar(data: Dataset) -> None:
    assert data.x_train.shape == (10, 32, 32, 3)
    assert data.x_test.shape == (3, 32, 32, 3)
    assert data.class_names == CIFAR10_CLASSES
    assert data.y_train.dtype == np.int64
    assert data.y_train[:2].tolist() == [1, 2]
    assert data.y_test.tolist() == [0, 1, 9]
    assert (data.x_train[..., 1] == 20).all()
    assert (data.x_train[..., 2] == 30).all()
    assert (data.x_train[:, 0, 1, 0] == 99).all()
    assert (data.x_train[:, 1:, :, 0] == 10).all()


def test_official_batches_as_a_folder(tmp_path: Path) -> None:
    assert_cifar(load_dataset(write_cifar(tmp_path / "cifar-10-batches-py")))
    assert_cifar(load_dataset(tmp_path))  # the folder that holds cifar-10-batches-py


def test_official_batches_as_the_tar_gz(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    archive = make_tar(folder, tmp_path / "cifar-10-python.tar.gz")
    data = load_dataset(archive)
    assert_cifar(data)
    small = load_dataset(archive, image_size=(16, 16), channels=1)
    assert small.x_train.shape == (10, 16, 16, 1)


def py2_str(data: bytes) -> bytes:
    """A Python 2 ``str`` in a protocol-2 pickle (SHORT_BINSTRING or BINSTRING)."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def py2_batch(labels: list[int]) -> bytes:
    """`cifar_batch` pickled the way the official files were: by Python 2 with numpy 1.x."""
    pixels = cifar_batch(labels)[b"data"]
    assert isinstance(pixels, np.ndarray)
    rows, width = pixels.shape
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85"
        + py2_str(b"b")
        + b"\x87Rq\x02(K\x01K"
        + bytes([rows])
        + b"M"
        + struct.pack("<H", width)
        + b"\x86cnumpy\ndtype\nq\x03"
        + py2_str(b"u1")
        + b"K\x00K\x01\x87Rq\x04(K\x03"
        + py2_str(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
        + py2_str(pixels.tobytes())
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([label]) for label in labels) + b"e"
    return b"\x80\x02}(" + py2_str(b"data") + array + py2_str(b"labels") + label_list + b"u."


def test_python2_pickled_batches_as_the_official_files_are(tmp_path: Path) -> None:
    data = load_dataset(write_cifar(tmp_path / "cifar-10-batches-py", first=py2_batch([1, 2])))
    assert_cifar(data)


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("packed", [False, True])
def test_hostile_pickle_is_refused_and_not_run(tmp_path: Path, packed: bool) -> None:
    marker = tmp_path / "pwned"
    folder = write_cifar(tmp_path / "cifar-10-batches-py", first={b"data": Exploit(marker)})
    source = make_tar(folder, tmp_path / "c.tar.gz") if packed else folder
    with pytest.raises(DataError, match="data_batch_1 is not a CIFAR-10 batch file"):
        load_dataset(source)
    assert not marker.exists()


def test_batch_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    folder = write_cifar(
        tmp_path / "b", first={b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}
    )
    with pytest.raises(DataError, match="not a CIFAR-10 batch file"):
        load_dataset(folder)


def test_missing_batch_is_named(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path / "b")
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="missing the CIFAR-10 batch files data_batch_4"):
        load_dataset(folder)


# ------------------------------------------------------------------------------- cifar10 / Keras


def fake_keras(load_data: object) -> types.ModuleType:
    keras = types.ModuleType("keras")
    keras.datasets = types.SimpleNamespace(cifar10=types.SimpleNamespace(load_data=load_data))  # type: ignore[attr-defined]
    return keras


def test_cifar10_without_network_explains_the_offline_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline() -> None:
        raise Exception(
            "URL fetch failure on https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz: None -- "
            f"{urllib.error.URLError('Temporary failure in name resolution')}"
        )

    install_fake_keras(monkeypatch, offline)
    with pytest.raises(DataError, match="could not be downloaded") as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert "cifar-10-python.tar.gz" in message
    assert "dataset source" in message and "--data" not in message  # the page says it too
    assert "\n" not in message


def test_cifar10_url_error_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline() -> None:
        raise urllib.error.URLError("no route to host")

    install_fake_keras(monkeypatch, offline)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz"):
        load_dataset()  # the default source is cifar10


def install_fake_keras(monkeypatch: pytest.MonkeyPatch, loader) -> None:
    """Replace Keras where `cnn_core._keras` hands it out; both come back after the test."""
    fake = fake_keras(loader)
    shim = types.ModuleType("cnn_core._keras")
    shim.keras = fake
    monkeypatch.setitem(sys.modules, "keras", fake)
    monkeypatch.setitem(sys.modules, "cnn_core._keras", shim)


def test_cifar10_from_keras_flattens_labels_and_resizes(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.full((4, 32, 32, 3), 50, dtype=np.uint8)
    y = np.array([[3], [1], [4], [1]], dtype=np.uint8)
    install_fake_keras(monkeypatch, lambda: ((x, y), (x[:2], y[:2])))
    data = load_dataset("CIFAR10", image_size=(8, 8))
    assert data.x_train.shape == (4, 8, 8, 3)
    assert data.y_train.tolist() == [3, 1, 4, 1]
    assert data.y_train.dtype == np.int64
    assert data.class_names == CIFAR10_CLASSES


# ------------------------------------------------------------------------------------ DataErrors


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


@pytest.mark.parametrize(("name", "content"), [("notes.txt", b"hello"), ("cat.jpg", b"\xff\xd8")])
def test_unrecognised_source(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match="not a recognised dataset source"):
        load_dataset(tmp_path / name)


def test_no_images(tmp_path: Path) -> None:
    for split in ("train", "test"):
        (tmp_path / "d" / split / "cat").mkdir(parents=True)
        (tmp_path / "d" / split / "cat" / "list.txt").write_text("x")
    with pytest.raises(DataError, match="No images found"):
        load_dataset(tmp_path / "d")


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    (root / "train" / "bird").mkdir()
    (root / "test" / "bird").mkdir()
    with pytest.raises(DataError, match=r"train/bird .* has no images"):
        load_dataset(root)


def test_class_of_only_unreadable_images_is_named(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    for path in (root / "test" / "frog").iterdir():
        path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="None of the images in test/frog"):
        load_dataset(root)


def test_train_and_test_classes_differ(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    (root / "test" / "frog").rename(root / "test" / "toad")
    with pytest.raises(DataError, match=r"only in train: frog; only in test: toad"):
        load_dataset(root)


def test_layout_without_train_and_test(tmp_path: Path) -> None:
    for label, name in enumerate(CLASSES):
        write_image(tmp_path / "flat" / name / "0.png", label)
    with pytest.raises(DataError, match=r"no train/ and test/ folders \(found folders cat/, dog/"):
        load_dataset(tmp_path / "flat")


def test_corrupt_archives(tmp_path: Path) -> None:
    archive = make_tar(make_tree(tmp_path / "pets"), tmp_path / "pets.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt"):
        load_dataset(archive)
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(DataError, match="corrupt"):
        load_dataset(tmp_path / "junk.zip")


def test_bad_options() -> None:
    with pytest.raises(DataError, match="channels"):
        load_dataset("cifar10", channels=4)
    with pytest.raises(DataError, match="image_size"):
        load_dataset("cifar10", image_size=(0, 32))


# ----------------------------------------------------------------------------------------- cache


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = images.open_image

    def counting(data: object, **options: object) -> Image.Image:
        calls.append(str(options.get("name")))
        return real(data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(images, "open_image", counting)
    return calls


def test_second_load_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "tree")
    (root / "train" / "cat" / "bad.png").write_bytes(b"not png")
    first = load_dataset(root)
    monkeypatch.setattr(images, "open_image", lambda *a, **k: pytest.fail("decoded again"))
    second = load_dataset(root)
    assert np.array_equal(first.x_train, second.x_train)
    assert np.array_equal(first.y_test, second.y_test)
    assert (second.class_names, second.skipped, second.warnings) == (
        first.class_names,
        1,
        first.warnings,
    )
    with np.load(next((tmp_path / "cache").glob("*.npz")), allow_pickle=False) as stored:
        assert stored["class_names"].dtype.kind == "U"


def test_cache_is_per_size_and_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "tree")
    load_dataset(root)
    calls = count_decodes(monkeypatch)
    assert load_dataset(root, channels=1).x_train.shape[-1] == 1
    assert len(calls) == 18


def test_changed_file_invalidates_the_folder_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    load_dataset(root)
    target = root / "train" / "cat" / "000.png"
    write_image(target, 2)  # now frog-coloured
    info = target.stat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    calls = count_decodes(monkeypatch)
    data = load_dataset(root)
    assert len(calls) == 18
    assert (data.x_train[0] == colour(2)).all()
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # the stale entry was replaced


def test_touched_archive_invalidates_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_zip(make_tree(tmp_path / "pets"), tmp_path / "pets.zip")
    load_dataset(archive)
    calls = count_decodes(monkeypatch)
    load_dataset(archive)
    assert calls == []
    info = archive.stat()
    os.utime(archive, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    load_dataset(archive)
    assert len(calls) == 18


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "tree")
    load_dataset(root)
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:200])
    calls = count_decodes(monkeypatch)
    assert_tree_dataset(load_dataset(root))
    assert len(calls) == 18
    calls.clear()
    assert_tree_dataset(load_dataset(root))
    assert calls == []


def test_unwritable_cache_only_skips_caching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CNN_CORE_CACHE", str(blocker / "cache"))
    assert_tree_dataset(load_dataset(make_tree(tmp_path / "tree")))
    assert "not caching" in caplog.text


def test_no_cache_writes_nothing(tmp_path: Path) -> None:
    load_dataset(make_tree(tmp_path / "tree"), cache=False)
    assert not (tmp_path / "cache").exists()


# -------------------------------------------------------------------------------------- describe


def test_describe_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "src" / "pets")
    archive = make_tar(tmp_path / "src" / "pets", tmp_path / "pets.tar.gz")
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    assert describe_source("cifar10").startswith("CIFAR-10")
    assert describe_source(tmp_path / "src") == f"image folders in {tmp_path / 'src'} (pets)"
    assert (
        describe_source(tmp_path / "src" / "pets")
        == f"image folders in {tmp_path / 'src' / 'pets'}"
    )
    assert describe_source(archive) == f"image-folder archive {archive} (pets)"
    assert describe_source(batches) == f"CIFAR-10 batches in {batches}"
    official = make_tar(batches, tmp_path / "cifar-10-python.tar.gz")
    assert describe_source(official) == f"CIFAR-10 archive {official}"
    (tmp_path / "notes.txt").write_text("x")
    assert describe_source(tmp_path / "notes.txt").endswith("(not a usable dataset source)")
    assert describe_source(tmp_path / "nope").endswith("(not found)")
    monkeypatch.setenv("CNN_CORE_DATA", str(tmp_path / "src"))
    assert describe_source().startswith("image folders in")


def test_own_images_are_image_folders_that_are_not_cifar10(tmp_path: Path) -> None:
    """What the Train page's default model for a user's own photos is keyed off."""
    from cnn_core.datasets import inspect_source

    pets = make_tree(tmp_path / "src" / "pets")
    assert inspect_source(pets).own_images
    assert inspect_source(make_tar(pets, tmp_path / "pets.tar.gz")).own_images
    assert inspect_source(pets / "train").own_images  # class folders, no split
    cifar = make_tree(tmp_path / "cifar-jpeg", classes=CIFAR10_CLASSES)
    assert not inspect_source(cifar).own_images
    assert not inspect_source(cifar / "train").own_images
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    assert not inspect_source(batches).own_images
    assert not inspect_source(make_tar(batches, tmp_path / "cifar-10-python.tar.gz")).own_images
    assert not inspect_source("cifar10").own_images
    assert not inspect_source(tmp_path / "nope").own_images


def test_cached_pixels_are_memory_mapped_npy_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "tree")
    first = load_dataset(root)
    cache = tmp_path / "cache"
    (index,) = cache.glob("*.npz")
    assert sorted(p.name for p in cache.glob("*.npy")) == [
        f"{index.stem}.x_test.npy",
        f"{index.stem}.x_train.npy",
    ]
    assert isinstance(first.x_train, np.memmap)  # the decoded arrays are not kept in RAM
    second = load_dataset(root)
    assert isinstance(second.x_train, np.memmap) and not second.x_train.flags.writeable
    assert not isinstance(load_dataset(root, cache=False).x_train, np.memmap)
    assert np.array_equal(first.x_test, second.x_test)
    pixels = cache / f"{index.stem}.x_train.npy"
    pixels.write_bytes(pixels.read_bytes()[:-10])  # a cut-short pixel file: rebuilt
    calls = count_decodes(monkeypatch)
    assert_tree_dataset(load_dataset(root))
    assert len(calls) == 18
    target = root / "train" / "cat" / "000.png"
    info = target.stat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    load_dataset(root)
    assert len(list(cache.glob("*.npz"))) == 1 and len(list(cache.glob("*.npy"))) == 2


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_an_archive_cut_inside_a_member_is_a_corrupt_archive(tmp_path: Path, cut: float) -> None:
    folder = make_tree(tmp_path / "pets")
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "train" / "cat" / "big.png")  # most of the archive
    whole = make_tar(folder, tmp_path / "pets.tar.gz").read_bytes()
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(whole[: int(len(whole) * cut)])
    with pytest.raises(DataError, match="is corrupt or"):
        load_dataset(archive, cache=False)
    assert not list(settings.cache_dir().glob("*.spool"))
