"""Drill 1: awkward and hostile uploads, through the prediction API and through the Predict page.

One batch of more than twenty files: empty, text/HTML/PDF/SVG/TIFF named as pictures, truncated,
a corrupt checksum, a decompression bomb, a 4000x3000 photo, a 1x1 dot, 16-bit grey, CMYK, RGBA,
palette and GIF transparency, an animation, an EXIF rotation, WEBP, BMP, an upper-case extension,
a JPEG named .png, a polyglot, hostile names, and a file over the size limit. Each is predicted or
refused with one line naming it; the rest of the batch still works; memory stays bounded.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import CLASSES, encode, gradient, open_page, png_declaring, rerun

from cnn_core.images import DEFAULT_MAX_BYTES
from cnn_core.predict import predict_images
from cnn_core.runs import Run, runs_root
from reliability.kit import copy_run, make_model_run, rss_bytes, shown, tree_snapshot

PAGE_LIMIT = 10 * 2**20  # cnn_core.settings.PHOTO_UPLOAD_MB: the Predict page's limit for a photo
REPEATS = 20  # batches predicted while memory is watched
MEMORY_BOUND = 200 * 2**20


def left_red_right_blue() -> Image.Image:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (230, 0, 0)
    pixels[:, 20:] = (0, 0, 230)
    return Image.fromarray(pixels)


def hostile_batch(*, oversize: int) -> tuple[list[tuple[str, bytes]], set[str]]:
    """(name, bytes) of every drill file, and the names that must be refused."""
    photo = encode(gradient(), "JPEG")
    png = encode(gradient(), "PNG")
    rgba = gradient().convert("RGBA")
    rgba.putalpha(100)
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    frames = [gradient(), Image.new("RGB", (40, 30), (255, 0, 0))]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left half ends up on top
    y, x = np.mgrid[0:3000, 0:4000]
    big = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    bad_crc = bytearray(png)
    bad_crc[png.index(b"IDAT") + 10] ^= 0xFF  # one flipped byte inside the compressed pixels
    files = {
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not a picture\n",
        "page.png": b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "document.jpg": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        "vector.png": b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>',
        "scan.jpg": encode(gradient(), "TIFF"),  # a real image, but not an accepted format
        "truncated.jpg": photo[: len(photo) // 2],
        "bad-checksum.png": bytes(bad_crc),
        "bomb.png": png_declaring(30000, 30000),
        "photo-4000x3000.jpg": encode(Image.fromarray(big), "JPEG", quality=85),
        "dot.png": encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"),
        "grey16.png": encode(
            Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 20).reshape(48, 64)), "PNG"
        ),
        "cmyk.jpg": encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"),
        "rgba.png": encode(rgba, "PNG"),
        "palette-transparent.png": encode(palette, "PNG", transparency=0),
        "transparent.gif": encode(palette, "GIF", transparency=0),
        "animated.gif": animated.getvalue(),
        "rotated.jpg": encode(left_red_right_blue(), "JPEG", exif=exif.tobytes()),
        "picture.webp": encode(gradient(), "WEBP"),
        "picture.bmp": encode(gradient(), "BMP"),
        "PHOTO.JPG": photo,
        "really-a-jpeg.png": photo,
        "polyglot.png": png + b"PK\x03\x04<html><script>alert(1)</script></html>",
        "../../outside.png": png,  # a name, never a path: nothing is written anywhere
        "фото 📷 <b>x</b>.png": png,
        "too-big.png": png + b"\x00" * (oversize - len(png)),
    }
    refused = {
        "empty.jpg",
        "notes.jpg",
        "page.png",
        "document.jpg",
        "vector.png",
        "scan.jpg",
        "truncated.jpg",
        "bad-checksum.png",
        "bomb.png",
    }
    if oversize > DEFAULT_MAX_BYTES:
        refused.add("too-big.png")
    return list(files.items()), refused


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return make_model_run(tmp_path_factory.mktemp("upload-runs"))


@pytest.fixture(scope="module")
def api_batch() -> tuple[list[tuple[str, bytes]], set[str]]:
    return hostile_batch(oversize=DEFAULT_MAX_BYTES + 1)


def check_results(batch: list[tuple[str, bytes]], refused: set[str], results: list) -> None:
    assert [r.image for r in results] == [name for name, _ in batch]
    for result in results:
        if result.image in refused:
            assert result.error, f"{result.image} was not refused"
            assert "\n" not in result.error and result.image in result.error, result.error
            assert result.top == () and result.probabilities is None
            continue
        assert result.error is None, result.error
        assert result.pixels.shape == (8, 8, 3) and result.pixels.dtype == np.uint8
        assert result.probabilities.shape == (len(CLASSES),)
        assert np.all(np.isfinite(result.probabilities))
        assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert [p for _, p in result.top] == sorted((p for _, p in result.top), reverse=True)


def test_api_predicts_or_refuses_every_file_and_memory_stays_bounded(template: Run, api_batch):
    batch, refused = api_batch
    assert len(batch) >= 20
    results = predict_images(template, batch, top=5)
    check_results(batch, refused, results)
    by_name = {r.image: r for r in results}
    rotated = by_name["rotated.jpg"].pixels.astype(int)
    assert rotated[0, :, 0].mean() > 150 and rotated[-1, :, 2].mean() > 150  # red on top
    assert "too large" in by_name["bomb.png"].error
    assert "limit" in by_name["too-big.png"].error
    # The good pictures get the same answer alone as among the hostile ones.
    alone = predict_images(template, [("dot.png", dict(batch)["dot.png"])])[0]
    np.testing.assert_allclose(by_name["dot.png"].probabilities, alone.probabilities, atol=1e-6)

    predict_images(template, batch)  # warm: the model and its compiled predict step are loaded
    before = rss_bytes()
    for _ in range(REPEATS):
        check_results(batch, refused, predict_images(template, batch, top=5))
    growth = rss_bytes() - before
    print(f"\nRSS growth over {REPEATS} batches of {len(batch)}: {growth / 2**20:+.1f} MB")
    assert growth < MEMORY_BOUND


def test_uploads_are_decoded_in_memory_and_write_nothing(template: Run, api_batch):
    batch, _ = api_batch
    watched = (template.path.parent, Path(os.environ["CNN_CORE_CACHE"]))
    before = tree_snapshot(*watched)
    predict_images(template, batch)
    assert tree_snapshot(*watched) == before
    assert not (template.path.parent.parent / "outside.png").exists()


def test_the_predict_page_shows_every_file_with_its_own_verdict(template: Run):
    """The same batch through st.file_uploader. AppTest hands the bytes straight to the script,
    past the uploader's own 10 MB check in the browser (and the server takes uploads up to a
    dataset archive's size): the page refuses the 11 MB file itself, by name, as a photo too big."""
    copy_run(template, runs_root())
    batch, refused = hostile_batch(oversize=PAGE_LIMIT + 2**20)
    refused.add("too-big.png")  # under the decoder's 50 MB, over the page's 10 MB
    at = open_page("predict")
    watched = (runs_root(), Path(os.environ["CNN_CORE_CACHE"]))
    before = tree_snapshot(*watched)
    at.file_uploader(key="photos").set_value([(name, data, "image/png") for name, data in batch])
    rerun(at)
    assert tree_snapshot(*watched) == before  # decoded in memory: no temporary files
    boxes = {shown(m.value) for m in at.markdown}  # as read: names are escaped (issue 13)
    for name, _ in batch:
        assert f"**{name}**" in boxes, name
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == len(refused)
    assert all("\n" not in error for error in errors)
    for name in refused:
        assert any(name in error for error in errors), name
    table = at.dataframe[0].value
    assert table["problem"].notna().sum() == len(refused)
    assert table["prediction"].notna().sum() == len(batch) - len(refused)
