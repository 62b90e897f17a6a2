"""Tests for `cnn_core.images`: every accepted format and mode decodes to RGB, anything unsafe or
not an image is refused with an `ImageError` naming the file, and resizing gives uint8 arrays.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile
from support import encode, png_declaring

from cnn_core.errors import ImageError
from cnn_core.images import IMAGE_SUFFIXES, has_image_suffix, open_image, to_array

WHITE = (255, 255, 255)


def gradient(width: int = 12, height: int = 10) -> Image.Image:
    """An RGB picture whose pixels differ, so orientation and resizing are visible."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 20, y * 20, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


# ------------------------------------------------------------------------------ accepted formats


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP"])
def test_each_accepted_format_decodes_to_rgb_at_its_size(fmt: str) -> None:
    picture = open_image(encode(gradient(12, 10), fmt), name=f"x.{fmt.lower()}")
    assert picture.mode == "RGB"
    assert picture.size == (12, 10)


def test_png_pixels_survive_exactly() -> None:
    original = gradient()
    assert np.array_equal(np.asarray(open_image(encode(original, "PNG"))), np.asarray(original))


def test_reads_a_path_and_decides_format_by_content(tmp_path: Path) -> None:
    path = tmp_path / "really_a_jpeg.png"
    path.write_bytes(encode(gradient(), "JPEG"))
    picture = open_image(path)
    assert (picture.mode, picture.size) == ("RGB", (12, 10))
    assert open_image(str(path)).size == (12, 10)


def test_suffixes_are_lower_case_and_matched_ignoring_case() -> None:
    assert set(IMAGE_SUFFIXES) == {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
    assert has_image_suffix("A/B/CAT.JPG")
    assert has_image_suffix(Path("x.WebP"))
    assert not has_image_suffix("notes.txt")
    assert not has_image_suffix("x.tiff")


# ----------------------------------------------------------------------------- mode conversions


def test_transparent_rgba_pixel_becomes_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (255, 0, 0, 0))
    pixels = np.asarray(open_image(encode(rgba, "PNG")))
    assert tuple(pixels[0, 0]) == WHITE
    assert tuple(pixels[1, 1]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt: str) -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 black, 1 blue
    palette.putpixel((0, 0), 0)
    pixels = np.asarray(open_image(encode(palette, fmt, transparency=0)))
    assert tuple(pixels[0, 0]) == WHITE
    assert tuple(pixels[2, 2]) == (0, 0, 255)


def test_palette_without_transparency_keeps_its_colours() -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert tuple(np.asarray(open_image(encode(palette, "PNG")))[0, 0]) == (10, 200, 30)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = Image.fromarray(np.array([[0, 32768, 65535, 256]], dtype=np.uint16))
    assert grey.mode == "I;16"
    pixels = np.asarray(open_image(encode(grey, "PNG")))
    assert pixels.shape == (1, 4, 3)
    assert pixels[0, :, 0].tolist() == [0, 128, 255, 1]
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in print colours
    picture = open_image(encode(cmyk, "JPEG", quality=95))
    red, green, blue = np.asarray(picture)[4, 4].astype(int)
    assert picture.mode == "RGB"
    assert red > 200
    assert max(green, blue) < 60


def test_grey_with_alpha_is_composited_onto_white() -> None:
    la = Image.new("LA", (2, 1), (0, 255))
    la.putpixel((1, 0), (0, 0))
    pixels = np.asarray(open_image(encode(la, "PNG")))
    assert tuple(pixels[0, 0]) == (0, 0, 0)
    assert tuple(pixels[0, 1]) == WHITE


def test_one_bit_image_becomes_black_and_white_rgb() -> None:
    bits = Image.new("1", (3, 1), 0)
    bits.putpixel((1, 0), 1)
    pixels = np.asarray(open_image(encode(bits, "PNG")))
    assert pixels[0, :, 0].tolist() == [0, 255, 0]


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    picture = open_image(encode(gradient(12, 10), "JPEG", exif=exif.tobytes()))
    assert picture.size == (10, 12)


def test_animated_gif_gives_its_first_frame() -> None:
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert tuple(np.asarray(open_image(data))[0, 0]) == (255, 0, 0)


def test_returns_an_independent_loaded_copy(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode(gradient(), "PNG"))
    picture = open_image(path)
    path.unlink()  # the file is gone; the picture must not need it
    assert np.asarray(picture).shape == (10, 12, 3)


# ------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("text.jpg", b"just some text\n"),
        ("page.png", b"<!DOCTYPE html><html><body>not an image</body></html>"),
        ("doc.jpg", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"),
        ("drawing.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
        ("scan.jpg", encode(Image.new("RGB", (4, 4)), "TIFF")),
    ],
)
def test_non_images_are_refused_naming_the_file_and_formats(name: str, data: bytes) -> None:
    with pytest.raises(ImageError, match="JPEG, PNG, GIF, BMP or WebP") as caught:
        open_image(data, name=name)
    assert name in str(caught.value)
    assert "\n" not in str(caught.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg is empty"):
        open_image(path)


def test_truncated_jpeg_is_refused() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=95)
    with pytest.raises(ImageError, match=r"cut\.jpg is truncated or corrupt"):
        open_image(data[: len(data) // 2], name="cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_data_is_refused() -> None:
    data = bytearray(encode(gradient(), "PNG"))
    start = data.index(b"IDAT") + 10
    data[start : start + 20] = b"\xff" * 20
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(bytes(data), name="bad.png")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="pixels") as caught:
        open_image(png_declaring(30000, 30000), name="bomb.png")
    assert "bomb.png" in str(caught.value)


def test_pixel_limit_below_pillows_own_is_enforced() -> None:
    data = png_declaring(8000, 6000)  # 48 million: under Pillow's limit, over the default here
    with pytest.raises(ImageError, match=r"8000x6000 pixels \(48,000,000\).*40,000,000"):
        open_image(data, name="big.png")
    with pytest.raises(ImageError, match=r"100x100 pixels"):
        open_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=5000)


def test_bomb_check_leaves_global_warning_filters_alone() -> None:
    before = list(warnings.filters)
    with pytest.raises(ImageError):
        open_image(png_declaring(30000, 30000))
    assert warnings.filters == before


def test_file_over_the_byte_limit_is_refused(tmp_path: Path) -> None:
    data = encode(gradient(), "BMP")  # 400-odd bytes, uncompressed
    with pytest.raises(ImageError, match="more than the 100 bytes limit"):
        open_image(data, name="a.png", max_bytes=100)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=r"a\.png is .* more than the 100 bytes limit"):
        open_image(path, max_bytes=100)


def test_missing_file_or_folder_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot be read"):
        open_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        open_image(tmp_path)


def mutated(seed: int, data: bytes, count: int) -> bytes:
    rng = np.random.default_rng(seed)
    raw = bytearray(data)
    for position in rng.integers(0, len(raw), count):
        raw[position] = int(rng.integers(0, 256))
    return bytes(raw)


SAMPLES = [encode(gradient(), fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SAMPLES),
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 8),
    cut=st.integers(0, 2000),
)
def test_damaged_files_give_an_image_or_an_image_error(
    sample: bytes, seed: int, count: int, cut: int
) -> None:
    data = mutated(seed, sample, count)[: cut or None]
    try:
        picture = open_image(data, name="fuzz")
    except ImageError as exc:
        message = str(exc)
        picture = None
    if picture is None:
        assert message.startswith("fuzz ")
    else:
        assert picture.mode == "RGB"


# -------------------------------------------------------------------------------------- to_array


def test_to_array_resizes_to_height_width_as_uint8() -> None:
    array = to_array(gradient(12, 10), size=(8, 6))
    assert array.shape == (8, 6, 3)
    assert array.dtype == np.uint8


def test_to_array_greyscale_has_one_channel() -> None:
    array = to_array(Image.new("RGB", (5, 5), (255, 255, 255)), size=(5, 5), channels=1)
    assert array.shape == (5, 5, 1)
    assert (array == 255).all()


def test_to_array_big_downscale_averages() -> None:
    checker = np.indices((400, 400)).sum(axis=0) % 2 * 255
    picture = Image.fromarray(checker.astype(np.uint8)).convert("RGB")
    array = to_array(picture, size=(4, 4))
    assert np.abs(array.astype(int) - 128).max() <= 2  # no aliasing to black or white


def test_to_array_keeps_size_when_already_right() -> None:
    original = gradient(12, 10)
    assert np.array_equal(to_array(original, size=(10, 12)), np.asarray(original))


def test_to_array_rejects_other_channel_counts() -> None:
    with pytest.raises(ValueError, match="channels"):
        to_array(gradient(), size=(4, 4), channels=4)
