"""Tests for the image formats in datasets (issue 12, part 2): every file in a class folder is
opened by its content, whatever its name says (.jfif, .tif/.tiff, no extension, upper case, AVIF,
HEIC); files that are not images are counted and listed, so images found = used + skipped; a
missing HEIC plugin is a clear message for those files only. Tiny 8x8 images in tmp_path, written
in the real formats, as folders, .zip and .tar.gz archives.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_core import images
from cnn_core.datasets import Dataset, load_dataset
from cnn_core.errors import ImageError

KINDS = ["folder", "zip", "tar.gz"]
RED, BLUE = (220, 30, 30), (30, 30, 220)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNN_CORE_CACHE", str(cache))
    return cache


def encode(fmt: str, colour: tuple[int, int, int]) -> bytes:
    picture = Image.new("RGB", (8, 8), colour)
    out = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.from_pillow(picture).save(out, format="HEIF", quality=95)
    else:
        picture.save(out, fmt, **({"quality": 95} if fmt in ("JPEG", "AVIF") else {}))
    return out.getvalue()


PHOTOS = {  # file name: the format it really is
    "a.jfif": "JPEG",
    "b.tif": "TIFF",
    "c.tiff": "TIFF",
    "d": "PNG",  # no extension
    "E.PNG": "PNG",
    "F.JPEG": "JPEG",
    "g.avif": "AVIF",
    "h.heic": "HEIF",
    "i.png": "JPEG",  # the name is wrong; the content decides
}


def write_tree(root: Path, files: dict[str, bytes | str]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())


def pack(folder: Path, kind: str) -> Path:
    if kind == "folder":
        return folder
    archive = folder.with_name(f"{folder.name}.{kind}")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for path in files:
                zf.write(path, path.relative_to(folder.parent).as_posix())
    else:
        with tarfile.open(archive, "w:gz") as tar:
            for path in files:
                tar.add(path, path.relative_to(folder.parent).as_posix())
    return archive


def photo_tree(root: Path) -> None:
    """train/ and test/ with every format in both classes."""
    files: dict[str, bytes | str] = {}
    for split in ("train", "test"):
        for cls, colour in (("red", RED), ("blue", BLUE)):
            for name, fmt in PHOTOS.items():
                files[f"{split}/{cls}/{name}"] = encode(fmt, colour)
    write_tree(root, files)


def assert_counts_add_up(data: Dataset) -> None:
    used = len(data.y_train) + len(data.y_test) + (0 if data.y_val is None else len(data.y_val))
    assert data.found == used + data.skipped


@pytest.mark.parametrize("kind", KINDS)
def test_every_format_is_opened_by_its_content(tmp_path: Path, kind: str) -> None:
    photo_tree(tmp_path / "photos")
    data = load_dataset(pack(tmp_path / "photos", kind), image_size=(8, 8))
    assert (data.found, data.skipped, data.warnings) == (2 * 2 * len(PHOTOS), 0, ())
    assert len(data.y_train) == len(data.y_test) == 2 * len(PHOTOS)
    assert_counts_add_up(data)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        want = np.array([BLUE, RED])[y]  # classes sorted: blue, red
        assert np.abs(x[:, 4, 4].astype(int) - want).max() < 12  # JPEG, AVIF, HEIC are lossy
    assert "train/blue/d" in data.train_files and "test/red/h.heic" in data.test_files


@pytest.mark.parametrize("kind", KINDS)
def test_files_that_are_not_images_are_counted_and_listed(tmp_path: Path, kind: str) -> None:
    files: dict[str, bytes | str] = {
        f"d/{split}/{cls}/{i}.png": encode("PNG", colour)
        for split in ("train", "test")
        for cls, colour in (("red", RED), ("blue", BLUE))
        for i in range(2)
    }
    files.update(
        {
            "d/train/red/notes.txt": "not a picture",
            "d/train/red/labels.csv": "file,label\n",
            "d/train/blue/page.jpg": "<!DOCTYPE html><html></html>",
            "d/test/blue/README": "no extension, no image",
            "d/train/red/.DS_Store": "hidden",
            "d/train/red/._0.png": "macOS resource fork",
            "d/train/blue/Thumbs.db": "Windows thumbnails",
        }
    )
    write_tree(tmp_path, files)
    data = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8))
    assert (data.found, data.skipped) == (12, 4)
    assert_counts_add_up(data)
    assert data.warnings[0] == (
        "Found 12 file(s) in the class folders: 8 image(s) used, 4 skipped (not images, or "
        "unreadable)."
    )
    listed = "\n".join(data.warnings[1:])
    for path in ("train/red/notes.txt", "train/red/labels.csv", "train/blue/page.jpg"):
        assert path in listed
    assert "test/blue/README" in listed
    assert ".DS_Store" not in listed and "._0.png" not in listed and "Thumbs.db" not in listed
    again = load_dataset(pack(tmp_path / "d", kind), image_size=(8, 8))  # from the cache
    assert (again.found, again.skipped, again.warnings) == (data.found, 4, data.warnings)


def test_heic_without_its_plugin_is_a_clear_message_for_those_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heic = encode("HEIF", RED)
    monkeypatch.setattr(images, "_heif_plugin", lambda: False)  # pillow-heif not installed
    with pytest.raises(ImageError, match=r"IMG_0001\.HEIC is a HEIC photo, which needs the "):
        images.open_image(heic, name="IMG_0001.HEIC", formats=images.DATASET_FORMATS)
    files: dict[str, bytes | str] = {
        f"d/{cls}/{i}.jpg": encode("JPEG", colour)
        for cls, colour in (("red", RED), ("blue", BLUE))
        for i in range(3)
    }
    files["d/red/IMG_0001.HEIC"] = heic
    write_tree(tmp_path, files)
    data = load_dataset(tmp_path / "d", image_size=(8, 8))
    assert (data.found, data.skipped) == (7, 1)
    assert any("pip install pillow-heif" in line for line in data.warnings)


def test_uploads_keep_to_the_web_formats_and_datasets_take_more() -> None:
    tiff = encode("TIFF", RED)
    with pytest.raises(ImageError, match="not a JPEG, PNG, GIF, BMP or WebP image"):
        images.open_image(tiff, name="scan.tif")
    assert images.open_image(tiff, formats=images.DATASET_FORMATS).getpixel((1, 1)) == RED
    with pytest.raises(ImageError, match=r"not a JPEG, PNG, GIF, BMP, WebP, TIFF, AVIF or HEIC"):
        images.open_image(b"plain text, long enough", name="x", formats=images.DATASET_FORMATS)


def test_pillow_reads_avif_itself() -> None:
    """AVIF needs no plugin: Pillow's own wheels read it (11.3 and later)."""
    from PIL import features

    assert features.check("avif")
    assert images.open_image(encode("AVIF", RED), formats=("AVIF",)).size == (8, 8)
